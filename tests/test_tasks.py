"""Tasks called plainly, submitted and mapped, on asyncio, trio and uvloop (``flowkit.tasks``)."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest
import trio
from shared_tasks import adouble, boom, double, recorded_states

from flowkit import flow, runtime, task
from flowkit.states import State

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
