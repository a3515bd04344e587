"""Futures of submitted task runs, and ways to wait for many at once.

``Task.submit`` returns a ``TaskFuture``; ``Task.map`` a ``TaskFutureList`` of them.
``PrefectFuture`` and ``PrefectFutureList`` are the same classes, under the names the
reference documentation uses.
"""

from __future__ import annotations

import queue
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

import anyio

from ._engine.lifecycle.futures import TaskFuture, TaskFutureList, deadline, lending_slot

__all__ = [
    "DoneAndNotDoneFutures",
    "PrefectFuture",
    "PrefectFutureList",
    "TaskFuture",
    "TaskFutureList",
    "as_completed",
    "as_completed_async",
    "wait",
    "wait_async",
]

R = TypeVar("R")

PrefectFuture = TaskFuture
PrefectFutureList = TaskFutureList


class DoneAndNotDoneFutures(NamedTuple):
    """What ``wait`` returns: the futures that are over, and those that are not."""

    done: set[TaskFuture[Any]]
    not_done: set[TaskFuture[Any]]


def _split(futures: Iterable[TaskFuture[Any]]) -> DoneAndNotDoneFutures:
    done = {f for f in futures if f.done()}
    return DoneAndNotDoneFutures(done, {f for f in futures if f not in done})


def wait(futures: Iterable[TaskFuture[Any]], timeout: float | None = None) -> DoneAndNotDoneFutures:
    """Block until every future is over, or ``timeout`` seconds have passed.

    Returns:
        The futures that are over and those that are not (after a ``timeout``).

    Raises:
        ValueError: ``timeout`` is negative.
        FutureDeadlockError: Called on the event loop's thread while a run is not over;
            use ``wait_async`` there.
    """
    remaining = deadline(timeout)
    futures = list(futures)
    for future in futures:
        future.wait(remaining())
    return _split(futures)


async def wait_async(futures: Iterable[TaskFuture[Any]]) -> None:
    """Wait, without blocking the event loop, until every future is over.

    To bound the wait, put it in ``anyio.move_on_after(...)`` and check ``done()``.
    """
    for future in futures:
        await future._until_done()  # pyright: ignore[reportPrivateUsage]


def as_completed(
    futures: Iterable[TaskFuture[R]], timeout: float | None = None
) -> Iterator[TaskFuture[R]]:
    """Yield the futures as their runs finish, blocking in between.

    Raises:
        ValueError: ``timeout`` is negative.
        TimeoutError: Some runs were not over within ``timeout`` seconds.
        FutureDeadlockError: Called on the event loop's thread; use ``as_completed_async``.
    """
    remaining = deadline(timeout, "as_completed")
    pending = set(futures)
    finished: queue.SimpleQueue[TaskFuture[R]] = queue.SimpleQueue()
    for future in pending:
        future.add_done_callback(finished.put)
    while pending:
        for future in pending:
            future._check_can_block()  # pyright: ignore[reportPrivateUsage]
        try:
            with lending_slot():
                future = finished.get(timeout=remaining())
        except queue.Empty:
            raise TimeoutError(
                f"{len(pending)} of the task runs did not finish within {timeout} s"
            ) from None
        pending.discard(future)
        yield future


async def as_completed_async(futures: Iterable[TaskFuture[R]]) -> AsyncIterator[TaskFuture[R]]:
    """Yield the futures as their runs finish, without blocking the event loop.

    To bound the wait, put the loop in ``anyio.fail_after(...)``.
    """
    pending = set(futures)
    send, receive = anyio.create_memory_object_stream[TaskFuture[R]](len(pending))
    for future in pending:
        future.add_done_callback(send.send_nowait)
    with receive, send:
        for _ in range(len(pending)):
            yield await receive.receive()
