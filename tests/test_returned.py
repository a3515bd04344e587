"""What a body returns: Prefect's rule for returned states and futures (``returned``).

A flow's returned futures become their final states; a state made by hand becomes the
run's own; another run's state, or a list, tuple or set of nothing but states, decides
the run's state by their aggregate; anything else is plain data. A flow call hands back
the resolved value (states, not their values) unless it is a single state.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowkit import flow, task
from flowkit._engine import events
from flowkit._engine.lifecycle.returned import aggregate, decide
from flowkit.exceptions import CancelledRun, FailedRun, UpstreamFailedError
from flowkit.states import (
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    NotReady,
    Pending,
    Running,
    State,
    StateType,
)

Hooked = list[tuple[str, str]]


def hooks_into(seen: Hooked) -> dict[str, Any]:
    """Flow options with a hook of each final kind, recording (hook, state name)."""

    def record(kind: str) -> Any:
        return [lambda _flow, _run, state: seen.append((kind, state.name))]

    return {
        "on_completion": record("completion"),
        "on_failure": record("failure"),
        "on_cancellation": record("cancellation"),
        "on_crashed": record("crashed"),
    }


@task
def ident(x: Any) -> Any:
    return x


@task
def boom(message: str = "boom") -> None:
    raise ValueError(message)


# A state made by hand is the run's own final state


def test_a_returned_failed_state_fails_the_flow_and_runs_on_failure(backend: str) -> None:
    seen: Hooked = []

    @flow(**hooks_into(seen))
    def main() -> Any:
        return Failed("not today")

    state = main(return_state=True)
    assert state.is_failed()
    assert state.message == "not today"
    with pytest.raises(FailedRun, match="returned Failed"):
        main()
    assert seen == [("failure", "Failed"), ("failure", "Failed")]


def test_a_returned_completed_state_gives_its_data(backend: str) -> None:
    @flow
    def main() -> Any:
        return Completed(message="happy", data=41)

    assert main() == 41
    state = main(return_state=True)
    assert state.message == "happy"
    assert state.result() == 41


def test_a_returned_failed_state_keeps_its_data(backend: str) -> None:
    @flow
    def main() -> Any:
        return Failed("partly", data={"done": 3})

    state = main(return_state=True)
    assert state.is_failed()
    assert state.result(raise_on_failure=False) == {"done": 3}
    with pytest.raises(FailedRun):
        state.result()


def test_a_returned_state_keeps_its_exception(backend: str) -> None:
    @flow
    def main() -> Any:
        return Failed(exception=KeyError("gone"))

    with pytest.raises(KeyError, match="gone"):
        main()


def test_a_task_returning_a_failed_state_is_retried(backend: str) -> None:
    attempts: list[int] = []

    @task(retries=2)
    def flaky() -> Any:
        attempts.append(1)
        return Failed("again") if len(attempts) < 3 else "done"

    @flow
    def main() -> Any:
        return flaky()

    assert main() == "done"
    assert len(attempts) == 3


def test_a_returned_cancelled_state_runs_on_cancellation(backend: str) -> None:
    seen: Hooked = []

    @flow(**hooks_into(seen))
    def main() -> Any:
        return Cancelled("stop")

    state = main(return_state=True)
    assert state.is_cancelled()
    assert seen == [("cancellation", "Cancelled")]
    with pytest.raises(CancelledRun):
        state.result()


def test_a_returned_cancelling_state_ends_cancelled_after_cancelling(backend: str) -> None:
    seen: Hooked = []
    names: list[str] = []
    stop = events.subscribe(lambda e: names.append(e.state.name))

    @flow(**hooks_into(seen))
    def main() -> Any:
        return Cancelling("asked to stop")

    try:
        state = main(return_state=True)
    finally:
        stop()
    assert state.is_cancelled()
    assert names[-2:] == ["Cancelling", "Cancelled"]
    assert seen == [("cancellation", "Cancelled")]


@pytest.mark.anyio
async def test_a_subflow_ending_cancelled_runs_its_own_hooks() -> None:
    seen: Hooked = []

    @flow(**hooks_into(seen))
    async def child() -> Any:
        return Cancelled()

    @flow
    async def parent() -> str:
        state = await child(return_state=True)
        return state.name

    assert await parent() == "Cancelled"
    assert seen == [("cancellation", "Cancelled")]


def test_a_returned_state_that_is_not_final_fails_the_run(backend: str) -> None:
    @flow
    def main() -> Any:
        return Running()

    with pytest.raises(FailedRun, match=r"returned Running\(\), which is not a final state"):
        main()


def test_a_returned_crashed_state_runs_on_crashed(backend: str) -> None:
    seen: Hooked = []

    @flow(**hooks_into(seen))
    def main() -> Any:
        return Crashed("infrastructure")

    assert main(return_state=True).is_crashed()
    assert seen == [("crashed", "Crashed")]


# Another run's state, or futures: the aggregate decides, the states are handed back


def test_a_flow_returning_a_future_returns_its_final_state(backend: str) -> None:
    @flow
    def main() -> Any:
        return ident.submit(7)

    state = main()
    assert isinstance(state, State)
    assert state.is_completed()
    assert state.result() == 7
    flow_state = main(return_state=True)
    assert flow_state.message == "All states completed."
    assert flow_state.result().result() == 7


def test_a_flow_returning_a_map_returns_a_list_of_states(backend: str) -> None:
    @flow
    def main() -> Any:
        return ident.map([1, 2, 3])

    returned = main()
    assert type(returned) is list
    assert [s.result() for s in returned] == [1, 2, 3]


def test_a_returned_task_state_decides_the_flows_state(backend: str) -> None:
    @flow
    def main() -> Any:
        return boom("deep", return_state=True)

    flow_state = main(return_state=True)
    assert flow_state.is_failed()
    assert flow_state.message == "1/1 states failed."
    task_state = flow_state.result(raise_on_failure=False)
    assert isinstance(task_state, State)
    assert task_state.is_failed()
    with pytest.raises(ValueError, match="deep"):
        task_state.result()
    with pytest.raises(ValueError, match="deep"):
        main()


def test_returned_states_with_failures_fail_the_flow_and_come_back(backend: str) -> None:
    @flow
    def main() -> Any:
        one = boom("one", return_state=True)
        two = boom("two", return_state=True)
        three = ident(3, return_state=True)
        return one, two, three

    flow_state = main(return_state=True)
    assert flow_state.is_failed()
    assert flow_state.message == "2/3 states failed."
    first, second, third = flow_state.result(raise_on_failure=False)
    assert (first.is_failed(), second.is_failed(), third.result()) == (True, True, 3)
    with pytest.raises(ValueError, match="one"):
        flow_state.result()  # the first failure's own exception
    # The plain call hands the states back, as Prefect's does.
    returned = main()
    assert [s.type for s in returned] == [StateType.FAILED, StateType.FAILED, StateType.COMPLETED]


def test_a_returned_cancelled_state_among_others_cancels_the_flow(backend: str) -> None:
    @flow
    def main() -> Any:
        return [ident.submit(1), Cancelled()]

    state = main(return_state=True)
    assert state.is_cancelled()
    assert state.message == "1/2 states cancelled."


def test_a_tuple_mixing_data_and_states_is_plain_data(backend: str) -> None:
    @flow
    def main() -> Any:
        return "done", boom(return_state=True)

    state = main(return_state=True)
    assert state.is_completed()
    done, failed = main()
    assert done == "done"
    assert failed.is_failed()


def test_a_dict_of_futures_is_plain_data_holding_their_states(backend: str) -> None:
    @flow
    def main() -> Any:
        return {"good": ident.submit(1), "bad": boom.submit("broke")}

    state = main(return_state=True)
    assert state.is_completed()  # the failure was returned, so it was seen
    returned = main()
    assert returned["good"].result() == 1
    assert returned["bad"].is_failed()


def test_states_nested_deeper_are_plain_data(backend: str) -> None:
    @flow
    def main() -> Any:
        return [[ident.submit(1), boom.submit()]]

    state = main(return_state=True)
    assert state.is_completed()
    [[good, bad]] = main()
    assert (good.result(), bad.is_failed()) == (1, True)


def test_futures_in_a_dataclass_become_states(backend: str) -> None:
    @dataclasses.dataclass
    class Pair:
        left: Any
        right: Any

    @flow
    def main() -> Any:
        return Pair(ident.submit(1), 2)

    pair = main()
    assert isinstance(pair, Pair)
    assert pair.left.result() == 1
    assert pair.right == 2


def test_a_hook_sees_the_returned_states(backend: str) -> None:
    seen: list[Any] = []

    def on_completion(_flow: Any, _run: Any, state: State[Any]) -> None:
        seen.append([s.result() for s in state.result()])

    @flow(on_completion=[on_completion])
    def main() -> Any:
        return ident.map([1, 2])

    main()
    assert seen == [[1, 2]]


def test_a_subflow_returning_futures_hands_its_parent_their_states(backend: str) -> None:
    @flow
    def child() -> Any:
        return ident.map([1, 2])

    @flow
    def parent() -> list[int]:
        return [s.result() for s in child()]

    assert parent() == [1, 2]


@pytest.mark.anyio
async def test_a_returned_future_never_outlives_its_flow() -> None:
    @task
    async def slow() -> str:
        await anyio.sleep(0.05)
        return "late"

    outer: list[Any] = []

    @flow
    async def inner() -> Any:
        return outer[0]  # a future of another flow run, still running

    @flow
    async def main() -> Any:
        outer.append(slow.submit())
        return (await inner()).result()

    assert await main() == "late"


@pytest.mark.anyio
async def test_an_async_flow_returning_a_map_returns_states() -> None:
    @task
    async def double(x: int) -> int:
        return 2 * x

    @flow
    async def main() -> Any:
        return double.map([1, 2])

    assert [s.result() for s in await main()] == [2, 4]


# Tasks: no futures resolved; returned states decide, and the call hands them back


def test_a_task_returning_a_future_hands_the_future_on(backend: str) -> None:
    from flowkit import quote

    @flow
    def main() -> Any:
        future = ident.submit(5)
        handed = ident(quote(future))
        return handed is future

    assert main() is True


def test_a_task_returning_a_list_of_states_ends_in_their_aggregate(backend: str) -> None:
    @task
    def several() -> list[State[Any]]:
        return [Completed(data=1), Failed("no")]

    @flow
    def main() -> Any:
        state = several(return_state=True)
        returned = several()  # the list itself, as Prefect's call returns it
        return state.message, [s.name for s in returned]

    assert main() == ("1/2 states failed.", ["Completed", "Failed"])


# NotReady: a Pending state, as in Prefect


def test_a_run_whose_upstream_failed_ends_pending_not_ready(backend: str) -> None:
    @flow
    def main() -> Any:
        return ident.submit(boom.submit())

    flow_state = main(return_state=True)
    assert flow_state.is_failed()
    assert flow_state.message == "1/1 states are not final."
    task_state = flow_state.result(raise_on_failure=False)
    assert task_state.is_pending()
    assert task_state.name == "NotReady"
    with pytest.raises(UpstreamFailedError, match="boom-0"):
        task_state.result()
    with pytest.raises(UpstreamFailedError):
        main()


def test_a_not_ready_run_nobody_read_still_fails_its_flow(backend: str) -> None:
    @flow
    def main() -> str:
        ident.submit(boom.submit())
        return "ignored"

    state = main(return_state=True)
    assert state.is_failed()
    assert isinstance(state.exception, UpstreamFailedError)


def test_a_not_ready_run_calls_no_hooks_and_is_over(backend: str) -> None:
    called: list[str] = []
    ended: list[tuple[str, bool]] = []
    stop = events.subscribe(
        lambda e: ended.append((e.state.name, e.ended)) if hasattr(e, "ended") else None
    )

    @task(on_failure=[lambda *_: called.append("failure")])
    def downstream(x: Any) -> Any:
        return x

    @flow
    def main() -> State[Any]:
        return downstream.submit(boom.submit(), return_state=True)

    try:
        main(return_state=True)
    finally:
        stop()
    assert called == []
    assert ("NotReady", True) in ended


# States say whose they are


def test_a_state_that_ended_a_run_names_it(backend: str) -> None:
    @flow
    def main() -> Any:
        task_state = ident(1, return_state=True)
        return task_state.state_details, Completed().state_details

    flow_state = main(return_state=True)
    task_details, by_hand = flow_state.result()
    assert task_details.task_run_id is not None
    assert task_details.flow_run_id == flow_state.state_details.flow_run_id
    assert flow_state.state_details.task_run_id is None
    assert (by_hand.flow_run_id, by_hand.task_run_id) == (None, None)


def test_result_without_raising_gives_data_else_the_exception() -> None:
    error = ValueError("x")
    assert Failed(exception=error).result(raise_on_failure=False) is error
    assert Failed(data=[1], exception=error).result(raise_on_failure=False) == [1]
    assert NotReady(exception=error).result(raise_on_failure=False) is error


# The rule itself

_RUN = SimpleNamespace(info=SimpleNamespace(label="Flow run 'x'"))


states_of_any_kind = st.sampled_from(
    [Completed(data=1), Failed("f"), Crashed("c"), Cancelled("x"), Completed(data=2)]
)


@given(st.lists(states_of_any_kind, min_size=1, max_size=8))
def test_the_aggregate_follows_prefects_order(found: list[State[Any]]) -> None:
    state = aggregate(found, found)
    kinds = [s.type for s in found]
    assert state.data is found
    if StateType.CANCELLED in kinds:
        assert state.is_cancelled()
        assert state.message == f"{kinds.count(StateType.CANCELLED)}/{len(found)} states cancelled."
    elif StateType.FAILED in kinds or StateType.CRASHED in kinds:
        bad = kinds.count(StateType.FAILED) + kinds.count(StateType.CRASHED)
        assert state.is_failed()
        assert state.message == f"{bad}/{len(found)} states failed."
    else:
        assert state.message == "All states completed."
        assert state.result() is found


@given(
    st.recursive(st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c))
)
def test_plain_values_decide_nothing(value: Any) -> None:
    assert decide(value, _RUN) is None


@given(st.lists(states_of_any_kind, min_size=1, max_size=4))
def test_states_beside_data_or_deeper_decide_nothing(found: list[State[Any]]) -> None:
    assert decide([*found, "data"], _RUN) is None
    assert decide([found], _RUN) is None
    assert decide({"states": found}, _RUN) is None


def test_pending_is_not_a_final_state_to_return(backend: str) -> None:
    @task
    def waiting() -> Any:
        return Pending()

    @flow
    def main() -> str:
        return waiting(return_state=True).name

    assert main() == "Failed"
