"""A run that is over never starts its body, nor goes on with it, however loaded the
engine is: the stop request for a sync body may come before its thread has entered it."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from flowkit import flow, task
from flowkit._engine.threadstop import DeadlinePassed, Stoppable, ThreadCancelled


@pytest.mark.parametrize("why", [DeadlinePassed, ThreadCancelled])
def test_a_body_stopped_before_it_started_never_starts(why: type[DeadlinePassed]) -> None:
    started: list[str] = []
    stoppable = Stoppable("late-0")
    stoppable.stop(why)
    with pytest.raises(why):
        stoppable.run(lambda: started.append("body"))
    assert started == []


def test_a_body_that_returned_as_it_was_stopped_leaves_nothing_pending() -> None:
    # The stop may come as the body returns; its exception must not go off later, in
    # code that is not the body (a worker thread's loop, the next run in that thread).
    for _ in range(200):
        stoppable = Stoppable("race-0")
        go = threading.Event()
        stopper = threading.Thread(target=lambda s=stoppable: (go.wait(), s.stop(DeadlinePassed)))
        stopper.start()
        try:
            stoppable.run(go.set)
        except DeadlinePassed:
            pass
        stopper.join()
        for _ in range(1000):  # plenty of instructions for a pending exception to fire in
            pass


def test_timed_out_and_cancelled_bodies_never_reach_their_last_line(
    backend: str, quiet: None, scale: Callable[[int], int], within: Any
) -> None:
    reached: list[int] = []

    @task(timeout_seconds=0.02)
    def overruns(i: int) -> None:
        time.sleep(0.05)
        time.sleep(0.05)
        reached.append(i)  # past the deadline: must never run

    @task
    def busy() -> None:  # keeps the interpreter loaded while threads start and stop
        end = time.monotonic() + 0.01
        while time.monotonic() < end:
            pass

    @task
    def sleeper(i: int) -> None:
        time.sleep(0.1)
        reached.append(-i - 1)  # cancelled long before: must never run

    @flow(thread_limit=8)
    def load(n: int) -> list[str]:
        futures = []
        for i in range(n):
            futures.append(overruns.submit(i))
            doomed = sleeper.submit(i)
            doomed.cancel()
            futures.append(doomed)
            if i % 4 == 0:
                futures.append(busy.submit())
        for future in futures:
            future.wait()
        return [f.state.name for f in futures]

    n = scale(150)
    names = Counter(within(120, lambda: load(n)))
    time.sleep(0.3)  # a body that was wrongly left running reaches its last line by now
    assert names == {"TimedOut": n, "Cancelled": n, "Completed": (n + 3) // 4}
    assert reached == [], f"{len(reached)} of {2 * n} stopped bodies ran to their end"
