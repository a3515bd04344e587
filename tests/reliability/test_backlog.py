"""A flow with more sync task runs than worker threads keeps the rest in a backlog: when
the flow times out, is cancelled or is interrupted, the caller gets just that (not a
group of engine errors), every run ends in a final state (those that never started,
Cancelled), and the call does not wait for the bodies it no longer needs."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from flowkit import flow, task
from flowkit._engine import events
from flowkit._engine.loops import loop_args
from flowkit.exceptions import FlowTimeoutError
from flowkit.task_runners import ProcessPoolTaskRunner

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)

THREADS = 4
RUNS = 50  # 46 more than there are threads: most wait in the backlog
WATCHDOG = 20.0  # the sleepers would take 13 x 3 s if the call waited for them all


@task
def sleeper(i: int) -> int:
    for _ in range(300):  # 3 s in short steps: a stopped thread stops at the next one
        time.sleep(0.01)
    return i


class Finals:
    """What became of each task run: the names of the states it entered."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}

    def __call__(self, event: object) -> None:
        if isinstance(event, events.StateChanged) and event.run.kind == "task":
            self.seen.setdefault(event.run.name, []).append(event.state.name)

    def check(self) -> None:
        """Every run ended, and those that never entered Running ended Cancelled."""
        assert len(self.seen) == RUNS
        unfinished = {name: names for name, names in self.seen.items() if not _ended(names)}
        assert unfinished == {}
        unstarted = {name: names[-1] for name, names in self.seen.items() if "Running" not in names}
        assert unstarted  # the backlog was there
        assert set(unstarted.values()) == {"Cancelled"}


def _ended(names: list[str]) -> bool:
    return names[-1] in {"Completed", "Failed", "Cancelled", "Crashed", "TimedOut"}


@pytest.fixture
def finals() -> Iterator[Finals]:
    seen = Finals()
    stop = events.subscribe(seen)
    yield seen
    stop()


def _run_async(backend: str, main: Callable[[], Any]) -> Any:
    loop, options = loop_args(backend)  # type: ignore[arg-type]
    return anyio.run(main, backend=loop, backend_options=options)


def test_a_sync_flow_that_times_out_with_a_backlog_raises_its_timeout(
    backend: str, burners: None, quiet: None, within: Any, finals: Finals
) -> None:
    @flow(timeout_seconds=0.5, thread_limit=THREADS)
    def waits() -> list[int]:
        return [future.result() for future in sleeper.map(range(RUNS))]

    with pytest.raises(FlowTimeoutError, match=r"exceeded its timeout of 0\.5 s"):
        within(WATCHDOG, waits)
    finals.check()


def test_an_async_flow_that_times_out_with_a_backlog_raises_its_timeout(
    backend: str, burners: None, quiet: None, within: Any, finals: Finals
) -> None:
    @flow(timeout_seconds=0.5, thread_limit=THREADS)
    async def waits() -> list[int]:
        return [await future for future in sleeper.map(range(RUNS))]

    with pytest.raises(FlowTimeoutError, match=r"exceeded its timeout of 0\.5 s"):
        within(WATCHDOG, lambda: _run_async(backend, waits))
    finals.check()


@pytest.mark.parametrize("how", ["cancel", "move_on_after"])
def test_cancelling_the_scope_around_an_async_flow_with_a_backlog_cancels_it(
    backend: str, burners: None, quiet: None, within: Any, finals: Finals, how: str
) -> None:
    scopes: list[anyio.CancelScope] = []

    @flow(thread_limit=THREADS)
    async def waits() -> list[int]:
        futures = sleeper.map(range(RUNS))
        if how == "cancel":
            scopes[0].cancel()  # the caller's scope, as a sibling task would cancel it
        return [await future for future in futures]

    async def main() -> str:
        with anyio.move_on_after(0.5 if how == "move_on_after" else None) as scope:
            scopes.append(scope)
            await waits()
            return "not cancelled"
        return "cancelled"

    assert within(WATCHDOG, lambda: _run_async(backend, main)) == "cancelled"
    finals.check()


def test_runs_not_yet_started_on_a_process_runner_end_cancelled_with_their_flow(
    backend: str, burners: None, quiet: None, within: Any, finals: Finals
) -> None:
    # Cancelled before they ran a step, the children still need their flow's nursery as
    # they end in its task group: on a process runner, to give their worker back.
    scopes: list[anyio.CancelScope] = []

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
    async def waits() -> list[int]:
        futures = sleeper.map(range(RUNS))
        scopes[0].cancel()
        return [await future for future in futures]

    async def main() -> str:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await waits()
            return "not cancelled"
        return "cancelled"

    assert within(WATCHDOG, lambda: _run_async(backend, main)) == "cancelled"
    assert len(finals.seen) == RUNS
    assert {names[-1] for names in finals.seen.values()} == {"Cancelled"}


SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    import anyio
    from flowkit import flow, task
    from flowkit._engine import events
    from flowkit._engine.loops import loop_args

    seen = {}
    events.subscribe(
        lambda e: seen.setdefault(e.run.name, []).append(e.state.name)
        if isinstance(e, events.StateChanged) and e.run.kind == "task" else None
    )
    started = threading.Event()

    @task
    def sleeper(i):
        if not started.is_set():
            started.set()
            print("ready", flush=True)
        for _ in range(300):
            time.sleep(0.01)
        return i

    threads, runs = int(sys.argv[3]), int(sys.argv[4])

    @flow(thread_limit=threads)
    def sync_flow():
        return [future.result() for future in sleeper.map(range(runs))]

    @flow(thread_limit=threads)
    async def async_flow():
        return [await future for future in sleeper.map(range(runs))]

    try:
        if sys.argv[1] == "sync":
            sync_flow()
        else:
            loop, options = loop_args(sys.argv[2])
            anyio.run(async_flow, backend=loop, backend_options=options)
    except KeyboardInterrupt:
        print(json.dumps(seen), flush=True)
        sys.exit(3)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_ctrl_c_on_a_flow_with_a_backlog_interrupts_it(
    backend: str, burners: None, kind: str, ctrl_c: Callable[..., tuple[int, str, str]]
) -> None:
    # Not the 39 s the sleepers would take:
    code, out, err = ctrl_c(SCRIPT, kind, backend, str(THREADS), str(RUNS), timeout=WATCHDOG)
    assert code == 3, err
    assert "ExceptionGroup" not in err
    assert "AssertionError" not in err
    seen = Finals()
    seen.seen = json.loads(out)
    seen.check()
