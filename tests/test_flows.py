"""Flows: sync and async, nested, on the caller's loop or their own (``flowkit.flows``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest
import trio
from shared_tasks import adouble, boom, double, loop_kind, recorded_states

from flowkit import allow_failure, flow, runtime, task

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)


# Flows


def test_sync_flow_starts_the_chosen_loop(backend: str) -> None:
    @flow
    def main() -> str:
        # The body runs in the caller's thread; an async task submitted from it runs on
        # the flow's loop.
        return loop_kind.submit().result()

    assert main() == {"asyncio+uvloop": "uvloop"}.get(backend, backend)


@task(timeout_seconds=60)  # its deadline needs an event loop
def loop_of_a_timed_task() -> str:
    # The body runs in a worker thread of the run's loop.
    return anyio.from_thread.run(loop_kind.fn)


def test_a_sync_task_outside_flows_starts_the_chosen_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_BACKEND", "uvloop")
    assert loop_of_a_timed_task() == "uvloop"


@pytest.mark.anyio
async def test_a_sync_task_called_from_async_code_gets_a_loop_like_its_callers(
    anyio_backend: object,
) -> None:
    assert loop_of_a_timed_task() == await loop_kind.fn()


@pytest.mark.parametrize("run", [anyio.run, trio.run])
def test_async_flow_runs_under_any_runner(run: Any) -> None:
    @flow
    async def main(x: int) -> int:
        return await adouble(x)

    assert run(main, 3) == 6


@pytest.mark.anyio
async def test_sync_flow_called_inside_a_running_loop_works() -> None:
    @flow
    def main() -> int:
        return double(5)

    assert main() == 10


def test_sync_flow_body_runs_in_the_callers_thread(backend: str) -> None:
    @flow
    def main() -> int:
        return threading.get_ident()

    assert main() == threading.get_ident()


def test_subflows_record_their_parent(backend: str) -> None:
    ids: dict[str, str | None] = {}

    @flow
    def child() -> None:
        ids["child_parent"] = runtime.flow_run.parent_flow_run_id

    @flow
    def parent() -> None:
        ids["parent"] = runtime.flow_run.id
        child()

    parent()
    assert ids["child_parent"] == ids["parent"]


@pytest.mark.anyio
async def test_sync_flow_called_from_an_async_flow_is_a_subflow() -> None:
    @flow
    def child() -> int:
        return double(1)

    @flow
    async def parent() -> int:
        return child()

    assert await parent() == 2


def test_final_state_message_summarises_task_runs(backend: str) -> None:
    @flow
    def fine() -> None:
        double(1)

    @flow
    def handled() -> None:
        double(1)
        boom("x", return_state=True)

    assert fine(return_state=True).message == "All states completed."
    assert handled(return_state=True).message == (
        "1 of 2 task runs did not complete; the flow handled them."
    )


@pytest.mark.anyio
async def test_cancelled_async_flow_ends_cancelled() -> None:
    seen, stop = recorded_states()

    @flow(name="sleeper")
    async def main() -> None:
        await anyio.sleep_forever()

    try:
        with anyio.move_on_after(0.05):
            await main()
    finally:
        stop()
    assert seen[-1][1] == "Cancelled"


def test_keyboard_interrupt_in_a_task_crashes_the_run_and_propagates(backend: str) -> None:
    seen, stop = recorded_states()

    @task
    def interrupted() -> None:
        raise KeyboardInterrupt

    @flow
    def main() -> None:
        interrupted()

    try:
        with pytest.raises(KeyboardInterrupt):
            main()
    finally:
        stop()
    finals = {name: state for name, state in seen}
    assert finals["interrupted-0"] == "Crashed"


def test_engine_error_marks_the_run_crashed(monkeypatch: pytest.MonkeyPatch) -> None:
    seen, stop = recorded_states()

    def broken_logging(enabled: bool) -> Any:
        raise RuntimeError("engine fault")

    monkeypatch.setattr("flowkit._engine.lifecycle.engine.printing_to_log", broken_logging)
    try:
        with pytest.raises(RuntimeError, match="engine fault"):
            double(1)
    finally:
        stop()
    assert seen[-1] == ("double-0", "Crashed")


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
