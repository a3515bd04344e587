"""A run that is over never starts its body, nor goes on with it, however loaded the
engine is: the stop request for a sync body may come before its thread has entered it."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from flowkit import flow, runtime, task
from flowkit._engine import threadstop
from flowkit._engine.threadstop import DeadlinePassed, Stoppable
from flowkit.futures import TaskFuture
from flowkit.states import State

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)


def test_a_body_that_returned_as_it_was_stopped_leaves_nothing_pending() -> None:
    # The stop may come as the body returns; its exception must not go off later, in
    # code that is not the body (a worker thread's loop, the next run in that thread).
    for _ in range(200):
        stoppable = Stoppable("race-0")
        go = threading.Event()
        stopper = threading.Thread(target=_stop_when_set, args=(stoppable, go))
        stopper.start()
        with contextlib.suppress(DeadlinePassed):
            stoppable.run(go.set)
        stopper.join()
        for _ in range(1000):  # plenty of instructions for a pending exception to fire in
            pass


def _stop_when_set(stoppable: Stoppable, go: threading.Event) -> None:
    go.wait()
    stoppable.stop(DeadlinePassed)


def test_the_stop_of_a_body_outlives_the_end_of_a_body_inside_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stream's step runs inside a flow's body, in the same thread, and a thread has
    # one pending stop: when both are stopped, the outer one is asked again.
    monkeypatch.setattr(threadstop, "STUCK_AFTER", 0.05)
    outer, inner = Stoppable("flow-0"), Stoppable("step-0")
    reached: list[str] = []

    def stop_both() -> None:
        outer.stop(DeadlinePassed)
        inner.stop(DeadlinePassed)

    def step() -> None:
        stopper = threading.Thread(target=stop_both)
        stopper.start()
        stopper.join()  # both stops are requested while this waits in C
        reached.append("step")

    def flow_body() -> None:
        with contextlib.suppress(DeadlinePassed):  # as a stream turns it into TimedOut
            inner.run(step)
        for _ in range(300):  # three seconds, unless stopped
            time.sleep(0.01)
        reached.append("flow")

    with pytest.raises(DeadlinePassed):
        outer.run(flow_body)
    assert reached == []


def test_no_line_of_a_stopped_body_runs_after_its_run_is_over(
    backend: str, quiet: None, scale: Callable[[int], int], within: Any
) -> None:
    # Each body notes when it passes its last line; a run that ended TimedOut or
    # Cancelled must not have passed it after that end. (Before the engine saw the
    # deadline, a body starved of the loop may legitimately finish: it then ends first.)
    last_line: dict[str, datetime] = {}

    @task(timeout_seconds=0.02)
    def overruns() -> None:
        for _ in range(20):  # ten times its timeout: a loop that late is no longer "load"
            time.sleep(0.01)
        last_line[runtime.task_run.id] = datetime.now(UTC)

    @task
    def busy() -> None:  # keeps the interpreter loaded while threads start and stop
        end = time.monotonic() + 0.01
        while time.monotonic() < end:
            pass

    @task
    def sleeper() -> None:
        for _ in range(20):
            time.sleep(0.01)
        last_line[runtime.task_run.id] = datetime.now(UTC)

    ends: dict[str, State[Any]] = {}

    @flow(thread_limit=8)
    def load(n: int) -> None:
        futures: list[TaskFuture[Any]] = []
        for i in range(n):
            futures.append(overruns.submit())
            doomed = sleeper.submit()
            doomed.cancel()
            futures.append(doomed)
            if i % 4 == 0:
                futures.append(busy.submit())
        for future in futures:
            future.wait()
        # Kept aside, not returned: returned states would decide the flow's own state.
        ends.update({str(f.task_run_id): f.state for f in futures})

    n = scale(150)
    within(120, lambda: load(n))
    time.sleep(0.3)  # a body wrongly left running passes its last line by now
    assert Counter(s.name for s in ends.values()) == {
        "TimedOut": n,
        "Cancelled": n,
        "Completed": (n + 3) // 4,
    }
    late = [name for name, at in last_line.items() if at >= ends[name].timestamp]
    assert late == [], f"{len(late)} of {2 * n} stopped bodies ran on after their end"
