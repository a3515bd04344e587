"""Recording runs: a sink of the engine's events, feeding one writer thread per store.

The sink only puts events on a queue (a few hundred nanoseconds); a writer thread turns
them into rows and commits them in batches, one transaction each. Each event is written
on its own merits: a value that cannot be encoded, or a string SQLite refuses, is written
as a placeholder with a warning, and never costs the other events of its batch. When a
root run (a flow called outside any flow) ends, the thread that ended it waits until
everything of that run is committed, so a flow's records are on disk when the call
returns; but runs never wait on the store: while it refuses rows (another process holds
its write lock, its disk is full) they wait in memory, bounded, and the call returns. So
they do while the store is damaged: nothing more is written into it, and once it is moved
aside a new store takes the rows.

Configuration is read when a root run starts: ``FLOWKIT_STORE=off`` (or ``disable()``)
leaves that run unrecorded; ``FLOWKIT_HOME`` picks the database; and when a writer opens
its database, ``FLOWKIT_STORE_RETENTION`` (an age such as ``30d``) prunes older runs.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import logging
import os
import reprlib
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from .._engine import events, naming
from .._engine.convert import parameters_json
from .._engine.events import Artifact, ArtifactUpdate, LogLine, StateChanged, TransactionEnded
from ..states import ResultReference
from ._prune import prune, retention
from ._schema import (
    DamagedStoreError,
    StoreError,
    connect,
    damaged,
    default_path,
    disk_trouble,
    is_busy,
    is_damaged,
)

__all__ = [
    "Writer", "disable", "enable", "flush", "is_enabled", "override", "recover", "release",
    "reserve_name", "set_override", "setup",
]  # fmt: skip

_HOST = socket.gethostname()
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)
POLL_SECONDS = 0.05
"""How often the writer looks for new events when nobody waits for them."""
GATHER_SECONDS = 0.05
"""How long events may gather into a batch while nobody waits for them: a group commit,
so that a program killed with SIGKILL loses at most this much of what its runs did."""
GATHER_ITEMS = 5000
"""How many events may gather into a batch while nobody waits for them."""
IDLE_SECONDS = 10.0
"""A writer with nothing to do for this long, and no run tree open, stops."""
BUSY_SECONDS = 0.5
"""How long the writer waits for a lock another connection holds before it lets the rows
wait in memory and tries again."""
RETRY_SECONDS = 0.5
"""The pause between tries while the store refuses rows (locked, or its disk full)."""
MAX_WAITING = 100_000
"""How many events (state changes and log lines) wait in memory while the store refuses
them; newer ones are dropped, with a WARNING, until it takes them."""
FLUSH_SECONDS = 5.0
"""The longest a root flow run's call waits, as it returns, for its rows to be committed."""
CLOSE_SECONDS = 5.0
"""The longest the process waits at exit for rows the store refuses."""
# States of runs that are not over, unless their end_time says so: a NotReady run is
# Pending, as in Prefect, and ended.
_UNFINISHED = ("PENDING", "RUNNING", "SCHEDULED")
_log = logging.getLogger("flowkit.store")


RESULT_REPR_CHARS = 200
"""The longest a recorded result's repr is."""
_SHORT = reprlib.Repr()
# Containers are cut item by item, so a million-row result costs what a short one does.
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxlong = 3, RESULT_REPR_CHARS, RESULT_REPR_CHARS
_SHORT.maxother = RESULT_REPR_CHARS


def short_repr(value: object) -> str:
    """``repr(value)``, at most ``RESULT_REPR_CHARS`` long, containers cut item by item.

    Never raises: an object whose ``repr`` fails shows as ``<T instance at 0x...>``, and
    a value that cannot be shown at all (an int too long to print) as
    ``<unrepresentable T: E>``.
    """
    try:
        text = _SHORT.repr(value)
    except Exception as exc:
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    if len(text) > RESULT_REPR_CHARS:
        text = text[: RESULT_REPR_CHARS - 3] + "..."
    return text


def _result_repr(event: StateChanged) -> str | None:
    """The short repr of a completed run's result; ``None`` before it completes, and for
    a result not kept in memory (its location is recorded instead)."""
    state = event.state
    if not state.is_completed() or isinstance(state.data, ResultReference):
        return None
    return short_repr(state.data)


def _timestamp(event: StateChanged) -> float:
    return event.state.timestamp.timestamp()


def _refused(exc: BaseException) -> str | None:
    """Why the store refuses rows for now (another connection's lock, a full or failing
    disk), or ``None`` if ``exc`` is not such a passing trouble."""
    if is_busy(exc):
        return "it is locked by another connection"
    return disk_trouble(exc)


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file ``path`` is (its device and inode); ``None`` if there is none."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def _check_pages(db: sqlite3.Connection, path: Path) -> None:
    """Read every page of the store, as a writer opens it: a damaged page that its writes
    happen not to read would otherwise be written around, with no word of it.

    Raises:
        DamagedStoreError: A page is damaged.
        sqlite3.DatabaseError: SQLite found it too damaged to check (see ``is_damaged``).
    """
    # quick_check reads every page but skips matching indexes to their tables: about
    # 0.15 s a 150 MB store, while integrity_check takes ten times as long.
    found = [row[0] for row in db.execute("PRAGMA quick_check")]
    if found != ["ok"]:
        raise damaged(path, " ".join(found[0].split()))


class _Flush(threading.Event):
    """A wait for what was queued before it. A patient one is set once it is committed;
    an impatient one also when the store refuses it for now (the rows wait in memory)."""

    def __init__(self, *, patient: bool) -> None:
        super().__init__()
        self.patient = patient


class Writer:
    """The writer thread of one database.

    The thread opens the database, so a store that another process keeps locked never
    holds up a run: runs only queue events. Rows the store refuses (locked, or its disk
    full) wait in memory, up to ``MAX_WAITING`` events, and are written when it takes them.
    A damaged store is not written into: rows wait the same way until the file is moved
    aside, then go to a new store at its path.
    """

    def __init__(self, path: Path, retention: timedelta | None = None) -> None:
        self.path = path
        self._retention = retention
        self._db: sqlite3.Connection | None = None
        # The engine's threads append here without waking the writer (deque appends are
        # atomic): waking a thread per event costs the engine more than the event itself.
        # The writer wakes every POLL_SECONDS, or at once for a flush or close.
        self._items: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._complained = False
        # Taken from the queue, not yet committed: the store refused them for now.
        self._waiting: list[Any] = []
        self._flushes: list[_Flush] = []
        self._trouble: str | None = None
        self._trouble_since = 0.0
        # The damaged file (device, inode) the rows wait to be moved aside; None if none.
        self._damaged: tuple[int, int] | None = None
        self._dropped = 0
        # Rows are built with the GIL held, which slows busy runs: so events gather while
        # runs keep making them, until somebody waits for them (a flow returning, a
        # flush), runs make none for a moment, or GATHER_SECONDS pass (a group commit:
        # what a run did is on disk within that, whatever happens to the program next).
        self._urgent = False
        self._gathering_since: float | None = None
        self._queued = 0
        # Names of flow runs are looked up from the engine's threads, not the writer's.
        self._names: sqlite3.Connection | None = None
        self._names_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="flowkit-store", daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        """Queue an event."""
        self._items.append(item)

    def has_queued(self) -> bool:
        """Whether anything is queued and not yet committed."""
        return bool(self._items) or bool(self._waiting)

    def name_taken(self, name: str) -> bool:
        """Whether a flow run in this store already has ``name`` (false while the store
        is not open yet, or busy: the engine keeps recent names unique by itself)."""
        with self._names_lock:
            if self._names is None:
                return False
            try:
                row = self._names.execute(
                    "SELECT 1 FROM runs WHERE kind = 'flow' AND name = ? LIMIT 1", (name,)
                ).fetchone()
            except sqlite3.Error:  # busy, or a damaged page: the writer says so
                return False
        return row is not None

    def flush(self, timeout: float | None = 30, *, patient: bool = True) -> None:
        """Wait until everything queued so far is committed, at most ``timeout`` seconds.

        Args:
            timeout: The longest to wait; ``None`` for no bound.
            patient: Whether to wait while the store refuses rows for now; if false,
                return as soon as the rows wait in memory instead.
        """
        done = self.flush_soon(patient=patient)
        if done is None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        # A writer that retired meanwhile (idle, no tree) had nothing left to commit.
        while not done.wait(0.1) and self._thread.is_alive():
            if deadline is not None and time.monotonic() >= deadline:
                break

    def flush_soon(self, *, patient: bool = True) -> threading.Event | None:
        """Have everything queued so far committed soon; the event set once it is (see
        ``flush`` for ``patient``), or ``None`` if an impatient wait would end at once."""
        if not patient and self._trouble is not None:
            return None
        done = _Flush(patient=patient)
        self._items.append(done)
        self._urgent = True
        self._wake.set()
        return done

    def close(self) -> None:
        """Commit what is queued and stop the thread (waiting ``CLOSE_SECONDS`` at most
        for a store that refuses rows)."""
        self._items.append(None)
        self._urgent = True
        self._wake.set()
        self._thread.join(CLOSE_SECONDS + BUSY_SECONDS + 1)

    def _loop(self) -> None:
        idle = 0.0
        closing: float | None = None  # the deadline, once asked to close
        while True:
            self._wake.wait(RETRY_SECONDS if self._waiting else POLL_SECONDS)
            self._wake.clear()
            if self._items and not self._waiting and not self._due():
                continue  # runs are busy making events: let them gather
            if self._take() and closing is None:
                closing = time.monotonic() + CLOSE_SECONDS
            if not self._waiting and not self._flushes and closing is None:
                idle += POLL_SECONDS
                if idle >= IDLE_SECONDS and _retire(self):
                    break
                continue
            idle = 0.0
            opened = self._attempt()
            # A damaged store takes nothing until somebody moves it aside: nobody waits.
            unusable = self._damaged is not None
            for flush in self._flushes:
                if not self._waiting or not flush.patient or unusable:
                    flush.set()
            self._flushes = [f for f in self._flushes if not f.is_set()]
            if not opened:
                break
            if closing is not None and (
                not self._waiting or unusable or time.monotonic() >= closing
            ):
                break
        self._stop()

    def _take(self) -> bool:
        """Move the queue to ``_waiting`` (bounded while the store refuses rows) and
        its flushes to ``_flushes``; return whether a close was asked."""
        closed = False
        while self._items:
            item = self._items.popleft()
            if item is None:
                closed = True
            elif isinstance(item, _Flush):
                self._flushes.append(item)
            elif self._trouble is None or len(self._waiting) < MAX_WAITING:
                self._waiting.append(item)
            else:
                if not self._dropped:
                    _log.warning(
                        "the run store at %s has refused rows for %.0f s (%s); %d events "
                        "wait in memory, the most it keeps: newer ones are dropped until "
                        "it takes them", self.path, time.monotonic() - self._trouble_since,
                        self._trouble, MAX_WAITING,
                    )  # fmt: skip
                self._dropped += 1
        return closed

    def _attempt(self) -> bool:
        """Try to commit what waits; return false if the store cannot be opened at all."""
        if self._damaged is not None:
            if _identity(self.path) == self._damaged:
                return True  # not written into: the rows wait until it is moved aside
            self._damaged = None  # moved aside: a new store takes its place
        try:
            if self._db is None:
                self._open()
            if self._waiting:
                self._write(self._waiting)
        except (StoreError, OSError, sqlite3.Error) as exc:
            if is_damaged(exc):
                self._found_damaged(exc)
                return True
            if (why := _refused(exc)) is None:
                if self._db is None:
                    _broken_store(self, exc)
                    self._waiting = []
                    return False
                self._complain(exc)
            else:
                self._refusing(why, locked=is_busy(exc))
                return True
        except Exception as exc:  # never lose the thread: report, go on with later batches
            self._complain(exc)
        self._waiting = []
        if self._trouble is not None:
            self._recovered()
        return True

    def _open(self) -> None:
        db = connect(self.path, create=True, busy_seconds=BUSY_SECONDS)
        try:
            _check_pages(db, self.path)
            try:
                recover(db)
                if self._retention is not None:
                    prune(db, datetime.now(UTC) - self._retention)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                # Locked: crashed runs are marked, and old runs pruned, at a later open.
            names = connect(self.path, create=False, busy_seconds=BUSY_SECONDS)
        except BaseException:
            db.close()
            raise
        self._db = db
        with self._names_lock:
            self._names = names

    def _refusing(self, why: str, *, locked: bool) -> None:
        if self._trouble is None:
            self._trouble, self._trouble_since = why, time.monotonic()
            # Another process's lock is ordinary, if long; a disk that refuses is not.
            log = _log.info if locked else _log.error
            log(
                "the run store at %s does not take rows now (%s); runs go on, and their "
                "rows wait in memory (up to %d events) until it does",
                self.path, why, MAX_WAITING,
            )  # fmt: skip

    def _found_damaged(self, exc: BaseException) -> None:
        """Write no more into the damaged store at ``path``; say so, and what to do.

        Its rows wait in memory (bounded), and go to a new store once the file is moved
        aside. Closing its connections lets the move take the -wal and -shm files away.
        """
        self._close_connections()
        self._damaged = _identity(self.path) or (-1, -1)  # gone already: a new one at once
        if self._trouble is None:
            self._trouble_since = time.monotonic()
        self._trouble = "it is damaged"
        error = exc if isinstance(exc, DamagedStoreError) else damaged(self.path, exc)
        _log.warning(
            "%s; meanwhile runs go on, and their rows wait in memory (up to %d events)",
            error, MAX_WAITING,
        )  # fmt: skip

    def _recovered(self) -> None:
        waited = time.monotonic() - self._trouble_since
        if self._dropped:
            _log.warning(
                "the run store at %s takes rows again after %.0f s; %d events that came "
                "while %d waited were dropped", self.path, waited, self._dropped, MAX_WAITING,
            )  # fmt: skip
        else:
            _log.info(
                "the run store at %s takes rows again after %.0f s; every row that waited "
                "is written", self.path, waited,
            )  # fmt: skip
        self._trouble, self._dropped = None, 0

    def _complain(self, exc: BaseException) -> None:
        if not self._complained:
            self._complained = True
            _log.error(
                "the run store at %s could not record runs: %s: %s; later failures "
                "of this kind are not reported", self.path, type(exc).__name__, exc,
            )  # fmt: skip

    def _stop(self) -> None:
        if self._waiting:
            _log.warning(
                "the run store at %s still refused rows at exit (%s): %d events of "
                "runs were not recorded", self.path, self._trouble, len(self._waiting),
            )  # fmt: skip
        for flush in self._flushes:
            flush.set()
        self._close_connections()

    def _close_connections(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):  # a damaged store may not close cleanly
                self._db.close()
            self._db = None
        with self._names_lock:
            if self._names is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._names.close()
                self._names = None

    def _due(self) -> bool:
        """Whether the events queued are to be written now: somebody waits for them, runs
        made none since the last look, or they gathered long enough (``GATHER_SECONDS``)."""
        now, queued = time.monotonic(), len(self._items)
        since = self._gathering_since = self._gathering_since or now
        quiet, self._queued = queued == self._queued, queued
        if self._urgent or quiet or now - since >= GATHER_SECONDS or queued >= GATHER_ITEMS:
            self._urgent = False
            self._gathering_since = None
            self._queued = 0
            return True
        return False

    def _write(self, items: list[Any]) -> None:
        batch = _Batch()
        for item in items:
            batch.add(item)
        try:
            self._commit(batch.statements())
        except (sqlite3.Error, UnicodeError) as exc:
            if _refused(exc) is not None or is_damaged(exc):
                raise  # the rows wait; they are not at fault
            # One row SQLite refuses (say, a string with a lone surrogate) must not cost the
            # others: write the batch again a statement at a time, mending what it refuses.
            self._commit_each(batch.statements())

    def _commit(self, statements: Iterable[tuple[str, list[tuple[Any, ...]]]]) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN IMMEDIATE")  # a lock held elsewhere shows here, before any work
        try:
            for sql, rows in statements:
                db.executemany(sql, rows)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # a full disk may have rolled it back already
                db.execute("ROLLBACK")
            raise

    def _commit_each(self, statements: Iterable[tuple[str, list[tuple[Any, ...]]]]) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in statements:
                for row in rows:
                    try:
                        db.execute(sql, row)
                    except (sqlite3.Error, UnicodeError) as exc:
                        if _refused(exc) is not None or is_damaged(exc):
                            raise
                        _warn_once("a row", exc)
                        db.execute(sql, tuple(_mend(v) for v in row))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


def _mend(value: Any) -> Any:
    """A value SQLite takes: strings with what UTF-8 cannot hold escaped."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


_warned: set[str] = set()


def _warn_once(what: str, exc: BaseException) -> None:
    kind = f"{what}: {type(exc).__name__}"
    if kind not in _warned:
        _warned.add(kind)
        _log.warning(
            "the run store could not record %s as it was (%s: %s); it recorded a placeholder "
            "instead, and does so without a warning from now on", what, type(exc).__name__, exc,
        )  # fmt: skip


class _Batch:
    """The rows of a batch of events, each event turned into rows on its own."""

    def __init__(self) -> None:
        # A run first seen in this batch gets one row, with the latest state it reached
        # in the batch (most task runs start and end between two batches).
        self.new: dict[str, list[StateChanged]] = {}
        self.updates: list[tuple[Any, ...]] = []
        self.states: list[tuple[Any, ...]] = []
        self.logs: list[tuple[Any, ...]] = []
        self.artifacts: list[tuple[Any, ...]] = []
        self.artifact_updates: list[tuple[Any, ...]] = []
        self.transactions: list[tuple[Any, ...]] = []

    def add(
        self, item: StateChanged | LogLine | Artifact | ArtifactUpdate | TransactionEnded
    ) -> None:
        if isinstance(item, StateChanged):  # most events: tested first
            self._add_state(item)
            return
        if isinstance(item, LogLine):
            self.logs.append((item.run_id, item.root_id, item.created, item.level,
                              item.logger, item.label, item.message))  # fmt: skip
            return
        if isinstance(item, Artifact):
            self.artifacts.append((*attrs.astuple(item), item.created))
            return
        if isinstance(item, ArtifactUpdate):
            self.artifact_updates.append((item.description, item.data, item.updated, item.id))
            return
        self.transactions.append(attrs.astuple(item))  # a TransactionEnded

    def _add_state(self, item: StateChanged) -> None:
        run, state = item.run, item.state
        created = state.is_pending() and not item.ended and run.id not in self.new
        if created:
            self.new[run.id] = [item, item]
        elif (seen := self.new.get(run.id)) is not None:
            seen[1] = item
        else:
            self.updates.append(_update_row(item))
        if run.kind == "task" and run.parent is not None and (created or _first_running(item)):
            return  # the run's created and start_time say it (see the history view)
        self.states.append((run.id, state.type.value, state.name, state.message,
                            _timestamp(item), item.thread_wait, item.worker,
                            run.root_id))  # fmt: skip

    def statements(self) -> list[tuple[str, list[tuple[Any, ...]]]]:
        runs = [_run_row(pending, latest) for pending, latest in self.new.values()]
        return [
            (_INSERT_RUN, runs),
            (_UPDATE_RUN, self.updates),
            ("INSERT INTO states VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self.states),
            ("INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?)", self.logs),
            ("INSERT INTO artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self.artifacts),
            (_UPDATE_ARTIFACT, self.artifact_updates),
            ("INSERT INTO transactions VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self.transactions),
        ]


def _first_running(event: StateChanged) -> bool:
    """Whether ``event`` starts the run's first attempt: its ``start_time``."""
    state = event.state
    return state.is_running() and event.run_count == 1 and state.name == "Running"


# A rewrite, not an UPDATE: the row takes a new rowid, which moves the page's change marks.
_UPDATE_ARTIFACT = """
    INSERT OR REPLACE INTO artifacts
    SELECT id, run_id, root_id, created, type, key, coalesce(?1, description), ?2, ?3
    FROM artifacts WHERE id = ?4
"""
_INSERT_RUN = "INSERT OR REPLACE INTO runs VALUES (" + ", ".join("?" * 23) + ")"
_UPDATE_RUN = """
    UPDATE runs SET state_type = ?, state_name = ?, state_message = ?, error = ?,
        run_count = ?, start_time = coalesce(start_time, ?), end_time = ?,
        parameters = coalesce(?, parameters), task_inputs = coalesce(?, task_inputs),
        cache = coalesce(?, cache), result = coalesce(?, result),
        result_repr = coalesce(?, result_repr)
    WHERE id = ?
"""


def _run_row(pending: StateChanged, latest: StateChanged) -> tuple[Any, ...]:
    """The whole row of a run created at ``pending`` and now at ``latest``."""
    run, state = pending.run, latest.state
    started = not state.is_pending()
    start = latest.start_time.timestamp() if latest.start_time is not None else None
    parameters = latest.parameters if latest.parameters is not None else pending.parameters
    inputs = latest.task_inputs if latest.task_inputs is not None else pending.task_inputs
    return (
        run.id, run.kind, run.name, run.definition,
        run.parent.id if run.parent is not None else None, run.flow_run_id, run.root_id,
        json.dumps(sorted(run.tags)) if run.tags else "[]",
        parameters_json(parameters) if parameters else "{}",
        json.dumps(inputs) if inputs else "{}",
        state.type.value, state.name, state.message,
        str(latest.error) if latest.error is not None else None,
        latest.run_count if started else 0, _timestamp(pending), start,
        _timestamp(latest) if latest.ended else None, _pid, _HOST,
        latest.cache_note if started else None, latest.result_location, _result_repr(latest),
    )  # fmt: skip


def _update_row(event: StateChanged) -> tuple[Any, ...]:
    state = event.state
    return (
        state.type.value, state.name, state.message,
        str(event.error) if event.error is not None else None, event.run_count,
        event.start_time.timestamp() if event.start_time is not None else None,
        _timestamp(event) if event.ended else None,
        parameters_json(event.parameters) if event.parameters is not None else None,
        json.dumps(event.task_inputs) if event.task_inputs is not None else None,
        event.cache_note, event.result_location, _result_repr(event), event.run.id,
    )  # fmt: skip


def recover(db: sqlite3.Connection) -> int:
    """Mark the unfinished runs of processes on this host that are gone as Crashed.

    Returns:
        How many runs were marked.

    Raises:
        sqlite3.OperationalError: Another connection held the write lock past the busy
            timeout (see ``is_busy``); the runs are marked at a later open.
    """
    pids = [
        pid
        for (pid,) in db.execute(
            "SELECT DISTINCT pid FROM runs WHERE host = ? AND state_type IN (?, ?, ?) "
            "AND end_time IS NULL",
            (_HOST, *_UNFINISHED),
        )
        if pid != os.getpid() and not _alive(pid)
    ]
    marked = 0
    now = time.time()
    message = "The process running it ended before the run did."
    for pid in pids:
        db.execute("BEGIN IMMEDIATE")
        try:
            ids = db.execute(
                "SELECT id, root_id FROM runs WHERE host = ? AND pid = ? "
                "AND state_type IN (?, ?, ?) AND end_time IS NULL",
                (_HOST, pid, *_UNFINISHED),
            ).fetchall()
            db.executemany(
                "UPDATE runs SET state_type = 'CRASHED', state_name = 'Crashed', "
                "state_message = ?, end_time = ? WHERE id = ?",
                [(message, now, i) for i, _ in ids],
            )
            db.executemany(
                "INSERT INTO states VALUES (?, 'CRASHED', 'Crashed', ?, ?, NULL, NULL, ?)",
                [(i, message, now, root) for i, root in ids],
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        marked += len(ids)
    return marked


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process
        return True
    return True


# The sink: which writer records which tree of runs.

_lock = threading.Lock()
_writers: dict[Path, Writer] = {}
_broken: dict[Path, str] = {}
_trees: dict[str, Writer] = {}
_forced: bool | None = None
_SWITCH = {"on": True, "off": False}


def is_enabled() -> bool:
    """Whether runs started now are recorded: ``enable``/``disable``, else ``FLOWKIT_STORE``.

    Raises:
        ValueError: ``FLOWKIT_STORE`` is neither ``on`` nor ``off``.
    """
    if _forced is not None:
        return _forced
    raw = os.environ.get("FLOWKIT_STORE", "on")
    switch = _SWITCH.get(raw.strip().lower())
    if switch is None:
        raise ValueError(
            f"FLOWKIT_STORE={raw!r} is neither 'on' nor 'off'; set it to 'off' to leave runs "
            "unrecorded, or unset it to record them"
        )
    return switch


def enable() -> None:
    """Record the runs started from now on, whatever ``FLOWKIT_STORE`` says."""
    global _forced
    _forced = True


def disable() -> None:
    """Do not record the runs started from now on, whatever ``FLOWKIT_STORE`` says."""
    global _forced
    _forced = False


def override() -> bool | None:
    """What ``enable``/``disable`` set; ``None`` when ``FLOWKIT_STORE`` decides."""
    return _forced


def set_override(value: bool | None) -> None:
    """Set what ``override`` says: ``True``/``False`` as ``enable``/``disable`` do, or
    ``None`` to leave it to ``FLOWKIT_STORE`` again."""
    global _forced
    _forced = value


def flush(timeout: float = 30) -> None:
    """Wait until every recorded event and log record so far is committed, or for
    ``timeout`` seconds per store at most (a store another process keeps locked)."""
    for writer in list(_writers.values()):
        writer.flush(timeout)


def release(under: Path) -> None:
    """Commit and close the writers of databases under ``under``, and forget that any of
    them could not be opened: a test home is about to go away, or to be used afresh."""
    with _lock:
        gone = [w for p, w in _writers.items() if p.is_relative_to(under)]
        for writer in gone:
            del _writers[writer.path]
        for path in [p for p in _broken if p.is_relative_to(under)]:
            del _broken[path]
    for writer in gone:
        writer.close()


def _writer(path: Path) -> Writer | None:
    """The writer of ``path``, started if need be; ``None`` if the store cannot be opened
    (said once per process, as a WARNING, by the writer that found it)."""
    with _lock:
        writer = _writers.get(path)
        if writer is not None or path in _broken:
            return writer
        writer = _writers[path] = Writer(path, retention())
        return writer


def _broken_store(writer: Writer, exc: BaseException) -> None:
    """Say once that ``writer``'s store cannot be opened; stop recording into it."""
    cause = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
    with _lock:
        _broken[writer.path] = cause
        if _writers.get(writer.path) is writer:
            del _writers[writer.path]
        for root, w in list(_trees.items()):
            if w is writer:
                del _trees[root]
    _log.warning(
        "the run store at %s could not be opened: %s; runs are not being recorded "
        "(set FLOWKIT_HOME to another directory, or FLOWKIT_STORE=off)", writer.path, cause,
    )  # fmt: skip


def _retire(writer: Writer) -> bool:
    """Stop an idle writer that records no tree (its database may not be used again)."""
    with _lock:
        if any(w is writer for w in _trees.values()) or writer.has_queued():
            return False
        if _writers.get(writer.path) is writer:
            del _writers[writer.path]
        return True


def reserve_name(name: str) -> bool:
    """A name check for the engine's flow run names: false when a flow run in the store
    that new root runs record into has ``name`` already."""
    if not is_enabled():
        return True
    writer = _writer(default_path())
    return writer is None or not writer.name_taken(name)


def _on_event(event: events.Event) -> None:
    """First of the sinks: a root run's Pending opens its tree; every event is queued.

    An artifact made (or updated) outside any run has no tree: it goes to the store that a
    root run started now would record into."""
    if isinstance(event, StateChanged):  # most events: tested first, against one class
        run = event.run
        if run.parent is None and event.state.is_pending() and not event.ended:
            if not is_enabled() or (writer := _writer(default_path())) is None:
                return
            with _lock:
                _trees[run.id] = writer
        elif (writer := _trees.get(run.root_id)) is None:
            return
        writer.put(event)
        return
    root_id = event.root_id
    if root_id is not None:
        if (writer := _trees.get(root_id)) is not None:
            writer.put(event)
    elif is_enabled() and (writer := _writer(default_path())) is not None:
        writer.put(event)


def _after_event(event: events.Event) -> None:
    """Last of the sinks: once a root run's final log lines are queued, close its tree;
    a flow's call returns only when its records are committed, and so does the call that
    made or updated an artifact outside any run."""
    if isinstance(event, Artifact | ArtifactUpdate) and event.root_id is None:
        if is_enabled() and (writer := _writers.get(default_path())) is not None:
            writer.flush(FLUSH_SECONDS, patient=False)
        return
    if not isinstance(event, StateChanged):
        return
    run = event.run
    if run.parent is not None or not event.ended:
        return
    with _lock:
        writer = _trees.pop(run.id, None)
    # Runs never wait on the store: a store that refuses rows for now (another process
    # holds its lock, its disk is full) lets the call return at once, the rows waiting in
    # memory; a slow one holds it FLUSH_SECONDS at most. The call waits where its
    # lifecycle runs (an async flow's: in a worker thread, so that the loop, and every
    # other flow a service runs on it, goes on meanwhile).
    if (
        writer is not None
        and run.kind == "flow"
        and (done := writer.flush_soon(patient=False)) is not None
    ):
        events.hold(run.id, done, FLUSH_SECONDS)


_setup_done = False


def setup() -> None:
    """Start recording: subscribe to the engine's events.

    Raises:
        ValueError: ``FLOWKIT_STORE`` is neither ``on`` nor ``off``, or
            ``FLOWKIT_STORE_RETENTION`` is not an age such as ``30d``.
    """
    global _setup_done
    is_enabled()  # a wrong value is said to the first run's caller
    retention()
    with _lock:
        if _setup_done:
            return
        events.subscribe(_on_event, tier="first")
        events.subscribe(_after_event, tier="last", kinds=(StateChanged, Artifact, ArtifactUpdate))
        naming.check_names_with(reserve_name)
        atexit.register(_close_all)
        _setup_done = True


def _close_all() -> None:
    for writer in list(_writers.values()):
        writer.close()


events.on_first_run(setup)
