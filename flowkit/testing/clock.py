"""Virtual time: event loops whose clock jumps ahead whenever every task is waiting.

One ``VirtualClock`` is the time of every loop that runs under it: the test's own loop
(through the pytest plugin, or ``VirtualClock.run``) and each loop flowkit starts for a
sync flow or task while the clock is installed. On asyncio the loop is a
``SelectorEventLoop`` whose ``time()`` is the clock's and whose selector, asked to sleep
until the next timer with nothing else to do, jumps the clock there instead; on trio it
is trio's own ``MockClock(autojump_threshold=0)``, kept in step with the shared clock.

Threads are what a loop cannot see: a sync body at work in a thread takes no virtual
time, and the loop, idle meanwhile, would jump past the body's deadline. So while a sync
body with a deadline works in a thread, the clock follows real time instead of jumping.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Generator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal, TypeVar, TypeVarTuple, Unpack

import anyio
import sniffio
import trio
import trio.lowlevel
import trio.testing

from .._engine import clock as engine_clock

__all__ = ["VirtualClock", "VirtualLoop", "on_virtual_loop", "virtual_clock"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class VirtualClock:
    """Time for event loops that jumps ahead whenever every task is waiting.

    ``time()`` starts at 0 and counts virtual seconds; ``now()`` is the wall-clock time
    the clock stands for (its start, plus ``time()``). Install it with ``virtual_clock()``
    or the ``virtual_clock`` pytest fixture.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        # While sync bodies with a deadline work in threads: since when (real, monotonic).
        self._real_since: float | None = None
        self._at_work = 0
        self._start = datetime.now(UTC)
        self._trio_clocks: weakref.WeakSet[trio.testing.MockClock] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"<VirtualClock at {self.time():.3f} s>"

    def time(self) -> float:
        """Virtual seconds since the clock was made."""
        with self._lock:
            return self._sync()

    def _sync(self) -> float:
        # trio's clocks jump on their own (autojump): the shared time is the furthest any
        # of them went; the ones behind are brought up to it.
        for clock in list(self._trio_clocks):
            self._offset = max(self._offset, clock.current_time() - self._stretch())
        now = self._offset + self._stretch()
        for clock in list(self._trio_clocks):
            if (behind := now - clock.current_time()) > 0:
                clock.jump(behind)
        return now

    def _stretch(self) -> float:
        return 0.0 if self._real_since is None else time.monotonic() - self._real_since

    def now(self) -> datetime:
        """The wall-clock time (UTC) the clock stands for."""
        return self._start + timedelta(seconds=self.time())

    def advance(self, seconds: float) -> None:
        """Move time ahead by ``seconds``, as if they had passed.

        Call it between runs, or from async code on a loop of the clock: timers due by
        then fire on that loop's next turn.

        Raises:
            ValueError: ``seconds`` is negative or not finite: time only moves forward.
        """
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(
                f"VirtualClock.advance({seconds!r}): time only moves forward; give a finite "
                "number of seconds >= 0"
            )
        with self._lock:
            self._offset += seconds
            self._sync()

    @property
    def follows_real_time(self) -> bool:
        """Whether the clock follows real time now (a sync body with a deadline is at work)."""
        return self._at_work > 0

    def loop_options(self, backend: str) -> dict[str, Any]:
        """anyio ``backend_options`` for a loop that runs on this clock.

        Raises:
            ValueError: ``backend`` is neither ``"asyncio"`` nor ``"trio"``.
        """
        if backend == "asyncio":
            return {"loop_factory": partial(VirtualLoop, self)}
        if backend == "trio":
            clock = trio.testing.MockClock(autojump_threshold=0)
            with self._lock:
                clock.jump(self._sync())
                self._trio_clocks.add(clock)
            return {"clock": clock}
        raise ValueError(
            f"virtual clock: no virtual loop for backend {backend!r}; use 'asyncio' or 'trio'"
        )

    @contextmanager
    def thread_at_work(self) -> Generator[None, None, None]:
        """On a loop's thread, while a sync body with a deadline works: follow real time."""
        trio_clock = _current_trio_clock()
        with self._lock:
            if self._at_work == 0:
                self._offset = self._sync()
                self._real_since = time.monotonic()
            self._at_work += 1
        if trio_clock is not None:
            trio_clock.rate, trio_clock.autojump_threshold = 1.0, math.inf
        try:
            yield
        finally:
            with self._lock:
                self._at_work -= 1
                done = self._at_work == 0
                if done:
                    self._offset = self._sync()
                    self._real_since = None
            if trio_clock is not None and done:
                trio_clock.rate, trio_clock.autojump_threshold = 0.0, 0.0

    def run(
        self,
        func: Callable[[Unpack[Ts]], Awaitable[T]],
        *args: *Ts,
        backend: Literal["asyncio", "trio"] = "asyncio",
    ) -> T:
        """Run ``func(*args)`` on a new event loop of this clock, and return its value.

        For async code outside pytest (``unittest``, scripts); the clock is installed
        meanwhile, as by ``virtual_clock``.

        Raises:
            Exception: Whatever ``func`` raised.
        """
        with _installed(self):
            return anyio.run(
                func, *args, backend=backend, backend_options=self.loop_options(backend)
            )


def _current_trio_clock() -> trio.testing.MockClock | None:
    if sniffio.current_async_library() != "trio":
        return None
    clock = trio.lowlevel.current_clock()
    return clock if isinstance(clock, trio.testing.MockClock) else None


class _Selector(selectors.DefaultSelector):
    """A selector that, asked to sleep until a timer with nothing to do, jumps there."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout <= 0 or self._clock.follows_real_time:
            return super().select(timeout)
        ready = super().select(0)  # a thread may have handed the loop work meanwhile
        if not ready:
            self._clock.advance(timeout)
        return ready


class VirtualLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose time is a ``VirtualClock``'s."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(_Selector(clock))
        self.clock = clock

    def time(self) -> float:
        return self.clock.time()


def on_virtual_loop() -> bool | None:
    """Whether the loop running here is on a virtual clock; ``None`` outside any loop."""
    try:
        if sniffio.current_async_library() == "trio":
            clock = trio.lowlevel.current_clock()
            return isinstance(clock, trio.testing.MockClock) and clock.autojump_threshold == 0
        return isinstance(asyncio.get_running_loop(), VirtualLoop)
    except (sniffio.AsyncLibraryNotFoundError, RuntimeError):  # no loop runs in this thread
        return None


@contextmanager
def _installed(clock: VirtualClock) -> Generator[VirtualClock, None, None]:
    engine_clock.install(clock)
    try:
        yield clock
    finally:
        engine_clock.uninstall(clock)


def virtual_clock(clock: VirtualClock | None = None) -> AbstractContextManager[VirtualClock]:
    """Run flowkit's waiting on a virtual clock inside the block.

    The loops flowkit starts in the block (for sync flows, and sync tasks called outside
    flows) run on the clock, and cache expiry reads its time. Async code needs its own
    loop on the clock: the pytest fixture gives the test one; elsewhere use
    ``VirtualClock.run``.

    Raises:
        RuntimeError: Entered in async code whose event loop is not on a virtual clock.
    """
    if on_virtual_loop() is False:
        raise RuntimeError(
            "virtual_clock() was entered on an event loop with real time, so the waits of "
            "the flows awaited there would stay real; use the virtual_clock pytest fixture "
            "(it runs the test on a virtual loop) or VirtualClock().run(main)"
        )
    return _installed(clock if clock is not None else VirtualClock())
