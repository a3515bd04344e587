"""Stopping a thread that runs a sync body past its deadline.

anyio cancels async code at its next ``await``; a thread has no such point, and nothing
in Python can kill one. What CPython offers is ``PyThreadState_SetAsyncExc``: it makes a
thread raise an exception of our choosing at its next Python instruction. At a deadline
the engine stops waiting for the thread at once (the run ends TimedOut and its caller
goes on), then asks the thread to raise ``ThreadStopped``.

Limits, which no library can lift:

- A thread blocked in C code (``time.sleep``, a socket read, a lock) raises only when
  that call returns to Python. If it is still running ``STUCK_AFTER`` seconds after the
  request, a WARNING names its run and ``abandoned_threads()`` counts it until it stops.
- The exception can be caught by a bare ``except:`` or ``except BaseException`` in the
  body; such code can outlive its deadline.
- The request is made only while the thread is still inside the body it was started
  for, so it never hits a pool thread that has moved on to other work.

A stop that comes before the thread has entered the body (under load, a worker may pick
a body up after its deadline) is kept, and the body then never starts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = [
    "STUCK_AFTER",
    "DeadlinePassed",
    "Stoppable",
    "ThreadCancelled",
    "ThreadStopped",
    "abandoned_threads",
]

T = TypeVar("T")

STUCK_AFTER = 1.0
"""Seconds a thread may take to stop before it is reported as abandoned."""

_log = logging.getLogger("flowkit.engine")
_lock = threading.Lock()
_abandoned = 0


class ThreadStopped(BaseException):
    """Raised inside a thread whose run was stopped.

    A ``BaseException``, so that ``except Exception`` in user code does not swallow it.
    """


class DeadlinePassed(ThreadStopped):
    """The run's deadline (its own or an enclosing run's) passed."""


class ThreadCancelled(ThreadStopped):
    """The run was cancelled."""


def abandoned_threads() -> int:
    """How many threads were asked to stop and have not stopped yet."""
    return _abandoned


def _count(delta: int) -> None:
    global _abandoned
    with _lock:
        _abandoned += delta


class Stoppable:
    """One body in one thread that the engine may ask to stop.

    ``run`` executes the body in the current thread; ``stop``, called from any other
    thread, makes it raise ``ThreadStopped`` while it is still in the body. A stop that
    comes before the thread has entered the body is kept: the body then never starts.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._thread: int | None = None
        self._stopped: type[ThreadStopped] | None = None
        self._reported = False

    @property
    def stopped(self) -> bool:
        """Whether the engine has asked the body to stop (it may still be stopping)."""
        return self._stopped is not None

    def run(self, body: Callable[[], T]) -> T:
        """Run ``body`` in this thread, stoppable until it returns.

        Raises:
            ThreadStopped: The run was stopped, before the body started or while it ran.
        """
        with self._lock:
            if self._stopped is not None:
                # Under load the deadline may pass before a worker picks the body up;
                # the run is over, so its body must not start late.
                raise self._stopped(f"run {self.name!r} was stopped before its body started")
            self._thread = threading.get_ident()
        try:
            return body()
        finally:
            late: ThreadStopped | None = None
            while True:
                try:
                    self._leave()
                    break
                except ThreadStopped as exc:  # went off here, as the body returned
                    late = exc
            if late is not None:
                raise late

    def _leave(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            if self._stopped is not None and thread is not None:
                # A stop requested as the body returned may not have gone off yet; it
                # must not go off later, in whatever this thread runs next.
                _set_async_exc(thread, None)
            reported, self._reported = self._reported, False
        if reported:
            _count(-1)
            _log.warning("The thread of run %r has stopped at last", self.name)

    def stop(self, why: type[ThreadStopped]) -> None:
        """Ask the thread to raise ``why``; report it if it has not stopped soon after.

        If the thread has not entered the body yet, the body will never start.
        """
        with self._lock:
            if self._stopped is not None:
                return
            self._stopped = why
            if self._thread is None:
                return
            _set_async_exc(self._thread, why)
        timer = threading.Timer(STUCK_AFTER, self._check)
        timer.daemon = True
        timer.start()

    def _check(self) -> None:
        with self._lock:
            if self._thread is None:
                return
            # Asked again: a thread has one pending stop, so the stop of a body running
            # inside this one in the same thread (a stream's step in a flow's body) may
            # have taken its place, and a body may have caught it.
            assert self._stopped is not None
            _set_async_exc(self._thread, self._stopped)
            self._reported = True
            _count(1)
        _log.warning(
            "The thread of run %r is past its deadline and has not stopped after %.1f s "
            "(blocked in C code?); it will stop at its next Python instruction",
            self.name,
            STUCK_AFTER,
        )


def _set_async_exc(thread: int, exc: type[BaseException] | None) -> None:
    """Make ``thread`` raise ``exc`` at its next Python instruction (``None``: no longer)."""
    import ctypes  # here: ~10 ms to import, and only a stopped run needs it

    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), None if exc is None else ctypes.py_object(exc)
    )
