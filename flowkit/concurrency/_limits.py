"""Defining limits and looking at them: the code behind ``flowkit.concurrency``'s own names.

Those names are listed once, in the package's ``__all__``, which imports them from here
when first used; so this module has no ``__all__`` of its own.
"""

from __future__ import annotations

import time

import attrs

from .._engine.limits import TAG_PREFIX as TAG_PREFIX
from .._engine.limits import define_local, delete_local, local_limits
from ..store._schema import default_path
from ._store import STORES
from ._store import LeaseRecord as LeaseRecord
from ._store import LimitRecord as LimitRecord


@attrs.frozen
class LimitInfo:
    """A limit as it stands now.

    Attributes:
        name: The limit's name (``tag:<tag>`` for a tag limit).
        limit: How many slots it has.
        slot_decay_per_second: How fast rate-limit slots decay (``None``: no decay).
        active_slots: Slots in use now: held, or taken by ``rate_limit`` and not decayed.
        shared: Whether it lives in the run store (``False``: in this process only).
        leases: For a shared limit, its holders.
    """

    name: str
    limit: int
    slot_decay_per_second: float | None
    active_slots: float
    shared: bool
    leases: tuple[LeaseRecord, ...] = ()


def _check(name: str, limit: int, slot_decay_per_second: float | None) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a limit's name must be a non-empty string, not {name!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit {name!r}: limit must be a whole number >= 1, not {limit!r}")
    if slot_decay_per_second is not None and not (
        isinstance(slot_decay_per_second, int | float) and slot_decay_per_second > 0
    ):
        raise ValueError(
            f"limit {name!r}: slot_decay_per_second must be a number > 0 or None, "
            f"not {slot_decay_per_second!r}"
        )


def define(name: str, limit: int, slot_decay_per_second: float | None = None) -> None:
    """Create a limit in the run store, or change an existing one's size and decay.

    Other processes see a new limit within a second. Slots already held stay held.

    Args:
        name: The limit's name; ``tag:<tag>`` bounds the task runs tagged ``<tag>``.
        limit: How many slots it has.
        slot_decay_per_second: For rate limits: how many slots taken by ``rate_limit``
            come free each second.

    Raises:
        ValueError: A bad name, ``limit`` or ``slot_decay_per_second``.
        flowkit.store.StoreError: The run store cannot be opened.
    """
    _check(name, limit, slot_decay_per_second)
    path = default_path()
    db = STORES.db(path)
    with db.transaction() as sql:
        sql.execute(
            "INSERT INTO limits VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "slots = excluded.slots, slot_decay_per_second = excluded.slot_decay_per_second",
            (name, limit, slot_decay_per_second, time.time(), time.time()),
        )
    STORES.forget(path)


def local(name: str, limit: int, slot_decay_per_second: float | None = None) -> None:
    """Define a limit for this process only, kept in memory; or resize this process's
    limit ``name`` (slots held stay held).

    Args:
        name: The limit's name; ``tag:<tag>`` bounds the task runs tagged ``<tag>``.
        limit: How many slots it has.
        slot_decay_per_second: For rate limits: how many slots taken by ``rate_limit``
            come free each second.

    Raises:
        ValueError: A bad name, ``limit`` or ``slot_decay_per_second``.
    """
    _check(name, limit, slot_decay_per_second)
    define_local(name, limit, slot_decay_per_second)


def _shared(name: str) -> LimitRecord | None:
    path = default_path()
    if not path.exists():
        return None
    db = STORES.db(path)
    with db.transaction():
        found = db.settled(name, time.time())
    if found is None:
        return None
    slots, leases = found
    return LimitRecord(name, slots.limit, slots.decay, slots.held + slots.spent, tuple(leases))


def inspect(name: str) -> LimitInfo:
    """The limit ``name`` now: this process's, or else the run store's.

    Raises:
        KeyError: No limit has that name.
    """
    mine = local_limits().get(name)
    if mine is not None:
        return LimitInfo(name, mine.slots.limit, mine.slots.decay, mine.occupied(), False)
    record = _shared(name)
    if record is None:
        raise KeyError(f"no limit named {name!r}; define it with flowkit.concurrency.define")
    return _info(record)


def _info(record: LimitRecord) -> LimitInfo:
    return LimitInfo(
        record.name, record.limit, record.slot_decay_per_second, record.active_slots, True,
        record.leases,
    )  # fmt: skip


def ls() -> list[LimitInfo]:
    """Every limit: this process's, then the run store's, each by name."""
    found = [inspect(name) for name in sorted(local_limits())]
    path = default_path()
    if path.exists():
        db = STORES.db(path)
        with db.lock:
            names = [r[0] for r in db.db.execute("SELECT name FROM limits ORDER BY name")]
        for name in names:
            if name not in local_limits() and (record := _shared(name)) is not None:
                found.append(_info(record))
    return found


def delete(name: str) -> None:
    """Remove the limit ``name`` (this process's if it has one, else the store's) with its
    leases; callers that wait for it stop waiting.

    Raises:
        KeyError: No limit has that name.
    """
    if delete_local(name):
        return
    if not _delete_shared(name):
        raise KeyError(f"no limit named {name!r}")


def _delete_shared(name: str) -> bool:
    path = default_path()
    if not path.exists():
        return False
    db = STORES.db(path)
    with db.transaction() as sql:
        gone = sql.execute("DELETE FROM limits WHERE name = ?", (name,)).rowcount
        sql.execute("DELETE FROM limit_leases WHERE name = ?", (name,))
    STORES.forget(path)
    STORES.wake(path, name)
    return bool(gone)


def reset(name: str) -> None:
    """Free every slot of the limit ``name``: held ones, and rate-limit ones not decayed.

    Raises:
        KeyError: No limit has that name.
    """
    mine = local_limits().get(name)
    if mine is not None:
        mine.reset()
        return
    path = default_path()
    if path.exists():
        db = STORES.db(path)
        with db.transaction() as sql:
            found = sql.execute("UPDATE limits SET spent = 0 WHERE name = ?", (name,)).rowcount
            sql.execute("DELETE FROM limit_leases WHERE name = ?", (name,))
        if found:
            STORES.wake(path, name)
            return
    raise KeyError(f"no limit named {name!r}")
