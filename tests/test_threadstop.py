"""Stopping a thread that runs a sync body (``flowkit._engine.threadstop``): a stop raises
in the body, and only there; one that comes first keeps the body from starting; a thread
that does not stop soon is reported and counted until it does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from flowkit import flow, task
from flowkit._engine import threadstop
from flowkit._engine.threadstop import (
    DeadlinePassed,
    Stoppable,
    ThreadCancelled,
    ThreadStopped,
)
from flowkit.runtime import abandoned_threads

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)


def wait_until(predicate: Callable[[], bool], seconds: float = 5) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def _python_for(seconds: float) -> str:
    """Run Python instructions (where a stop goes off) for up to ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "not stopped"


def _stop_in_thread(
    stoppable: Stoppable, why: type[ThreadStopped], body: Callable[[threading.Event], object]
) -> list[object]:
    """Run ``body(entered)`` under ``stoppable`` in a thread, stop it once the body has set
    ``entered``, and return what ``run`` returned or raised there."""
    entered, outcome = threading.Event(), []

    def work() -> None:
        try:
            outcome.append(stoppable.run(lambda: body(entered)))
        except ThreadStopped as exc:
            outcome.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    assert entered.wait(10)
    stoppable.stop(why)
    thread.join(10)
    return outcome


def test_run_returns_what_the_body_returns() -> None:
    stoppable = Stoppable("plain-0")
    assert stoppable.run(lambda: 42) == 42
    assert not stoppable.stopped


@pytest.mark.parametrize("why", [DeadlinePassed, ThreadCancelled])
def test_a_stop_raises_its_reason_in_the_running_body(why: type[ThreadStopped]) -> None:
    def body(entered: threading.Event) -> str:
        entered.set()
        return _python_for(10)

    [outcome] = _stop_in_thread(Stoppable("busy-0"), why, body)
    assert type(outcome) is why


def test_except_exception_in_the_body_does_not_swallow_a_stop() -> None:
    swallowed: list[BaseException] = []

    def body(entered: threading.Event) -> str:
        entered.set()
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                _python_for(0.01)
            except Exception as exc:  # user code that means to survive any error
                swallowed.append(exc)
        return "not stopped"

    [outcome] = _stop_in_thread(Stoppable("careless-0"), DeadlinePassed, body)
    assert isinstance(outcome, DeadlinePassed)
    assert swallowed == []


@pytest.mark.parametrize("why", [DeadlinePassed, ThreadCancelled])
def test_a_body_stopped_before_it_started_never_starts(why: type[DeadlinePassed]) -> None:
    started: list[str] = []
    stoppable = Stoppable("late-0")
    stoppable.stop(why)
    with pytest.raises(why):
        stoppable.run(lambda: started.append("body"))
    assert started == []


def test_the_first_stop_is_the_one_kept() -> None:
    stoppable = Stoppable("twice-0")
    stoppable.stop(DeadlinePassed)
    stoppable.stop(ThreadCancelled)
    with pytest.raises(ThreadStopped) as raised:
        stoppable.run(lambda: None)
    assert type(raised.value) is DeadlinePassed


def test_stopped_says_whether_a_stop_was_asked() -> None:
    stoppable = Stoppable("asked-0")
    assert not stoppable.stopped
    stoppable.stop(ThreadCancelled)
    assert stoppable.stopped


def test_a_stop_after_the_body_returned_never_reaches_the_thread() -> None:
    # A pool thread goes on to other work once the body returns: the stop must not hit it.
    stoppable = Stoppable("done-0")
    returned, stopped, later = threading.Event(), threading.Event(), []

    def worker() -> None:
        stoppable.run(lambda: None)
        returned.set()
        stopped.wait(10)
        try:
            later.append(_python_for(0.2))
        except ThreadStopped as exc:
            later.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    assert returned.wait(10)
    stoppable.stop(DeadlinePassed)
    stopped.set()
    thread.join(10)
    assert later == ["not stopped"]


def test_a_stuck_thread_is_reported_and_counted(
    backend: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(threadstop, "STUCK_AFTER", 0.05)
    release = threading.Event()

    @task(timeout_seconds=0.05)
    def stuck() -> None:
        release.wait(10)  # blocked in C: the stop request waits for it to return

    @flow
    def main() -> None:
        stuck(return_state=True)

    main()
    wait_until(lambda: abandoned_threads() == 1)
    assert any("'stuck-0' is past its deadline" in r.getMessage() for r in caplog.records)
    release.set()
    wait_until(lambda: abandoned_threads() == 0)


def test_a_stuck_thread_that_stops_at_last_is_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(threadstop, "STUCK_AFTER", 0.05)
    release = threading.Event()

    def body(entered: threading.Event) -> Any:
        entered.set()
        return release.wait(10)  # blocked in C until released

    stoppable = Stoppable("blocked-0")
    releaser = threading.Thread(
        target=lambda: (wait_until(lambda: abandoned_threads() == 1), release.set())
    )
    releaser.start()
    outcome = _stop_in_thread(stoppable, DeadlinePassed, body)
    releaser.join(10)
    assert isinstance(outcome[0], DeadlinePassed)
    assert abandoned_threads() == 0
    said = [r.getMessage() for r in caplog.records if r.name == "flowkit.engine"]
    assert said[-1] == "The thread of run 'blocked-0' has stopped at last"
