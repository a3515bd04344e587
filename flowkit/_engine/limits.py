"""Concurrency and rate limits: slot accounting, in-process limits, and waiting for slots.

A limit has ``limit`` slots. ``concurrency`` holds slots for the length of a block and
gives them back; ``rate_limit`` takes slots that are never given back, which decay at
``slot_decay_per_second``. A limit lives in this process (``LocalLimit``, a few
microseconds to take a free slot) or in the run store, shared by every process that uses
it; the store's limits are reached through ``shared_limits_with``, set from above, since
the engine knows no store by name.

Waiting is written once, as async code, against a ``Waiter``: ``LoopWaiter`` suspends on
the event loop (asyncio or trio); ``ThreadWaiter`` blocks its thread without ever
suspending, so sync callers drive the same coroutine with ``loops.drive``. Waiters of
one in-process limit are served first come, first served: a free slot is taken at once
only when nobody waits for it, and each waiter that takes its slots wakes the next.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs
import sniffio

from ..exceptions import AcquireConcurrencySlotTimeoutError, ConcurrencySlotAcquisitionError
from .loops import call_soon_threadsafe, drive

if TYPE_CHECKING:
    pass

__all__ = [
    "LocalLimit",
    "Mode",
    "Slots",
    "acquire",
    "find",
    "release",
    "shared_limits_with",
    "tag_slots",
]

T = TypeVar("T")
Mode = Literal["concurrency", "rate_limit"]
TAG_PREFIX = "tag:"
"""A limit named ``tag:<tag>`` bounds the task runs tagged ``<tag>``, as in Prefect."""
_EPSILON = 1e-9  # decayed slots are floats: never refuse a slot for a rounding error

_log = logging.getLogger("flowkit.concurrency")


@attrs.define
class Slots:
    """The accounting of one limit: slots held, and rate-limit slots not yet decayed.

    Attributes:
        limit: How many slots the limit has.
        decay: Slots that decay per second (``None``: no decay, and no rate limiting).
        held: Slots held by ``concurrency`` blocks; they count until given back.
        spent: Slots taken by ``rate_limit`` and not yet decayed.
        at: When ``spent`` was last decayed (seconds, on the limit's clock).
    """

    limit: int
    decay: float | None = None
    held: int = 0
    spent: float = 0.0
    at: float = 0.0

    def settle(self, now: float) -> None:
        """Let ``spent`` decay up to ``now``."""
        if self.decay and self.spent and now > self.at:
            self.spent = max(0.0, self.spent - self.decay * (now - self.at))
        self.at = max(self.at, now)

    def fits(self, occupy: int) -> bool:
        """Whether ``occupy`` more slots are free now (``settle`` first)."""
        return self.held + self.spent + occupy <= self.limit + _EPSILON

    def take(self, occupy: int, mode: Mode) -> None:
        """Occupy ``occupy`` slots: held until given back, or spent to decay."""
        if mode == "rate_limit":
            self.spent += occupy
        else:
            self.held += occupy

    def give_back(self, occupy: int) -> None:
        """Free ``occupy`` held slots."""
        self.held = max(0, self.held - occupy)

    def wait_hint(self, occupy: int) -> float | None:
        """Seconds until decay alone frees room for ``occupy`` slots; ``None`` if only a
        holder giving its slots back can."""
        if not self.decay or self.held + occupy > self.limit:
            return None
        return max(0.0, (self.held + self.spent + occupy - self.limit) / self.decay)


def check_request(name: str, limit: int, decay: float | None, occupy: int, mode: Mode) -> None:
    """Refuse a request that could never be granted.

    Raises:
        ValueError: ``occupy`` exceeds the limit, or ``rate_limit`` on a limit without decay.
    """
    if occupy > limit:
        raise ValueError(
            f"occupy={occupy} exceeds limit {name!r} of {limit} slot(s): it could never be "
            "granted; occupy fewer slots or raise the limit"
        )
    if mode == "rate_limit" and not decay:
        raise ValueError(
            f"rate_limit needs limit {name!r} to decay: define it with "
            "slot_decay_per_second (e.g. limit=10, slot_decay_per_second=10 for 10 per second)"
        )


# Waiters: how one caller waits, on an event loop or in a blocking thread.


class Waiter(abc.ABC):
    """One caller waiting for slots of one limit."""

    def __init__(self, occupy: int, mode: Mode, lease_duration: float = 300.0) -> None:
        self.occupy = occupy
        self.mode: Mode = mode
        self.lease_duration = lease_duration
        self.lease: str | None = None  # a shared limit's lease, once taken
        self.polls = 0  # how often a shared limit was looked at again (its backoff)

    @abc.abstractmethod
    def arm(self) -> None:
        """Get ready for a wake; call before looking at the limit, so none is lost."""

    @abc.abstractmethod
    def wake(self) -> None:
        """Called, under the limit's lock, from any thread: look again."""

    @abc.abstractmethod
    async def wait(self, seconds: float) -> None:
        """Wait for a wake, at most ``seconds`` (``math.inf``: no bound)."""

    @abc.abstractmethod
    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn`` (which does I/O) without blocking an event loop."""

    def now(self) -> float:
        return time.monotonic()


class ThreadWaiter(Waiter):
    """Blocks its thread; its coroutines never suspend (drive them with ``drive``)."""

    def __init__(self, occupy: int, mode: Mode, lease_duration: float = 300.0) -> None:
        super().__init__(occupy, mode, lease_duration)
        self._event = threading.Event()

    def arm(self) -> None:
        self._event.clear()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        try:
            library: str | None = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = None
        if library is not None:
            raise RuntimeError(
                f"waiting for a concurrency slot here would block this thread's {library} "
                "event loop, which may be the one that must free it; in async code use "
                "flowkit.concurrency.asyncio"
            )
        self._event.wait(None if seconds == math.inf else seconds)

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)


class LoopWaiter(Waiter):
    """Suspends on the running event loop; woken from any thread."""

    def __init__(self, occupy: int, mode: Mode, lease_duration: float = 300.0) -> None:
        super().__init__(occupy, mode, lease_duration)
        self._event = anyio.Event()
        # A release may come from another thread (or loop): the wake crosses over.
        self._call_soon: Callable[[Callable[[], object]], object]
        self._call_soon = call_soon_threadsafe(anyio.lowlevel.current_token())

    def arm(self) -> None:
        if self._event.is_set():
            self._event = anyio.Event()

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # its loop is gone, and the waiter with it
            self._call_soon(self._set)

    def _set(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            await self._event.wait()

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args)


# Limits: in this process, or shared through the run store.


class Limit(Protocol):
    """What a waiter needs of a limit, wherever its slots are counted."""

    @property
    def name(self) -> str: ...
    @property
    def does_io(self) -> bool: ...

    def check(self, occupy: int, mode: Mode) -> None: ...
    def take_nowait(self, occupy: int, mode: Mode) -> bool: ...
    def join(self, waiter: Waiter) -> None: ...
    def poll(self, waiter: Waiter) -> tuple[bool, float | None]: ...
    def leave(self, waiter: Waiter) -> None: ...
    def release(self, occupy: int, lease: str | None) -> None: ...


class LocalLimit:
    """A limit kept in this process's memory, shared by its threads and event loops."""

    does_io = False

    def __init__(
        self,
        name: str,
        limit: int,
        slot_decay_per_second: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.slots = Slots(limit, slot_decay_per_second, at=clock())
        self.queue: collections.deque[Waiter] = collections.deque()
        self._clock = clock
        self._lock = threading.Lock()
        self.closed = False

    def check(self, occupy: int, mode: Mode) -> None:
        check_request(self.name, self.slots.limit, self.slots.decay, occupy, mode)

    def occupied(self) -> float:
        """Slots held or not yet decayed, now."""
        with self._lock:
            self.slots.settle(self._clock())
            return self.slots.held + self.slots.spent

    def take_nowait(self, occupy: int, mode: Mode) -> bool:
        with self._lock:
            if self.queue:  # first come, first served: no overtaking a waiter
                return False
            slots = self.slots
            slots.settle(self._clock())
            if not slots.fits(occupy):
                return False
            slots.take(occupy, mode)
            return True

    def join(self, waiter: Waiter) -> None:
        with self._lock:
            self.queue.append(waiter)

    def poll(self, waiter: Waiter) -> tuple[bool, float | None]:
        with self._lock:
            if self.closed:  # deleted: nothing left to wait for
                return True, None
            if self.queue[0] is not waiter:
                return False, None
            slots = self.slots
            slots.settle(self._clock())
            if not slots.fits(waiter.occupy):
                return False, slots.wait_hint(waiter.occupy)
            slots.take(waiter.occupy, waiter.mode)
            self.queue.popleft()
            if self.queue:  # slots may be left for the next in line
                self.queue[0].wake()
            return True, None

    def leave(self, waiter: Waiter) -> None:
        with self._lock:
            if self.queue and self.queue[0] is waiter:
                self.queue.popleft()
                if self.queue:  # the one behind may fit where this one did not
                    self.queue[0].wake()
            elif waiter in self.queue:
                self.queue.remove(waiter)

    def release(self, occupy: int, lease: str | None) -> None:
        with self._lock:
            self.slots.give_back(occupy)
            if self.queue:
                self.queue[0].wake()

    def resize(self, limit: int, slot_decay_per_second: float | None) -> None:
        """Change the size and decay; slots held stay held."""
        with self._lock:
            self.slots.settle(self._clock())
            self.slots.limit, self.slots.decay = limit, slot_decay_per_second
            if self.queue:
                self.queue[0].wake()

    def close(self) -> None:
        """The limit is deleted: every waiter goes ahead."""
        with self._lock:
            self.closed = True
            for waiter in self.queue:
                waiter.wake()

    def reset(self) -> None:
        """Free every slot (held ones included), and let the waiters look again."""
        with self._lock:
            self.slots.held, self.slots.spent = 0, 0.0
            if self.queue:
                self.queue[0].wake()


_local: dict[str, LocalLimit] = {}
_shared: Callable[[Sequence[str]], dict[str, Limit]] | None = None
_warned: set[str] = set()


def define_local(name: str, limit: int, slot_decay_per_second: float | None) -> None:
    """Define this process's limit ``name``, or resize it (its holders keep their slots)."""
    found = _local.get(name)
    if found is None:
        _local[name] = LocalLimit(name, limit, slot_decay_per_second)
    else:
        found.resize(limit, slot_decay_per_second)


def delete_local(name: str) -> bool:
    """Delete this process's limit ``name``, if it has one; its waiters go ahead."""
    found = _local.pop(name, None)
    if found is not None:
        found.close()
    return found is not None


def local_limits() -> dict[str, LocalLimit]:
    """This process's limits, by name."""
    return _local


def shared_limits_with(lookup: Callable[[Sequence[str]], dict[str, Limit]]) -> None:
    """Have ``lookup(names)`` find the limits of ``names`` kept outside this process."""
    global _shared
    _shared = lookup


def find(names: Iterable[str]) -> dict[str, Limit]:
    """The limits of ``names`` that are defined: in this process first, then shared."""
    found: dict[str, Limit] = {}
    missing: list[str] = []
    for name in names:
        limit = _local.get(name)
        if limit is not None:
            found[name] = limit
        else:
            missing.append(name)
    if missing and _shared is not None:
        found.update(_shared(missing))
    return found


# Acquiring and releasing.


def _names(names: str | Sequence[str], what: str) -> list[str]:
    if isinstance(names, str):
        return [names]
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"{what}: names must be a string or a list of strings, not {names!r}")
    return sorted(set(names))


def _check_options(what: str, occupy: int, timeout_seconds: float | None) -> None:
    if isinstance(occupy, bool) or not isinstance(occupy, int) or occupy < 1:
        raise ValueError(f"{what}: occupy must be a whole number of slots >= 1, not {occupy!r}")
    if timeout_seconds is not None and not (
        isinstance(timeout_seconds, int | float) and timeout_seconds >= 0
    ):
        raise ValueError(
            f"{what}: timeout_seconds must be a number of seconds >= 0 or None, "
            f"not {timeout_seconds!r}"
        )


def resolve(
    names: str | Sequence[str], occupy: int, timeout_seconds: float | None, *, mode: Mode,
    strict: bool,
) -> list[Limit]:  # fmt: skip
    """The defined limits among ``names``, in a fixed order, checked for the request.

    Raises:
        ConcurrencySlotAcquisitionError: ``strict`` and a name is not defined.
        ValueError: A bad ``occupy`` or ``timeout_seconds``, or a request that could never
            be granted.
        TypeError: ``names`` is not a string or a list of strings.
    """
    what = f"{mode}({names!r})"
    _check_options(what, occupy, timeout_seconds)
    wanted = _names(names, what)
    found = find(wanted)
    for name in wanted:
        if name in found:
            continue
        if strict:
            raise ConcurrencySlotAcquisitionError(
                f"{what}: no limit named {name!r} is defined; define it with "
                f"flowkit.concurrency.define({name!r}, limit=...) or `flowkit limits create "
                f"{name} --limit N`, or pass strict=False to skip undefined names"
            )
        if name not in _warned:
            _warned.add(name)
            _log.warning("Concurrency limit %r is not defined: %s does not wait for it", name, what)
    # One order for everybody: two callers never each hold what the other waits for.
    limits = [found[name] for name in wanted if name in found]
    for limit in limits:
        limit.check(occupy, mode)
    return limits


@attrs.frozen
class Holding:
    """Slots taken from one limit; given back on release (``concurrency`` only)."""

    limit: Limit
    occupy: int
    mode: Mode
    lease: str | None = None


async def acquire(
    limits: Sequence[Limit],
    occupy: int,
    mode: Mode,
    timeout_seconds: float | None,
    waiter_type: type[Waiter],
    on_wait: Callable[[Limit], None] | None = None,
    lease_duration: float = 300.0,
) -> list[Holding]:
    """Take ``occupy`` slots of each of ``limits``, in order, waiting as long as it takes;
    ``on_wait(limit)`` is called the first time a limit makes the caller wait.

    Raises:
        AcquireConcurrencySlotTimeoutError: ``timeout_seconds`` passed first; nothing is
            held then.
    """
    taken: list[Holding] = []
    deadline = math.inf if timeout_seconds is None else time.monotonic() + timeout_seconds
    try:
        for limit in limits:
            if not limit.does_io and limit.take_nowait(occupy, mode):
                taken.append(Holding(limit, occupy, mode))
            else:
                waiter = waiter_type(occupy, mode, lease_duration)
                await _wait_for(limit, waiter, deadline, timeout_seconds, on_wait)
                on_wait = None
                taken.append(Holding(limit, occupy, mode, waiter.lease))
    except BaseException:
        await release(taken, waiter_type)
        raise
    return taken


async def _wait_for(
    limit: Limit,
    waiter: Waiter,
    deadline: float,
    timeout_seconds: float | None,
    on_wait: Callable[[Limit], None] | None,
) -> None:
    limit.join(waiter)
    try:
        while True:
            waiter.arm()
            if limit.does_io:
                took, hint = await waiter.offload(limit.poll, waiter)
            else:
                took, hint = limit.poll(waiter)
            if took:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AcquireConcurrencySlotTimeoutError(
                    f"Attempt to acquire {waiter.occupy} slot(s) of {limit.name!r} timed out "
                    f"after {timeout_seconds:g} second(s); raise timeout_seconds or the limit"
                )
            if on_wait is not None:
                on_wait(limit)
                on_wait = None
            await waiter.wait(min(remaining, math.inf if hint is None else hint))
    finally:
        limit.leave(waiter)


async def release(holdings: Iterable[Holding], waiter_type: type[Waiter]) -> None:
    """Give back the held slots of ``holdings`` (rate-limit slots decay on their own).

    Shielded: cancellation never costs a holder its release.
    """
    for holding in holdings:
        if holding.mode != "concurrency":
            continue
        limit = holding.limit
        if limit.does_io and waiter_type is LoopWaiter:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(limit.release, holding.occupy, holding.lease)
        else:
            limit.release(holding.occupy, holding.lease)


class _Held:
    """The tag slots of one attempt: given back when the attempt ends."""

    def __init__(self, held: list[Holding]) -> None:
        self.held = held

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        # A store release is a short write: done here, even on the loop's thread, so that
        # the slot is free before the run's final state is told.
        drive(release(self.held, ThreadWaiter))


_NOTHING_HELD = _Held([])


async def tag_slots(
    tags: frozenset[str], waits_in_thread: bool, on_wait: Callable[[str], object]
) -> AbstractContextManager[None]:
    """Take a slot of each tag limit of a task run's ``tags``, calling ``on_wait(tag)``
    before waiting for a busy one; return what gives them back. A run driven in its
    calling thread (``waits_in_thread``) must not suspend: it waits by blocking.

    Raises:
        ValueError: A tag limit can never be had (see ``check_request``).
    """
    if not tags or not (_local or _shared):
        return _NOTHING_HELD
    found = find(sorted(TAG_PREFIX + tag for tag in tags))
    if not found:
        return _NOTHING_HELD
    limits = [found[name] for name in sorted(found)]
    for limit in limits:
        limit.check(1, "concurrency")

    def waiting(limit: Limit) -> None:
        on_wait(limit.name.removeprefix(TAG_PREFIX))

    waiter_type = ThreadWaiter if waits_in_thread else LoopWaiter
    return _Held(await acquire(limits, 1, "concurrency", None, waiter_type, on_wait=waiting))
