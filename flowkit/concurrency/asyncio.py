"""``concurrency`` and ``rate_limit`` for async code, on asyncio or trio."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from .._engine.limits import LoopWaiter, acquire, release, resolve
from ..exceptions import AcquireConcurrencySlotTimeoutError, ConcurrencySlotAcquisitionError
from . import _store as _store  # the run store's limits are found from now on

__all__ = [
    "AcquireConcurrencySlotTimeoutError",
    "ConcurrencySlotAcquisitionError",
    "concurrency",
    "rate_limit",
]


@asynccontextmanager
async def concurrency(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    lease_duration: float = 300,
    strict: bool = False,
) -> AsyncGenerator[None]:
    """Hold ``occupy`` slots of each limit in ``names`` for the ``async with`` block.

    Waiters are served first come, first served; a waiting caller is cancellable at
    once, and a holder gives its slots back however the block ends.

    Args:
        names: The name of a limit, or a list of names.
        occupy: How many slots to hold of each limit.
        timeout_seconds: How long to wait for the slots; ``None`` waits as long as it takes.
        lease_duration: For limits in the run store: seconds a holder's lease lasts
            unless renewed (its process renews it while it holds; a dead holder's slots
            come back when it expires, or at once on this host).
        strict: Raise if a name is not a defined limit, instead of warning once and
            skipping it.

    Raises:
        AcquireConcurrencySlotTimeoutError: The slots were not free in ``timeout_seconds``
            (a ``TimeoutError``).
        ConcurrencySlotAcquisitionError: ``strict`` and a name is not defined.
        ValueError: ``occupy`` exceeds a limit, or a bad ``occupy`` or ``timeout_seconds``.
    """
    limits = resolve(names, occupy, timeout_seconds, mode="concurrency", strict=strict)
    held = await acquire(
        limits, occupy, "concurrency", timeout_seconds, LoopWaiter, lease_duration=lease_duration
    )
    try:
        yield
    finally:
        await release(held, LoopWaiter)


async def rate_limit(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> None:
    """Wait until ``occupy`` slots of each limit in ``names`` are free, and take them;
    they are not given back but decay at the limit's ``slot_decay_per_second``.

    Args:
        names: The name of a limit, or a list of names; each must decay.
        occupy: How many slots to take of each limit.
        timeout_seconds: How long to wait for the slots; ``None`` waits as long as it takes.
        strict: Raise if a name is not a defined limit, instead of warning once and
            skipping it.

    Raises:
        AcquireConcurrencySlotTimeoutError: The slots were not free in ``timeout_seconds``
            (a ``TimeoutError``).
        ConcurrencySlotAcquisitionError: ``strict`` and a name is not defined.
        ValueError: A limit has no ``slot_decay_per_second``, ``occupy`` exceeds a limit,
            or a bad ``occupy`` or ``timeout_seconds``.
    """
    limits = resolve(names, occupy, timeout_seconds, mode="rate_limit", strict=strict)
    await acquire(limits, occupy, "rate_limit", timeout_seconds, LoopWaiter)
