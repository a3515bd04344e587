"""Futures' small contracts: a timeout is a number of seconds, at least 0, or ``None``."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import flowkit
from flowkit import flow, task
from flowkit.exceptions import (
    CancelledRun,
)


@task
def double(x: int) -> int:
    return 2 * x


BAD_TIMEOUTS = [-1, -0.5, math.nan]


def test_a_futures_public_surface_is_prefects_and_flowkits_documented_additions() -> None:
    prefect = {"task_run_id", "state", "wait", "result", "add_done_callback"}
    flowkits = {"done", "cancel", "wait_async"}  # and ``await future``
    public = {n for n in dir(flowkit.TaskFuture) if not n.startswith("_")}
    assert public == prefect | flowkits
    assert hasattr(flowkit.TaskFuture, "__await__")


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS)
def test_result_refuses_a_negative_timeout(backend: str, timeout: float) -> None:
    @flow
    def main() -> None:
        future = double.submit(1)
        with pytest.raises(ValueError, match=r"'double-0': result\(timeout=.*\).*at least 0"):
            future.result(timeout=timeout)
        future.result()

    main()


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS)
def test_future_wait_refuses_a_negative_timeout(backend: str, timeout: float) -> None:
    @flow
    def main() -> None:
        future = double.submit(1)
        with pytest.raises(ValueError, match=r"'double-0': wait\(timeout="):
            future.wait(timeout)
        future.result()

    main()


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS)
def test_wait_refuses_a_negative_timeout(backend: str, timeout: float) -> None:
    @flow
    def main() -> None:
        futures = double.map([1, 2])
        with pytest.raises(ValueError, match=r"^wait\(timeout=.*pass None to wait"):
            flowkit.wait(futures, timeout=timeout)
        futures.result()

    main()


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS)
def test_future_list_result_refuses_a_negative_timeout(backend: str, timeout: float) -> None:
    @flow
    def main() -> None:
        futures = double.map([1, 2])
        with pytest.raises(ValueError, match=r"^result\(timeout="):
            futures.result(timeout=timeout)
        futures.result()

    main()


def test_as_completed_refuses_a_negative_timeout(backend: str) -> None:
    @flow
    def main() -> None:
        futures = double.map([1, 2])
        with pytest.raises(ValueError, match=r"^as_completed\(timeout=-1\)"):
            list(flowkit.as_completed(futures, timeout=-1))
        futures.result()

    main()


def test_a_zero_timeout_is_a_poll(backend: str) -> None:
    @flow
    def main() -> Any:
        future = double.submit(2)
        future.wait()
        return future.result(timeout=0), flowkit.wait([future], timeout=0).not_done

    assert main() == (4, set())


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


@pytest.mark.every_loop
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
