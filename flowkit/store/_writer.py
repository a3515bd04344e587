"""Recording runs: an event sink and a log handler feeding one writer thread per store.

The engine's threads only put events and log records on a queue (a few hundred
nanoseconds); a writer thread turns them into rows and commits them in batches, one
transaction each. When a root run (a flow called outside any flow) ends, the thread that
ended it waits until everything of that run is committed, so a flow's records are on disk
when the flow call returns.

Configuration is read when a root run starts: ``FLOWKIT_STORE=off`` (or ``disable()``)
leaves that run unrecorded; ``FLOWKIT_HOME`` picks the database.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .._engine import events
from .._engine.convert import unstructure
from .._engine.runs import FlowRun, Run
from ..states import State
from ._schema import connect, default_path

__all__ = ["StoreHandler", "Writer", "disable", "enable", "flush", "is_enabled", "recover", "setup"]

_HOST = socket.gethostname()
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)
POLL_SECONDS = 0.05
"""How often the writer looks for new events when nobody waits for them."""
IDLE_SECONDS = 10.0
"""A writer with nothing to do for this long, and no run tree open, stops."""
_UNFINISHED = ("PENDING", "RUNNING", "SCHEDULED")
_log = logging.getLogger("flowkit.store")


def to_json(value: Any) -> str:
    """JSON for the store: structured through cattrs, ``repr`` for what JSON cannot hold."""
    return _ENCODER.encode(unstructure(value))


def _readable(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 2000 else text[:1997] + "..."


_ENCODER = json.JSONEncoder(default=_readable, ensure_ascii=False)


def _root(run: Run) -> Run:
    while run.parent is not None:
        run = run.parent
    return run


def _error(state: State[Any]) -> str | None:
    exc = state.exception
    return None if exc is None else f"{type(exc).__name__}: {exc}"


def _timestamp(state: State[Any]) -> float:
    return state.timestamp.timestamp()


class Writer:
    """The writer thread of one database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = connect(path, create=True)
        recover(self._db)
        # The engine's threads append here without waking the writer (deque appends are
        # atomic): waking a thread per event costs the engine more than the event itself.
        # The writer wakes every POLL_SECONDS, or at once for a flush or close.
        self._items: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flowkit-store", daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        """Queue an event or a log record."""
        self._items.append(item)

    def has_queued(self) -> bool:
        """Whether anything is queued and not yet taken by the writer thread."""
        return bool(self._items)

    def flush(self, timeout: float | None = 30) -> None:
        """Wait until everything queued so far is committed."""
        done = threading.Event()
        self._items.append(done)
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        # A writer that retired meanwhile (idle, no tree) had nothing left to commit.
        while not done.wait(0.1) and self._thread.is_alive():
            if deadline is not None and time.monotonic() >= deadline:
                break

    def close(self) -> None:
        """Commit what is queued and stop the thread."""
        self._items.append(None)
        self._wake.set()
        self._thread.join(30)

    def _loop(self) -> None:
        idle = 0.0
        while True:
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            items: list[Any] = []
            while self._items:
                items.append(self._items.popleft())
            if not items:
                idle += POLL_SECONDS
                if idle >= IDLE_SECONDS and _retire(self):
                    break
                continue
            idle = 0.0
            waiters = [i for i in items if isinstance(i, threading.Event)]
            try:
                self._write([i for i in items if i is not None and i not in waiters])
            except Exception:  # never lose the thread: report, and go on with later batches
                _log.exception("The run store at %s could not record a batch", self.path)
            for waiter in waiters:
                waiter.set()
            if any(i is None for i in items):
                break
        self._db.close()

    def _write(self, items: list[Any]) -> None:
        # A run first seen in this batch gets one row, with the latest state it reached
        # in the batch (most task runs start and end between two batches).
        new: dict[Run, list[State[Any]]] = {}
        updates: list[tuple[Any, ...]] = []
        states: list[tuple[Any, ...]] = []
        logs: list[tuple[Any, ...]] = []
        for item in items:
            if isinstance(item, logging.LogRecord):
                logs.append(_log_row(item))
                continue
            run, state = item.run, item.state
            if state.is_pending():
                new[run] = [state, state]
            elif (seen := new.get(run)) is not None:
                seen[1] = state
            elif state.type.is_final or isinstance(run, FlowRun) or not state.is_running():
                # A task run's row changes when it ends (and for retries); its Running
                # is in the states table, and its start time comes with its end.
                updates.append(_update_row(run, state))
            states.append((run.key, state.type.value, state.name, state.message,
                           _timestamp(state)))  # fmt: skip
        runs = [_run_row(run, pending, latest) for run, (pending, latest) in new.items()]
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(_INSERT_RUN, runs)
            db.executemany(_UPDATE_RUN, updates)
            db.executemany("INSERT INTO states VALUES (?, ?, ?, ?, ?)", states)
            db.executemany("INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?)", logs)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


_INSERT_RUN = "INSERT OR REPLACE INTO runs VALUES (" + ", ".join("?" * 21) + ")"
_UPDATE_RUN = """
    UPDATE runs SET state_type = ?, state_name = ?, state_message = ?, error = ?,
        run_count = ?, start_time = coalesce(start_time, ?), end_time = ?,
        parameters = coalesce(?, parameters), task_inputs = coalesce(?, task_inputs),
        cache = coalesce(?, cache)
    WHERE id = ?
"""


def _run_row(run: Run, pending: State[Any], state: State[Any]) -> tuple[Any, ...]:
    """The whole row of a run created at ``pending`` and now in ``state``."""
    flow_run = run.flow_run
    started = not state.is_pending()
    start = run.start_time.timestamp() if started and run.start_time is not None else None
    return (
        run.key, "flow" if isinstance(run, FlowRun) else "task", run.name,
        run.definition.name, run.parent.key if run.parent is not None else None,
        flow_run.key if flow_run is not None else None, _root(run).key,
        json.dumps(sorted(run.tags)) if run.tags else "[]", to_json(run.parameters),
        _inputs(run), state.type.value, state.name, state.message, _error(state),
        run.run_count if started else 0, _timestamp(pending), start,
        _timestamp(state) if state.is_final() else None, _pid, _HOST,
        run.cache_note if started else None,
    )  # fmt: skip


def _inputs(run: Run) -> str:
    if not (run.upstream or run.streamed_from):
        return "{}"
    return json.dumps({k: [str(i) for i in v] for k, v in run.task_inputs.items()})


def _update_row(run: Run, state: State[Any]) -> tuple[Any, ...]:
    start = run.start_time.timestamp() if run.start_time is not None else None
    end = _timestamp(state) if state.is_final() else None
    # Upstream futures are resolved once the run starts: record the values it got.
    resolved = state.is_final() and run.takes_inputs
    return (
        state.type.value, state.name, state.message, _error(state), run.run_count, start, end,
        to_json(run.parameters) if resolved else None,
        _inputs(run) if resolved else None, run.cache_note, run.key,
    )  # fmt: skip


def _log_row(record: logging.LogRecord) -> tuple[Any, ...]:
    run_id = getattr(record, "task_run_id", None) or getattr(record, "flow_run_id", None)
    try:
        message = record.getMessage()
    except Exception as exc:  # a bad format string must not cost the rest of the batch
        message = f"{record.msg!r} (unformattable: {exc})"
    if record.exc_info and record.exc_info[1] is not None:
        message += "\n" + logging.Formatter().formatException(record.exc_info)
    label = getattr(record, "run_label", record.name)
    return (
        run_id, getattr(record, "root_run_id", None), record.created, record.levelno,
        record.name, label, message,
    )  # fmt: skip


def recover(db: sqlite3.Connection) -> int:
    """Mark the unfinished runs of processes on this host that are gone as Crashed.

    Returns:
        How many runs were marked.
    """
    pids = [
        pid
        for (pid,) in db.execute(
            "SELECT DISTINCT pid FROM runs WHERE host = ? AND state_type IN (?, ?, ?)",
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
            ids = [
                r for (r,) in db.execute(
                    "SELECT id FROM runs WHERE host = ? AND pid = ? AND state_type IN (?, ?, ?)",
                    (_HOST, pid, *_UNFINISHED),
                )
            ]  # fmt: skip
            db.executemany(
                "UPDATE runs SET state_type = 'CRASHED', state_name = 'Crashed', "
                "state_message = ?, end_time = ? WHERE id = ?",
                [(message, now, i) for i in ids],
            )
            db.executemany(
                "INSERT INTO states VALUES (?, 'CRASHED', 'Crashed', ?, ?)",
                [(i, message, now) for i in ids],
            )
            db.execute("COMMIT")
        except BaseException:
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
_trees: dict[Run, Writer] = {}
_tree_ids: dict[str, Writer] = {}
_forced: bool | None = None


def is_enabled() -> bool:
    """Whether runs started now are recorded: ``enable``/``disable``, else ``FLOWKIT_STORE``."""
    if _forced is not None:
        return _forced
    return os.environ.get("FLOWKIT_STORE", "on").lower() not in ("off", "0", "false", "no")


def enable() -> None:
    """Record the runs started from now on, whatever ``FLOWKIT_STORE`` says."""
    global _forced
    _forced = True


def disable() -> None:
    """Do not record the runs started from now on, whatever ``FLOWKIT_STORE`` says."""
    global _forced
    _forced = False


def flush() -> None:
    """Wait until every recorded event and log record so far is committed."""
    for writer in list(_writers.values()):
        writer.flush()


def _open_tree(run: Run, path: Path) -> Writer:
    """The writer of ``path`` (started if need be), now recording the tree of ``run``."""
    with _lock:
        writer = _writers.get(path)
        if writer is None:
            writer = _writers[path] = Writer(path)
        _trees[run] = writer
        _tree_ids[str(run.id)] = writer
        return writer


def _retire(writer: Writer) -> bool:
    """Stop an idle writer that records no tree (its database may not be used again)."""
    with _lock:
        if any(w is writer for w in _trees.values()) or writer.has_queued():
            return False
        if _writers.get(writer.path) is writer:
            del _writers[writer.path]
        return True


def _on_event(event: events.Event) -> None:
    """First of the sinks: a root run's Pending opens its tree; every event is queued."""
    run, state = event.run, event.state
    if run.parent is None:
        if state.is_pending():
            if not is_enabled():
                return
            writer = _open_tree(run, default_path())
        elif (writer := _trees.get(run)) is None:  # type: ignore[assignment]
            return
        writer.put(event)
        return
    found = _trees.get(_root(run))
    if found is not None:
        found.put(event)


def _after_event(event: events.Event) -> None:
    """Last of the sinks: once a root run's final log lines are queued, close its tree;
    a flow's call returns only when its records are committed."""
    run = event.run
    if run.parent is not None or not event.state.is_final():
        return
    writer = _trees.pop(run, None)
    _tree_ids.pop(str(run.id), None)
    if writer is not None and isinstance(run, FlowRun):
        writer.flush()


class StoreHandler(logging.Handler):
    """Sends the log records of recorded runs to their store."""

    flowkit_internal = True  # not the user's logging configuration

    def emit(self, record: logging.LogRecord) -> None:
        root = getattr(record, "root_run_id", None)
        if root is not None and (writer := _tree_ids.get(root)) is not None:
            writer.put(record)


_setup_done = False


def setup() -> None:
    """Start recording: subscribe to the engine's events and flowkit's log records."""
    global _setup_done
    with _lock:
        if _setup_done:
            return
        events.subscribe(_on_event, tier="first")
        events.subscribe(_after_event, tier="last")
        logging.getLogger("flowkit").addHandler(StoreHandler())
        atexit.register(_close_all)
        _setup_done = True


def _close_all() -> None:
    for writer in list(_writers.values()):
        writer.close()


events.on_first_run(setup)
