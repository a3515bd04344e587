"""The run store: every flow run, task run, state change and log line, in SQLite.

Runs are recorded as they happen, with no setup, into ``$FLOWKIT_HOME/runs.db``
(``~/.flowkit/runs.db`` by default). ``FLOWKIT_STORE=off`` or ``disable()`` turns it off;
``FLOWKIT_STORE_RETENTION=30d`` keeps runs for 30 days. Read it back with ``Store``, or
from the shell with ``flowkit runs``::

    with Store.open() as store:
        for run in store.flow_runs(limit=5):
            print(run.name, run.state_name, run.duration)
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from logging import getLevelName
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import attrs

from .. import states
from .._engine.convert import converter
from ._prune import parse_age, prune, retention
from ._schema import SCHEMA_VERSION, StoreError, connect, default_path, disk_trouble, is_busy
from ._writer import disable, enable, flush, is_enabled, recover

__all__ = [
    "SCHEMA_VERSION",
    "STATE_NAMES",
    "ArtifactRecord",
    "LogLine",
    "RunRecord",
    "StateRecord",
    "Store",
    "StoreError",
    "TransactionRecord",
    "default_path",
    "disable",
    "enable",
    "flush",
    "is_enabled",
    "parse_age",
    "retention",
]

READ_BUSY_SECONDS = 5.0
"""How long ``Store`` waits for another connection's write lock (to mark crashed runs,
migrate, or prune) before it goes on without, or says the store is locked."""
STATE_NAMES = tuple(
    sorted(
        {t.value.title() for t in states.StateType}
        | {c.name for c in vars(states).values() if isinstance(c, states.StateConstructor)}
    )
)
"""The state names and types ``flow_runs(state=...)`` takes, besides names of states a
store has recorded (``Completed(name="Skipped")``)."""


def _ambiguous(name: str, found: list[RunRecord]) -> str:
    lines = [
        f"  {r.id[:8]}  {r.kind} run of {r.definition!r}, "
        f"created {r.created.astimezone():%Y-%m-%d %H:%M:%S}"
        for r in found[:10]
    ]
    more = "\n  ..." if len(found) > 10 else ""
    return (
        f"{len(found) if len(found) <= 10 else 'more than 10'} runs are named {name!r}; "
        f"give the id of the one you mean:\n" + "\n".join(lines) + more
    )


def _locked(path: Path, why: str) -> str:
    return (
        f"the run store at {path} is locked by another process, and it needs the lock "
        f"{why}; try again when that process is done"
    )


def _state(row: Sequence[Any]) -> StateRecord:
    """A state from a row of ``history``: type, name, message, timestamp, thread_wait,
    worker (and anything after, unread)."""
    return StateRecord(row[0], row[1], row[2], _time(row[3]), row[4], row[5])  # type: ignore[arg-type]


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@attrs.frozen
class StateRecord:
    """One state a run entered.

    Attributes:
        type: Its type, e.g. ``"COMPLETED"``.
        name: Its name, e.g. ``"Cached"``.
        message: Its message, if any.
        timestamp: When the run entered it.
        thread_wait: For the state that ended an attempt of a sync body: the seconds
            that attempt waited for a worker thread (its flow's ``thread_limit``) after
            it entered Running.
        worker: For the state that ended an attempt: who ran its body, ``"thread"``,
            ``"process <pid>"`` or ``"dask <worker address>"``; ``None`` for a body on
            the event loop, or none called.
    """

    type: str
    name: str
    message: str | None
    timestamp: datetime
    thread_wait: float | None = None
    worker: str | None = None


@attrs.frozen
class LogLine:
    """One log record of a run."""

    run_id: str | None
    timestamp: datetime
    level: int
    logger: str
    label: str
    message: str

    def format(self) -> str:
        """The line as the console shows it: ``12:45:28.241 | INFO    | Flow run 'x' - msg``."""
        local = self.timestamp.astimezone()
        return (
            f"{local:%H:%M:%S}.{local.microsecond // 1000:03d} | "
            f"{getLevelName(self.level):<7} | {self.label} - {self.message}"
        )


@attrs.frozen
class ArtifactRecord:
    """An artifact recorded (see ``flowkit.artifacts``).

    Attributes:
        id: The artifact's id.
        run_id: The run that made it; ``None`` for one made outside any run.
        created: When it was made.
        type: ``"markdown"``, ``"table"``, ``"link"`` or ``"progress"``.
        key: Its key, if it was given one.
        description: Its description, if any.
        data: Its content: the markdown text; ``{"columns", "rows"}`` for a table
            (``columns`` is ``None`` for rows given as lists); ``{"link", "link_text"}``;
            the percentage (a float from 0 to 100) for a progress.
        updated: When its content last changed (a progress's last update).
    """

    id: str
    run_id: str | None
    created: datetime
    type: str
    key: str | None
    description: str | None
    data: Any
    updated: datetime

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ArtifactRecord:
        """The record of a row of ``_ARTIFACT_COLUMNS``."""
        created, updated = datetime.fromtimestamp(row[2], UTC), datetime.fromtimestamp(row[7], UTC)
        return cls(row[0], row[1], created, row[3], row[4], row[5], json.loads(row[6]), updated)


_ARTIFACT_COLUMNS = "id, run_id, created, type, key, description, data, updated"


@attrs.frozen
class TransactionRecord:
    """A commit or rollback of a transaction (see ``flowkit.transactions``).

    Attributes:
        id: The record's id.
        run_id: The run it happened in.
        created: When.
        action: ``"commit"`` or ``"rollback"``.
        key: The transaction's key, if any.
        task_run: For a task run's own transaction: that run's name; ``None`` for one
            opened with ``transaction()``.
        hooks: The hooks that ran, in order: each a dict with ``hook`` (its name),
            ``kind`` (``"commit"`` or ``"rollback"``), ``task_run`` (the run that staged
            it) and ``error`` (what it raised, or ``None``).
    """

    id: str
    run_id: str
    created: datetime
    action: str
    key: str | None
    task_run: str | None
    hooks: list[dict[str, Any]]


@attrs.frozen
class RunRecord:
    """A recorded flow or task run.

    Attributes:
        id: The run's id.
        kind: ``"flow"`` or ``"task"``.
        name: The run's name, e.g. ``"get_url-0"``.
        definition: The flow's or task's name.
        parent_id: The run that started it, if any.
        flow_run_id: The nearest flow run (itself, for a flow run).
        root_id: The outermost run of its tree.
        tags: Its tags.
        parameters: Its arguments as JSON values (``repr`` for what JSON cannot hold).
        task_inputs: Upstream run ids by parameter (``"wait_for"`` too).
        state_type: The type of its last state, e.g. ``"COMPLETED"``.
        state_name: The name of its last state, e.g. ``"Cached"``.
        state_message: The message of its last state.
        error: ``"Type: message"`` of the exception that ended it, if any.
        run_count: How many attempts it made.
        created, start_time, end_time: When it was created, first ran, and ended.
        pid, host: The process that ran it.
        cache: For a caching task run: why it did or did not use a cached result.
        result: Where its persisted result lives, if it was persisted.
        result_repr: For a completed run whose result is kept in memory: its ``repr``,
            at most 200 characters (a placeholder where ``repr`` failed).
    """

    id: str
    kind: str
    name: str
    definition: str
    parent_id: str | None
    flow_run_id: str | None
    root_id: str
    tags: list[str]
    parameters: dict[str, Any]
    task_inputs: dict[str, list[str]]
    state_type: str
    state_name: str
    state_message: str | None
    error: str | None
    run_count: int
    created: datetime
    start_time: datetime | None
    end_time: datetime | None
    pid: int
    host: str
    cache: str | None = None
    result: str | None = None
    result_repr: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from its first start to its end, once it has ended."""
        if self.start_time is None or self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        """Make the record of a ``runs`` table row."""
        values = dict(row)
        for key in ("tags", "parameters", "task_inputs"):
            values[key] = json.loads(values[key])
        for key in ("created", "start_time", "end_time"):
            values[key] = _time(values[key])
        return cls(**values)


class Store:
    """A reading connection to a run store. Use ``Store.open()`` in a ``with`` block."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._db.row_factory = sqlite3.Row
        self.path = path

    @classmethod
    def open(cls, path: str | Path | None = None) -> Store:
        """Open the store at ``path`` (default ``$FLOWKIT_HOME/runs.db``).

        Runs left unfinished by processes on this host that are gone are marked Crashed
        (unless another process holds the write lock: then at a later open).

        Raises:
            StoreError: There is no store there, it is not flowkit's, a newer flowkit
                wrote it, it is damaged, or it needs setting up or migrating while another
                process holds its lock or its disk is full.
        """
        path = Path(path) if path is not None else default_path()
        try:
            db = connect(path, create=False, busy_seconds=READ_BUSY_SECONDS)
        except sqlite3.OperationalError as exc:  # busy: the migration needs the lock
            raise StoreError(_locked(path, "to bring its schema up to date")) from exc
        try:
            recover(db)
        except sqlite3.OperationalError as exc:
            # Locked, or its disk full: reading needs no write, and the crashed runs are
            # marked at a later open.
            if not is_busy(exc) and disk_trouble(exc) is None:
                db.close()
                raise
        return cls(db, path)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()

    def flow_runs(
        self,
        *,
        flow: str | None = None,
        state: str | None = None,
        since: datetime | None = None,
        limit: int | None = 20,
    ) -> list[RunRecord]:
        """The most recent root runs (flow runs, and tasks run outside flows), newest first.

        Args:
            flow: Only runs of the flow (or task) with this name.
            state: Only runs whose last state has this name or type (any case).
            since: Only runs created at or after this time.
            limit: At most this many; ``None`` for all.
        """
        where, args = ["parent_id IS NULL"], list[Any]()
        if state is not None:
            self._check_state(state)
        if flow is not None:
            where.append("definition = ?")
            args.append(flow)
        if state is not None:
            where.append("(upper(state_name) = upper(?) OR state_type = upper(?))")
            args += [state, state]
        if since is not None:
            where.append("created >= ?")
            args.append(since.timestamp())
        sql = f"SELECT * FROM runs WHERE {' AND '.join(where)} ORDER BY created DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [RunRecord.from_row(r) for r in self._db.execute(sql, args)]

    def _check_state(self, state: str) -> None:
        if (
            state.lower() in (n.lower() for n in STATE_NAMES)
            or self._db.execute(
                "SELECT 1 FROM runs WHERE upper(state_name) = upper(?) LIMIT 1", (state,)
            ).fetchone()
        ):
            return
        raise ValueError(
            f"{state!r} is not a state: give a state type or name (any case), one of "
            f"{', '.join(STATE_NAMES)}, or a state name this store has recorded"
        )

    def prune(self, older_than: timedelta | datetime) -> int:
        """Delete the finished runs created over ``older_than`` ago (or before it, for a
        date), with their task runs, states and logs. Unfinished runs are kept.

        The space they took is reused for new runs; the file itself does not shrink.

        Returns:
            How many root runs (flow runs, and tasks run outside flows) were deleted.

        Raises:
            StoreError: Another process held the store's write lock for
                ``READ_BUSY_SECONDS``; nothing was deleted.
        """
        before = datetime.now(UTC) - older_than if isinstance(older_than, timedelta) else (
            older_than
        )  # fmt: skip
        try:
            return prune(self._db, before)
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise StoreError(_locked(self.path, "to delete runs")) from exc
            raise

    def get(self, run: str) -> RunRecord:
        """The run whose id is ``run`` or starts with it; else the run named ``run``;
        else the newest run of the flow named ``run``.

        Raises:
            KeyError: No run matches; or the id prefix, or the name, fits several runs
                (the message lists them).
        """
        rows = self._db.execute(
            "SELECT * FROM runs WHERE id LIKE ? || '%' LIMIT 2", (run.replace("%", ""),)
        ).fetchall()
        if len(rows) > 1:
            raise KeyError(
                f"{run!r} starts the ids of several runs ({rows[0]['id']}, {rows[1]['id']}, "
                "...); give more of the id"
            )
        if not rows:
            rows = self._db.execute(
                "SELECT * FROM runs WHERE name = ? ORDER BY created DESC LIMIT 11", (run,)
            ).fetchall()
            if len(rows) > 1:
                raise KeyError(_ambiguous(run, [RunRecord.from_row(r) for r in rows]))
        if not rows:  # a flow's name: its latest run
            rows = self._db.execute(
                "SELECT * FROM runs WHERE definition = ? AND parent_id IS NULL "
                "ORDER BY created DESC LIMIT 1",
                (run,),
            ).fetchall()
        if not rows:
            raise KeyError(
                f"no run has the id or name {run!r}, nor is it a flow's name, in {self.path}"
            )
        return RunRecord.from_row(rows[0])

    def tree(self, run: str) -> list[RunRecord]:
        """Every run in the tree of ``run`` (found as with ``get``), in creation order.

        Raises:
            KeyError: No run matches, or several do.
        """
        root = self.get(run).root_id
        rows = self._db.execute("SELECT * FROM runs WHERE root_id = ? ORDER BY created", (root,))
        return [RunRecord.from_row(r) for r in rows]

    def states(self, run: str) -> list[StateRecord]:
        """The states the run entered, in order."""
        rows = self._db.execute(
            "SELECT type, name, message, timestamp, thread_wait, worker FROM history "
            "WHERE root_id = ? AND run_id = ? ORDER BY timestamp, seq",
            ((record := self.get(run)).root_id, record.id),
        )
        return [_state(r) for r in rows]

    def tree_states(self, run: str) -> dict[str, list[StateRecord]]:
        """The states of every run in the tree of ``run`` (found as with ``get``), by run
        id, each run's in order: one query, however many runs the tree holds.

        Raises:
            KeyError: No run matches, or several do.
        """
        rows = self._db.execute(
            "SELECT s.type, s.name, s.message, s.timestamp, s.thread_wait, s.worker, s.run_id "
            "FROM runs r JOIN history s ON s.run_id = r.id "
            "WHERE s.root_id = ?1 AND r.root_id = ?1 "
            "ORDER BY r.created, s.timestamp, s.seq",
            (self.get(run).root_id,),
        )
        found: dict[str, list[StateRecord]] = {}
        for r in rows:
            found.setdefault(r[6], []).append(_state(r))
        return found

    def logs(self, run: str) -> Iterator[LogLine]:
        """The log lines of the whole tree of ``run``, in order."""
        root = self.get(run).root_id
        rows = self._db.execute(
            "SELECT run_id, timestamp, level, logger, label, message FROM logs "
            "WHERE root_id = ? ORDER BY timestamp, rowid",
            (root,),
        )
        for r in rows:
            yield LogLine(r[0], _time(r[1]), r[2], r[3], r[4], r[5])  # type: ignore[arg-type]

    def artifacts(self, run: str) -> list[ArtifactRecord]:
        """The artifacts of the whole tree of ``run``, in the order they were made."""
        rows = self._db.execute(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE root_id = ? ORDER BY created, rowid",
            (self.get(run).root_id,),
        )
        return [ArtifactRecord.from_row(r) for r in rows]

    def latest_artifacts(
        self, *, limit: int = 20, key: str | None = None, without_run: bool = False
    ) -> list[ArtifactRecord]:
        """The artifacts made last, newest first, whichever run made them (or none did).

        Args:
            limit: How many at most.
            key: Only those with this key.
            without_run: Only those made outside any flow or task run.
        """
        where = ["1"]
        args: list[Any] = []
        if key is not None:
            where.append("key = ?")
            args.append(key)
        if without_run:
            where.append("run_id IS NULL")
        rows = self._db.execute(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE {' AND '.join(where)} "
            "ORDER BY created DESC, rowid DESC LIMIT ?",
            (*args, limit),
        )
        return [ArtifactRecord.from_row(r) for r in rows]

    def artifact(self, artifact: str) -> ArtifactRecord:
        """The artifact whose id is ``artifact`` or starts with it; else the latest with
        the key ``artifact``.

        Raises:
            KeyError: None matches, or the id prefix fits several artifacts.
        """
        rows = self._db.execute(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE id LIKE ? || '%' LIMIT 2",
            (artifact.replace("%", ""),),
        ).fetchall()
        if len(rows) > 1:
            raise KeyError(
                f"{artifact!r} starts the ids of several artifacts ({rows[0][0]}, "
                f"{rows[1][0]}, ...); give more of the id"
            )
        if not rows:
            rows = self._db.execute(
                f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE key = ? "
                "ORDER BY created DESC, rowid DESC LIMIT 1",
                (artifact,),
            ).fetchall()
        if not rows:
            raise KeyError(f"no artifact has the id or key {artifact!r} in {self.path}")
        return ArtifactRecord.from_row(rows[0])

    def transactions(self, run: str) -> list[TransactionRecord]:
        """The commits and rollbacks in the whole tree of ``run``, in the order they
        happened."""
        rows = self._db.execute(
            "SELECT id, run_id, created, action, key, task_run, hooks FROM transactions "
            "WHERE root_id = ? ORDER BY created, rowid",
            (self.get(run).root_id,),
        )
        return [
            TransactionRecord(r[0], r[1], _time(r[2]), r[3], r[4], r[5], json.loads(r[6]))  # type: ignore[arg-type]
            for r in rows
        ]

    def export(self, run: str) -> dict[str, Any]:
        """The tree of ``run`` as JSON-ready data: runs with their states, and the logs."""
        tree = self.tree(run)
        return {
            "schema": SCHEMA_VERSION,
            "root": tree[0].root_id,
            "runs": [
                {**converter().unstructure(r), "states": converter().unstructure(self.states(r.id))}
                for r in tree
            ],
            "logs": converter().unstructure(list(self.logs(run))),
        }
