"""Tasks called plainly, submitted and mapped, on asyncio, trio and uvloop (``flowkit.tasks``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest
import trio
from shared_tasks import adouble, boom, double, ident, recorded_states

from flowkit import allow_failure, flow, quote, runtime, task, unmapped
from flowkit._engine import events
from flowkit.exceptions import (
    FutureDeadlockError,
    UpstreamFailedError,
)
from flowkit.states import (
    Completed,
    Failed,
    State,
)

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)


# Calling


def test_sync_task_in_sync_flow_returns_its_value(backend: str) -> None:
    @flow
    def main() -> int:
        return double(3) + double(4)

    assert main() == 14


@pytest.mark.anyio
async def test_async_task_in_async_flow_is_awaited() -> None:
    @flow
    async def main() -> int:
        return await adouble(5)

    assert await main() == 10


def test_task_outside_any_flow_runs_as_its_own_run() -> None:
    seen, stop = recorded_states()
    try:
        assert double(21) == 42
    finally:
        stop()
    assert seen == [("double-0", "Pending"), ("double-0", "Running"), ("double-0", "Completed")]


def test_async_task_outside_any_flow_runs_on_the_callers_loop() -> None:
    assert anyio.run(adouble, 4) == 8
    assert trio.run(adouble, 4) == 8


def test_task_called_from_a_task_records_its_parent(backend: str) -> None:
    parents: list[str | None] = []

    @task
    def inner() -> None:
        parents.append(runtime.task_run.parent_task_run_id)

    @task
    def outer() -> str | None:
        inner()
        return runtime.task_run.id

    @flow
    def main() -> str | None:
        return outer()

    assert parents == [main()]


def test_return_state_gives_the_final_state(backend: str) -> None:
    seen: list[State[Any]] = []

    @flow
    def main() -> None:
        seen.extend([double(2, return_state=True), boom("no", return_state=True)])

    main()
    done, failed = seen
    assert done.is_completed()
    assert done.result() == 4
    assert failed.is_failed()
    assert isinstance(failed.result(raise_on_failure=False), ValueError)
    with pytest.raises(ValueError, match="no"):
        failed.result()


def test_failed_task_raises_its_own_exception_and_fails_the_flow(backend: str) -> None:
    @flow
    def main() -> None:
        boom("broken")

    with pytest.raises(ValueError, match="broken"):
        main()
    state = main(return_state=True)
    assert state.is_failed()
    assert isinstance(state.exception, ValueError)


@pytest.mark.anyio
async def test_failed_async_flow_raises_the_exception_not_a_group() -> None:
    @flow
    async def main() -> None:
        boom("plain")

    with pytest.raises(ValueError, match="plain"):
        await main()


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
