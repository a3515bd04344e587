"""The engine's seam for time (``flowkit._engine.clock``): real time unless a clock is
installed, the latest installed one wins, and a sync body follows it only with a deadline."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from flowkit._engine import clock

START = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


class FakeSource:
    """A clock that says which one it is, and records what the engine asked of it."""

    def __init__(self, seconds: int = 0) -> None:
        self.at = START.replace(second=seconds)
        self.asked: list[str] = []
        self.working = 0

    def now(self) -> datetime:
        return self.at

    def loop_options(self, backend: str) -> dict[str, Any]:
        self.asked.append(backend)
        return {"loop_factory": self}

    def thread_at_work(self) -> AbstractContextManager[None]:
        return self._at_work()

    @contextmanager
    def _at_work(self) -> Iterator[None]:
        self.working += 1
        try:
            yield
        finally:
            self.working -= 1


@pytest.fixture
def installed() -> Iterator[list[FakeSource]]:
    """Sources a test installs; each one still installed at the end is uninstalled."""
    sources: list[FakeSource] = []
    yield sources
    for source in sources:
        with contextlib.suppress(ValueError):  # the test uninstalled it itself
            clock.uninstall(source)


def _install(installed: list[FakeSource], source: FakeSource) -> FakeSource:
    clock.install(source)
    installed.append(source)
    return source


def test_now_without_a_clock_is_the_real_utc_time() -> None:
    before = datetime.now(UTC)
    now = clock.now()
    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC)


def test_now_is_the_installed_clocks(installed: list[FakeSource]) -> None:
    source = _install(installed, FakeSource(7))
    assert clock.now() == source.at


def test_the_latest_installed_clock_wins(installed: list[FakeSource]) -> None:
    _install(installed, FakeSource(1))
    latest = _install(installed, FakeSource(2))
    assert clock.now() == latest.at


def test_clocks_may_be_uninstalled_in_any_order(installed: list[FakeSource]) -> None:
    first = _install(installed, FakeSource(1))
    second = _install(installed, FakeSource(2))
    clock.uninstall(first)
    assert clock.now() == second.at
    clock.uninstall(second)
    assert clock.now() not in (first.at, second.at)  # real time again


def test_loop_options_without_a_clock_are_none() -> None:
    assert clock.loop_options("asyncio") == {}
    assert clock.loop_options("trio") == {}


def test_loop_options_are_the_installed_clocks_for_that_backend(
    installed: list[FakeSource],
) -> None:
    source = _install(installed, FakeSource())
    assert clock.loop_options("trio") == {"loop_factory": source}
    assert source.asked == ["trio"]


def test_a_body_with_a_deadline_works_on_the_installed_clock(
    installed: list[FakeSource],
) -> None:
    source = _install(installed, FakeSource())
    with clock.thread_at_work(deadline=30.0):
        assert source.working == 1
    assert source.working == 0


def test_a_body_without_a_deadline_leaves_the_clock_alone(installed: list[FakeSource]) -> None:
    source = _install(installed, FakeSource())
    with clock.thread_at_work(deadline=None):
        assert source.working == 0


def test_a_body_with_a_deadline_needs_no_clock() -> None:
    with clock.thread_at_work(deadline=30.0):
        pass  # nothing to follow: real time passes anyway
