"""Timeouts, retries and state hooks (both backends). No assertion here reads a clock."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from flowkit import flow, runtime, task
from flowkit._engine import events
from flowkit.exceptions import FlowTimeoutError, TaskTimeoutError
from flowkit.runtime import abandoned_threads
from flowkit.tasks import exponential_backoff
from flowkit.testing import VirtualClock

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)


def state_names() -> tuple[dict[str, list[str]], Any]:
    seen: dict[str, list[str]] = {}
    stop = events.subscribe(lambda e: seen.setdefault(e.run.name, []).append(e.state.name))
    return seen, stop


def wait_until(predicate: Any, seconds: float = 5) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


# Timeouts


def test_sync_task_past_its_timeout_is_stopped(backend: str) -> None:
    release, printed = threading.Event(), []

    @task(timeout_seconds=0.1)
    def show_timeouts() -> None:
        printed.append("I will execute")
        release.wait(5)
        printed.append("I will not execute")

    @flow
    def main() -> Any:
        return show_timeouts(return_state=True)

    # The flow hands the task's state back as its result (Prefect's rule).
    state = main(return_state=True).result(raise_on_failure=False)
    release.set()
    wait_until(lambda: abandoned_threads() == 0)
    assert state.name == "TimedOut"
    assert state.is_failed()
    assert isinstance(state.exception, TaskTimeoutError)
    assert isinstance(state.exception, TimeoutError)
    time.sleep(0.05)
    assert printed == ["I will execute"]


@pytest.mark.anyio
async def test_async_task_past_its_timeout_is_cancelled(virtual_clock: VirtualClock) -> None:
    printed: list[str] = []

    @task(timeout_seconds=60)
    async def show_timeouts() -> None:
        printed.append("I will execute")
        await anyio.sleep_forever()

    @flow
    async def main() -> None:
        await show_timeouts()

    with pytest.raises(TaskTimeoutError, match=r"exceeded its timeout of 60 s"):
        await main()
    assert printed == ["I will execute"]
    assert virtual_clock.time() == 60


@pytest.mark.anyio
async def test_flow_timeout_stops_its_children(virtual_clock: VirtualClock) -> None:
    seen, stop = state_names()

    @task
    async def child() -> None:
        await anyio.sleep_forever()

    @flow(timeout_seconds=3600)
    async def parent() -> None:
        child.submit()
        await anyio.sleep_forever()

    try:
        with pytest.raises(FlowTimeoutError):
            await parent()
    finally:
        stop()
    assert seen["child-0"][-1] in ("TimedOut", "Cancelled")


@pytest.mark.anyio
async def test_a_childs_deadline_is_its_parents_when_earlier(
    virtual_clock: VirtualClock,
) -> None:
    @task(timeout_seconds=3600)
    async def patient() -> None:
        await anyio.sleep_forever()

    @task(timeout_seconds=60)
    async def hurried() -> None:
        await patient()

    @flow
    async def main() -> Any:
        return await hurried(return_state=True)

    state = (await main(return_state=True)).result(raise_on_failure=False)
    assert state.name == "TimedOut"


def test_raising_timeout_error_is_a_failure_not_a_timeout(backend: str) -> None:
    @task(timeout_seconds=5)
    def own_timeout() -> None:
        raise TimeoutError("mine")

    @flow
    def main() -> Any:
        return own_timeout(return_state=True)

    assert main(return_state=True).result(raise_on_failure=False).name == "Failed"


def test_a_timed_out_attempt_is_retried(backend: str, virtual_clock: VirtualClock) -> None:
    attempts: list[int] = []

    @task(timeout_seconds=600, retries=1, retry_delay_seconds=60)
    async def slow_then_fast() -> int:
        attempts.append(runtime.task_run.run_count)
        if len(attempts) == 1:
            await anyio.sleep_forever()
        return len(attempts)

    @flow
    def main() -> int:
        return slow_then_fast.submit().result()

    assert main() == 2
    assert attempts == [1, 2]
    assert virtual_clock.time() == 660


@pytest.mark.anyio
async def test_sync_task_with_a_timeout_called_from_async_code_runs_blocking() -> None:
    @task(timeout_seconds=1)
    def sync_with_deadline() -> int:
        return 3

    @flow
    async def main() -> int:
        return sync_with_deadline()  # blocks the loop, as any sync call does

    assert await main() == 3


# Retries


def test_retries_count_attempts_and_pass_through_retry_states(backend: str) -> None:
    seen, stop = state_names()
    counts: list[int] = []

    @task(retries=2)
    def flaky() -> str:
        counts.append(runtime.task_run.run_count)
        if len(counts) < 3:
            raise ValueError("transient")
        return "ok"

    @flow
    def main() -> str:
        return flaky()

    try:
        assert main() == "ok"
    finally:
        stop()
    assert counts == [1, 2, 3]
    assert seen["flaky-0"] == [
        "Pending", "Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying",
        "Completed",
    ]  # fmt: skip


def test_exhausted_retries_fail_with_the_last_exception(backend: str) -> None:
    @task(retries=1)
    def always() -> None:
        raise ValueError(f"attempt {runtime.task_run.run_count}")

    @flow
    def main() -> None:
        always()

    with pytest.raises(ValueError, match="attempt 2"):
        main()


def test_retry_condition_stops_retries(backend: str) -> None:
    calls: list[str] = []

    def only_value_errors(task: Any, run: Any, state: Any) -> bool:
        return isinstance(state.exception, ValueError)

    @task(retries=3, retry_condition_fn=only_value_errors)
    def picky() -> None:
        calls.append("call")
        raise KeyError("not retried")

    @flow
    def main() -> None:
        picky()

    with pytest.raises(KeyError):
        main()
    assert calls == ["call"]


def test_flow_retries_recover_from_a_transient_failure(backend: str) -> None:
    attempts: list[int] = []

    @flow(retries=3, retry_delay_seconds=0)
    def get_repo_info() -> int:
        attempts.append(runtime.flow_run.run_count)
        if len(attempts) < 2:
            raise ConnectionError("the API hiccuped")
        return len(attempts)

    assert get_repo_info() == 2
    assert attempts == [1, 2]


def test_backoff_delays_pass_in_order(backend: str, virtual_clock: VirtualClock) -> None:
    waited: list[float] = []

    @task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=10))
    def flaky() -> None:
        waited.append(virtual_clock.time())
        if len(waited) < 4:
            raise ConnectionError("again")

    @flow
    def main() -> None:
        flaky()

    main()
    assert waited == [0, 10, 30, 70]


# Hooks


def test_task_hooks_fire_once_each(backend: str) -> None:
    calls: list[tuple[str, str, str]] = []

    def hook(name: str) -> Any:
        return lambda t, run, state: calls.append((name, run.name, state.name))

    @task(on_running=[hook("running")], on_completion=[hook("completion")])
    def good() -> None: ...

    @task(on_failure=[hook("failure")])
    def bad() -> None:
        raise ValueError

    @flow
    def main() -> None:
        good()
        bad(return_state=True)

    main()
    assert calls == [
        ("running", "good-0", "Running"), ("completion", "good-0", "Completed"),
        ("failure", "bad-0", "Failed"),
    ]  # fmt: skip


@pytest.mark.anyio
async def test_flow_cancellation_and_async_hooks() -> None:
    calls: list[str] = []

    async def on_cancel(flow: Any, run: Any, state: Any) -> None:
        await anyio.lowlevel.checkpoint()
        calls.append(state.name)

    @flow(on_cancellation=[on_cancel])
    async def main() -> None:
        await anyio.sleep_forever()

    with anyio.move_on_after(0.05):
        await main()
    assert calls == ["Cancelled"]


def test_crash_hook_fires_on_keyboard_interrupt(backend: str) -> None:
    calls: list[str] = []

    @flow(on_crashed=[lambda f, run, state: calls.append(state.name)])
    def main() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        main()
    assert calls == ["Crashed"]


def test_a_failing_hook_is_logged_and_changes_nothing(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="flowkit")

    def broken(task: Any, run: Any, state: Any) -> None:
        raise RuntimeError("hook broke")

    @task(on_completion=[broken])
    def fine() -> int:
        return 1

    @flow
    def main() -> Any:
        return fine(return_state=True)

    state = main(return_state=True)
    assert state.is_completed()
    assert any("Hook" in r.getMessage() and "fine-0" in r.getMessage() for r in caplog.records)
