"""Futures' small contracts: a timeout is a number of seconds, at least 0, or ``None``."""

from __future__ import annotations

import math
from typing import Any

import pytest

import flowkit
from flowkit import flow, task


@task
def double(x: int) -> int:
    return 2 * x


BAD_TIMEOUTS = [-1, -0.5, math.nan]


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
