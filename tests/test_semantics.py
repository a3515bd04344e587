"""Calling contracts: submit and map with return_state, wait_for, annotations, sync and
async code calling each other (returned values: test_returned; validation: test_validation)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from flowkit import allow_failure, flow, quote, task, unmapped
from flowkit._engine import events
from flowkit.exceptions import (
    CancelledRun,
    FutureDeadlockError,
    UpstreamFailedError,
)
from flowkit.states import (
    Completed,
    Failed,
    State,
)


@task
def ident(x: Any) -> Any:
    return x


@task
def boom(message: str = "boom") -> None:
    raise ValueError(message)


# Calling contracts


def test_submit_with_return_state_waits_and_returns_the_state(backend: str) -> None:
    @flow
    def main() -> tuple[str, str]:
        good = ident.submit(1, return_state=True)
        bad = boom.submit(return_state=True)
        return good.name, bad.name

    assert main() == ("Completed", "Failed")


@pytest.mark.anyio
async def test_submit_with_return_state_on_the_loop_says_what_to_do() -> None:
    @flow
    async def main() -> None:
        ident.submit(1, return_state=True)

    with pytest.raises(FutureDeadlockError, match="wait_async"):
        await main()


def test_map_over_a_future_and_a_state(backend: str) -> None:
    @flow
    def main() -> Any:
        listed = ident.submit([1, 2])
        return ident.map(listed).result(), ident.map(Completed(data=(3, 4))).result()

    assert main() == ([1, 2], [3, 4])


def test_map_over_quote_and_allow_failure_wraps_each_element(backend: str) -> None:
    @task
    def kind(x: Any) -> str:
        return type(x).__name__

    @flow
    def main() -> Any:
        failing = boom.submit()
        quoted = ident.map(quote([[1], [2]])).result()
        allowed = kind.map(allow_failure([failing, ident.submit(1)])).result()
        return quoted, allowed

    assert main() == ([[1], [2]], ["ValueError", "int"])


def test_map_a_function_with_var_kwargs_and_var_args(backend: str) -> None:
    @task
    def gather(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return args, kwargs

    @flow
    def main() -> Any:
        return gather.map([1, 2], unmapped("u"), a=[10, 20], b=unmapped(0)).result()

    assert main() == [((1, "u"), {"a": 10, "b": 0}), ((2, "u"), {"a": 20, "b": 0})]


def test_map_with_return_state_waits_and_returns_the_states(backend: str) -> None:
    @task
    def check(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    @flow
    def main() -> list[tuple[str, Any]]:
        states = check.map([1, 2, 3], return_state=True)
        assert type(states) is list
        return [(s.name, s.result(raise_on_failure=False)) for s in states]

    # The failed run's state was looked at: it does not fail the flow.
    assert [(name, str(value)) for name, value in main()] == [
        ("Completed", "1"), ("Failed", "two"), ("Completed", "3"),
    ]  # fmt: skip


def test_map_of_an_async_task_with_return_state_gives_its_states(backend: str) -> None:
    @task
    async def adouble(x: int) -> int:
        return 2 * x

    @flow
    def main() -> list[int]:
        return [s.result() for s in adouble.map([1, 2], return_state=True)]

    assert main() == [2, 4]


@pytest.mark.anyio
async def test_map_with_return_state_on_the_loop_says_what_to_do() -> None:
    @flow
    async def main() -> None:
        ident.map([1, 2], return_state=True)

    with pytest.raises(FutureDeadlockError, match=r"task 'ident'.*wait_async"):
        await main()


def test_map_gives_every_run_the_exception_of_a_failed_allow_failure_argument(
    backend: str,
) -> None:
    @task
    def pair(y: int, z: Any) -> tuple[int, str]:
        return y, repr(z)

    @flow
    def main() -> list[tuple[int, str]]:
        failing = boom.submit("upstream")
        return pair.map([1, 2, 3], allow_failure(failing)).result()

    assert main() == [(i, "ValueError('upstream')") for i in (1, 2, 3)]


def test_map_records_a_failed_allow_failure_argument_as_every_runs_upstream(
    backend: str,
) -> None:
    @task
    def pair(y: int, z: Any) -> int:
        return y

    seen: list[Any] = []

    @flow
    def main() -> str:
        failing = boom.submit()
        pair.map([1, 2], allow_failure(failing)).wait()
        return str(failing.task_run_id)

    stop = events.subscribe(seen.append)
    try:
        upstream = main()
    finally:
        stop()
    inputs = [
        e.task_inputs
        for e in seen
        if isinstance(e, events.StateChanged) and e.run.definition == "pair" and e.state.is_final()
    ]
    assert inputs == [{"z": [upstream]}] * 2


def test_a_subflow_waits_for_wait_for(backend: str) -> None:
    order: list[str] = []

    @task
    def first() -> None:
        time.sleep(0.05)
        order.append("task")

    @flow
    def sub() -> None:
        order.append("subflow")

    @flow
    def main() -> None:
        sub(wait_for=[first.submit()])

    main()
    assert order == ["task", "subflow"]


def test_a_failed_wait_for_stops_a_subflow_unless_allowed(backend: str) -> None:
    @flow
    def sub() -> str:
        return "ran"

    @flow
    def main() -> tuple[str, str]:
        failing = boom.submit()
        stopped = sub(wait_for=[failing], return_state=True)
        allowed = sub(wait_for=[allow_failure([failing])])
        return stopped.name, allowed

    assert main() == ("NotReady", "ran")


def test_wait_for_takes_plain_values_and_states(backend: str) -> None:
    @flow
    def main() -> tuple[Any, str]:
        ran = ident(1, wait_for=[None, "x", Completed(data=1)])
        stopped = ident(2, wait_for=[Failed("upstream")], return_state=True)
        return ran, stopped.name

    assert main() == (1, "NotReady")


def test_wait_for_that_is_not_a_list_says_so(backend: str) -> None:
    @flow
    def main() -> None:
        ident(1, wait_for=ident.submit(1))  # type: ignore[call-overload]

    with pytest.raises(TypeError, match=r"wait_for takes a list"):
        main()


def test_a_failed_state_in_wait_for_names_it(backend: str) -> None:
    @flow
    def main() -> None:
        ident(1, wait_for=[boom.submit()])

    with pytest.raises(UpstreamFailedError, match="boom-0"):
        main()


@pytest.mark.anyio
async def test_a_sync_task_with_options_runs_blocking_from_async_code() -> None:
    seen: list[str] = []

    @task(retries=1, on_completion=[lambda _t, _r, s: seen.append(s.name)])
    def flaky() -> str:
        seen.append("try")
        if seen.count("try") < 2:
            raise ValueError("first")
        return "ok"

    @flow
    async def main() -> str:
        return flaky()

    assert await main() == "ok"
    assert seen == ["try", "try", "Completed"]


@pytest.mark.anyio
async def test_a_sync_task_called_from_async_code_keeps_its_deadline() -> None:
    release = threading.Event()

    @task(timeout_seconds=0.1)
    def stuck() -> None:
        release.wait(5)

    @flow
    async def main() -> str:
        return stuck(return_state=True).name

    try:
        assert await main() == "TimedOut"
    finally:
        release.set()


@pytest.mark.anyio
async def test_inside_a_blocking_sync_task_async_tasks_run_and_submits_refuse() -> None:
    @task
    async def inner() -> int:
        return 5

    @task(retries=1)
    def outer() -> int:
        with pytest.raises(RuntimeError, match="submit that task instead of calling it"):
            ident.submit(1)
        return inner()  # type: ignore[return-value]  # sync code: runs on the task's loop

    @flow
    async def main() -> int:
        return outer()

    with anyio.fail_after(10):
        assert await main() == 5


@pytest.mark.anyio
async def test_a_sync_task_with_options_runs_outside_any_flow_under_a_loop() -> None:
    @task(retries=1)
    def plain() -> int:
        return 4

    assert plain() == 4


@pytest.mark.anyio
async def test_an_async_retry_condition_is_awaited() -> None:
    attempts: list[int] = []

    async def only_once(_task: Any, run: Any, _state: State[Any]) -> bool:
        await anyio.lowlevel.checkpoint()
        return bool(run.run_count < 2)

    @task(retries=5, retry_condition_fn=only_once)
    async def flaky() -> None:
        attempts.append(1)
        raise ValueError("again")

    @flow
    async def main() -> None:
        await flaky()

    with pytest.raises(ValueError, match="again"):
        await main()
    assert len(attempts) == 2


def test_a_generator_tasks_return_value_is_its_result(backend: str) -> None:
    states: list[State[Any]] = []
    stop = events.subscribe(
        lambda e: (
            states.append(e.state) if e.run.name == "counted-0" and e.state.is_final() else None
        )
    )

    @task
    def counted() -> Iterator[int]:
        yield 1
        yield 2
        return "two"  # a generator task may return, as a generator may

    @flow
    def main() -> Any:
        returned: list[Any] = []

        def reader() -> Iterator[int]:
            returned.append((yield from counted()))

        return list(reader()), returned

    try:
        assert main() == ([1, 2], ["two"])
    finally:
        stop()
    assert [s.data for s in states] == ["two"]


def test_containers_without_futures_reach_the_task_as_the_same_objects(backend: str) -> None:
    given_list, given_dict = [1], {"a": 1}

    @task
    def same(items: list[int], mapping: dict[str, int]) -> bool:
        return items is given_list and mapping is given_dict

    @flow
    def main() -> bool:
        return same(given_list, given_dict)

    assert main() is True


def test_containers_with_futures_get_their_values(backend: str) -> None:
    @task
    def total(items: list[int]) -> int:
        return sum(items)

    @flow
    def main() -> int:
        return total([1, ident.submit(2)])

    assert main() == 3


@pytest.mark.anyio
async def test_awaiting_a_cancelled_future_raises_cancelled_run_not_cancellation() -> None:
    @task
    async def forever() -> None:
        await anyio.sleep_forever()

    @flow
    async def main() -> str:
        future = forever.submit()
        await anyio.sleep(0.01)
        future.cancel()
        try:
            await future
        except CancelledRun as exc:
            await anyio.lowlevel.checkpoint()  # this task was not cancelled: it still runs
            return str(exc)
        return "not raised"

    assert await main() == "task run 'forever-0' was cancelled"


def test_a_cancelled_future_result_raises_cancelled_run_in_sync_code(backend: str) -> None:
    release = threading.Event()

    @task
    def blocked() -> None:
        release.wait(5)

    @flow
    def main() -> str:
        future = blocked.submit()
        time.sleep(0.05)
        future.cancel()
        try:
            future.result()
        except CancelledRun:
            return "cancelled"
        finally:
            release.set()
        return "done"

    assert main() == "cancelled"


def test_a_sync_flow_calling_an_async_task_gets_its_value(backend: str) -> None:
    @task
    async def add_one(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x + 1

    @flow
    def main() -> int:
        return add_one(1)  # type: ignore[return-value]  # a sync flow: run on its loop

    assert main() == 2


def test_a_sync_flow_calling_an_async_subflow_gets_its_value(backend: str) -> None:
    @flow
    async def child() -> str:
        return "child"

    @flow
    def main() -> str:
        return child()  # type: ignore[return-value]

    assert main() == "child"


def test_a_sync_flow_returning_a_generator_gets_a_list(backend: str) -> None:
    @flow
    def main() -> Any:
        return (i * i for i in range(3))

    assert main() == [0, 1, 4]


@pytest.mark.anyio
async def test_an_async_flow_returning_a_generator_gets_a_list() -> None:
    @flow
    async def main() -> Any:
        return (i * i for i in range(3))

    assert await main() == [0, 1, 4]
