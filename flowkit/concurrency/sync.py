"""``concurrency`` and ``rate_limit`` for sync code: they block the calling thread."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager

from .._engine.limits import ThreadWaiter, acquire, release, resolve
from .._engine.loops import drive
from ..exceptions import AcquireConcurrencySlotTimeoutError, ConcurrencySlotAcquisitionError
from . import _store as _store  # the run store's limits are found from now on

__all__ = [
    "AcquireConcurrencySlotTimeoutError",
    "ConcurrencySlotAcquisitionError",
    "concurrency",
    "rate_limit",
]


@contextmanager
def concurrency(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    lease_duration: float = 300,
    strict: bool = False,
) -> Generator[None]:
    """Hold ``occupy`` slots of each limit in ``names`` for the ``with`` block, blocking
    this thread while it waits (see ``flowkit.concurrency.asyncio.concurrency``).

    Args:
        names: The name of a limit, or a list of names.
        occupy: How many slots to hold of each limit.
        timeout_seconds: How long to wait for the slots; ``None`` waits as long as it takes.
        lease_duration: For limits in the run store: seconds a holder's lease lasts
            unless renewed.
        strict: Raise if a name is not a defined limit, instead of warning once and
            skipping it.

    Raises:
        AcquireConcurrencySlotTimeoutError: The slots were not free in ``timeout_seconds``.
        ConcurrencySlotAcquisitionError: ``strict`` and a name is not defined.
        ValueError: ``occupy`` exceeds a limit, or a bad ``occupy`` or ``timeout_seconds``.
        RuntimeError: It would have to wait on an event loop's own thread, which would
            stop that loop: use ``flowkit.concurrency.asyncio`` there.
    """
    limits = resolve(names, occupy, timeout_seconds, mode="concurrency", strict=strict)
    waiting = acquire(
        limits, occupy, "concurrency", timeout_seconds, ThreadWaiter, lease_duration=lease_duration
    )
    held = drive(waiting)
    try:
        yield
    finally:
        drive(release(held, ThreadWaiter))


def rate_limit(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> None:
    """Block until ``occupy`` slots of each limit in ``names`` are free, and take them;
    they decay at the limit's ``slot_decay_per_second``.

    Args:
        names: The name of a limit, or a list of names; each must decay.
        occupy: How many slots to take of each limit.
        timeout_seconds: How long to wait for the slots; ``None`` waits as long as it takes.
        strict: Raise if a name is not a defined limit, instead of warning once and
            skipping it.

    Raises:
        AcquireConcurrencySlotTimeoutError: The slots were not free in ``timeout_seconds``.
        ConcurrencySlotAcquisitionError: ``strict`` and a name is not defined.
        ValueError: A limit has no ``slot_decay_per_second``, ``occupy`` exceeds a limit,
            or a bad ``occupy`` or ``timeout_seconds``.
        RuntimeError: It would have to wait on an event loop's own thread.
    """
    limits = resolve(names, occupy, timeout_seconds, mode="rate_limit", strict=strict)
    drive(acquire(limits, occupy, "rate_limit", timeout_seconds, ThreadWaiter))
