"""Limits kept in the run store: one SQLite database shared by every process using it.

A ``concurrency`` holder writes a lease: its slots, pid, host and an expiry that a
thread of the holder's process renews while it holds. Slots are counted from the leases
that are still good: a lease past its expiry, or one whose process on this host is
gone (killed with SIGKILL, say), is deleted by the next caller that looks, so a holder
that dies never keeps its slots. ``rate_limit`` slots decay in the limit's row.

Each look is one short ``BEGIN IMMEDIATE`` transaction: SQLite's write lock makes it
atomic across processes. The waiters of one process stand in line, first come, first
served, and only the first of them polls the store, with a backoff from 2 ms to 50 ms; a
release in this process wakes it at once.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import attrs

from .._engine import limits as engine_limits
from .._engine.limits import Limit, Mode, Slots, Waiter, check_request
from ..store._schema import StoreError, connect, default_path

__all__ = ["STORES", "LeaseRecord", "LimitRecord", "StoreLimit", "Stores"]

_HOST = socket.gethostname()
CATALOG_SECONDS = 1.0
"""How long the names of the store's limits are trusted before they are read again."""
_FIRST_POLL, _LAST_POLL = 0.002, 0.05
_log = logging.getLogger("flowkit.concurrency")


@attrs.frozen
class LeaseRecord:
    """A holder of slots of a shared limit."""

    id: str
    slots: int
    pid: int
    host: str
    acquired: float
    expires: float


@attrs.frozen
class LimitRecord:
    """A limit as the store holds it, with its slots in use now."""

    name: str
    limit: int
    slot_decay_per_second: float | None
    active_slots: float
    leases: tuple[LeaseRecord, ...]


def _alive(pid: int, host: str) -> bool:
    """Whether a lease's process may still live: always, for another host's."""
    if host != _HOST:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process
        return True
    return True


class _Db:
    """One store's connection, shared by this process's threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = connect(path, create=True)
        self.lock = threading.Lock()

    def settled(self, name: str, now: float) -> tuple[Slots, list[LeaseRecord]] | None:
        """Inside a transaction: the limit's slots now, after clearing dead leases."""
        row = self.db.execute(
            "SELECT slots, slot_decay_per_second, spent, spent_at FROM limits WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            return None
        leases = [
            LeaseRecord(*r)
            for r in self.db.execute(
                "SELECT id, slots, pid, host, acquired, expires FROM limit_leases WHERE name = ?",
                (name,),
            )
        ]
        dead = [x.id for x in leases if x.expires <= now or not _alive(x.pid, x.host)]
        if dead:
            self.db.executemany("DELETE FROM limit_leases WHERE id = ?", [(i,) for i in dead])
            leases = [x for x in leases if x.id not in dead]
        slots = Slots(row[0], row[1], sum(x.slots for x in leases), row[2], row[3])
        slots.settle(now)
        return slots, leases

    def transaction(self) -> _Transaction:
        return _Transaction(self)


class _Transaction:
    def __init__(self, db: _Db) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.lock.acquire()
        try:
            self.db.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.db.lock.release()
            raise
        return self.db.db

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            self.db.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.db.lock.release()


@attrs.define(eq=False)
class StoreLimit:
    """A handle on one limit of a store: what waiters use (see ``engine_limits.Limit``)."""

    stores: Stores
    path: Path
    name: str
    limit: int
    decay: float | None
    does_io: bool = True

    def check(self, occupy: int, mode: Mode) -> None:
        check_request(self.name, self.limit, self.decay, occupy, mode)

    def take_nowait(self, occupy: int, mode: Mode) -> bool:
        return False  # never without I/O: waiters poll instead

    def join(self, waiter: Waiter) -> None:
        self.stores.join(self.path, self.name, waiter)

    def leave(self, waiter: Waiter) -> None:
        self.stores.leave(self.path, self.name, waiter)

    def poll(self, waiter: Waiter) -> tuple[bool, float | None]:
        # Only the first in this process's line asks the store; the others wait for it.
        if not self.stores.is_head(self.path, self.name, waiter):
            return False, None
        db = self.stores.db(self.path)
        now = time.time()
        took = False
        with db.transaction() as sql:
            found = db.settled(self.name, now)
            if found is None:  # deleted meanwhile: nothing left to wait for
                return True, None
            slots, _ = found
            if slots.fits(waiter.occupy):
                if waiter.mode == "rate_limit":
                    sql.execute(
                        "UPDATE limits SET spent = ?, spent_at = ? WHERE name = ?",
                        (slots.spent + waiter.occupy, now, self.name),
                    )
                else:
                    waiter.lease = uuid.uuid4().hex
                    sql.execute(
                        "INSERT INTO limit_leases VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (waiter.lease, self.name, waiter.occupy, os.getpid(), _HOST, now,
                         now + waiter.lease_duration),
                    )  # fmt: skip
                took = True
            hint = slots.wait_hint(waiter.occupy)
        if took:
            if waiter.lease is not None:  # renewed from now on, by a thread of its own
                self.stores.renewer.add(self.path, waiter.lease, waiter.lease_duration)
            return True, None
        waiter.polls += 1
        backoff = min(_LAST_POLL, _FIRST_POLL * 2**waiter.polls) * random.uniform(0.5, 1.0)
        return False, backoff if hint is None else min(max(hint, 0.001), _LAST_POLL)

    def release(self, occupy: int, lease: str | None) -> None:
        if lease is None:
            return
        self.stores.renewer.discard(lease)
        db = self.stores.db(self.path)
        with db.transaction() as sql:
            sql.execute("DELETE FROM limit_leases WHERE id = ?", (lease,))
        self.stores.wake(self.path, self.name)


class _Renewer:
    """Keeps this process's leases from expiring while they are held: one thread,
    started with the first lease, gone with the last."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.leases: dict[str, tuple[Path, float]] = {}
        self.changed = threading.Condition()
        self.thread: threading.Thread | None = None

    def add(self, path: Path, lease: str, duration: float) -> None:
        with self.changed:
            self.leases[lease] = (path, duration)
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._loop, name="flowkit-leases", daemon=True
                )
                self.thread.start()
            self.changed.notify()

    def discard(self, lease: str) -> None:
        with self.changed:
            self.leases.pop(lease, None)

    def _loop(self) -> None:
        while True:
            with self.changed:
                if not self.leases:
                    self.thread = None
                    return
                # Renewed at a third of the shortest lease: two renewals may fail in a row.
                self.changed.wait(min(d for _, d in self.leases.values()) / 3)
                due = list(self.leases.items())
            for lease, (path, duration) in due:  # not under the lock: add() must not wait
                try:
                    db = self.stores.db(path)
                    with db.transaction() as sql:
                        sql.execute(
                            "UPDATE limit_leases SET expires = ? WHERE id = ?",
                            (time.time() + duration, lease),
                        )
                except (sqlite3.Error, StoreError) as exc:
                    _log.warning("Could not renew a limit lease: %s", exc)


class Stores:
    """This process's connections to run stores, and what it knows of their limits."""

    def __init__(self) -> None:
        self._dbs: dict[Path, _Db] = {}
        self._catalogs: dict[Path, tuple[float, dict[str, tuple[int, float | None]]]] = {}
        self._waiters: dict[tuple[Path, str], collections.deque[Waiter]] = {}
        self._lock = threading.Lock()
        self.renewer = _Renewer(self)

    def db(self, path: Path) -> _Db:
        """The connection to the store at ``path``, opened (and created) on first use.

        Raises:
            StoreError: See ``store._schema.connect``.
        """
        with self._lock:
            db = self._dbs.get(path)
            if db is None:
                db = self._dbs[path] = _Db(path)
            return db

    def forget(self, path: Path) -> None:
        """Read the store's limits again at the next look (they were just changed)."""
        with self._lock:
            self._catalogs.pop(path, None)

    def lookup(self, names: Sequence[str]) -> dict[str, Limit]:
        """Handles on those of ``names`` that the current store defines."""
        path = default_path()
        now = time.monotonic()
        cached = self._catalogs.get(path)
        if cached is None or now - cached[0] > CATALOG_SECONDS:
            cached = self._catalogs[path] = (now, self._catalog(path))
        catalog = cached[1]
        return {
            name: StoreLimit(self, path, name, *catalog[name]) for name in names if name in catalog
        }

    def _catalog(self, path: Path) -> dict[str, tuple[int, float | None]]:
        if not path.exists():  # no store, no limits: and none is made just to look
            return {}
        db = self.db(path)
        with db.lock:
            rows = db.db.execute("SELECT name, slots, slot_decay_per_second FROM limits")
            return {name: (slots, decay) for name, slots, decay in rows}

    def join(self, path: Path, name: str, waiter: Waiter) -> None:
        """Put ``waiter`` in this process's line for a limit."""
        with self._lock:
            self._waiters.setdefault((path, name), collections.deque()).append(waiter)

    def is_head(self, path: Path, name: str, waiter: Waiter) -> bool:
        with self._lock:
            line = self._waiters.get((path, name))
            return line is not None and line[0] is waiter  # an empty line is deleted

    def leave(self, path: Path, name: str, waiter: Waiter) -> None:
        """Take ``waiter`` out of the line (it has its slots, or gave up); wake the next."""
        with self._lock:
            line = self._waiters.get((path, name))
            if not line or waiter not in line:
                return
            head = line[0] is waiter
            line.remove(waiter)
            if not line:
                del self._waiters[path, name]
            elif head:
                line[0].wake()

    def wake(self, path: Path, name: str) -> None:
        """Have this process's first waiter on a limit look again (slots came free)."""
        with self._lock:
            line = self._waiters.get((path, name))
            if line:
                line[0].wake()


STORES = Stores()
engine_limits.shared_limits_with(STORES.lookup)
