"""The run store's database: opening it, its schema, and its migrations.

One SQLite file, ``$FLOWKIT_HOME/runs.db``, in WAL mode so that readers never block the
writer and several processes can record runs at once. ``PRAGMA application_id`` marks
the file as flowkit's; ``PRAGMA user_version`` holds the schema version, and each entry
of ``MIGRATIONS`` takes the schema one version further.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from .._engine.home import create_private_file, home

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DamagedStoreError",
    "DiskRefusedError",
    "StoreError",
    "connect",
    "default_path",
    "disk_trouble",
    "is_busy",
    "is_damaged",
]

APPLICATION_ID = 0x666B6974  # "fkit"

MIGRATIONS: tuple[str, ...] = (
    # 1: runs, their state changes, and their log records.
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,              -- 'flow' or 'task'
        name TEXT NOT NULL,
        definition TEXT NOT NULL,        -- the flow's or task's name
        parent_id TEXT,
        flow_run_id TEXT,                -- the nearest flow run (itself, for a flow run)
        root_id TEXT NOT NULL,           -- the outermost run of the tree
        tags TEXT NOT NULL,              -- JSON list
        parameters TEXT NOT NULL,        -- JSON object
        task_inputs TEXT NOT NULL,       -- JSON object: parameter -> upstream run ids
        state_type TEXT NOT NULL,
        state_name TEXT NOT NULL,
        state_message TEXT,
        error TEXT,
        run_count INTEGER NOT NULL,
        created REAL NOT NULL,           -- Unix time
        start_time REAL,
        end_time REAL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL
    );
    CREATE INDEX runs_by_root ON runs (root_id);
    CREATE INDEX roots_by_created ON runs (created) WHERE parent_id IS NULL;
    CREATE TABLE states (
        run_id TEXT NOT NULL,
        type TEXT NOT NULL,
        name TEXT NOT NULL,
        message TEXT,
        timestamp REAL NOT NULL
    );
    CREATE INDEX states_by_run ON states (run_id);
    CREATE TABLE logs (
        run_id TEXT,
        root_id TEXT,
        timestamp REAL NOT NULL,
        level INTEGER NOT NULL,
        logger TEXT NOT NULL,
        label TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX logs_by_root ON logs (root_id, timestamp);
    """,
    # 2: why each caching task run did or did not use a cached result.
    """
    ALTER TABLE runs ADD COLUMN cache TEXT;
    """,
    # 3: flow runs by name, to keep generated names unique and find runs by name.
    """
    CREATE INDEX flow_runs_by_name ON runs (name) WHERE kind = 'flow';
    """,
    # 4: where each run's persisted result lives.
    """
    ALTER TABLE runs ADD COLUMN result TEXT;
    """,
    # 5: artifacts: the markdown, tables and links runs leave for people to look at.
    """
    CREATE TABLE artifacts (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        root_id TEXT NOT NULL,
        created REAL NOT NULL,           -- Unix time
        type TEXT NOT NULL,              -- 'markdown', 'table' or 'link'
        key TEXT,
        description TEXT,
        data TEXT NOT NULL               -- JSON
    );
    CREATE INDEX artifacts_by_root ON artifacts (root_id, created);
    """,
    # 6: concurrency and rate limits, shared by every process using this store.
    """
    CREATE TABLE limits (
        name TEXT PRIMARY KEY,
        slots INTEGER NOT NULL,          -- how many slots the limit has
        slot_decay_per_second REAL,      -- NULL: no decay, no rate limiting
        spent REAL NOT NULL,             -- rate-limit slots not yet decayed
        spent_at REAL NOT NULL,          -- Unix time: when spent was last decayed
        created REAL NOT NULL
    );
    CREATE TABLE limit_leases (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        slots INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        acquired REAL NOT NULL,          -- Unix time
        expires REAL NOT NULL            -- Unix time: renewed while the holder lives
    );
    CREATE INDEX limit_leases_by_name ON limit_leases (name);
    """,
    # 7: a completed run's result as a short repr; on the state that ends an attempt,
    # the seconds the attempt waited for a worker thread.
    """
    ALTER TABLE runs ADD COLUMN result_repr TEXT;
    ALTER TABLE states ADD COLUMN thread_wait REAL;
    """,
    # 8: on the state that ends an attempt, who ran its body ("thread", "process <pid>",
    # "dask <address>"); NULL for a body on the event loop.
    """
    ALTER TABLE states ADD COLUMN worker TEXT;
    """,
    # 9: a task run in a flow has no rows for the Pending it was created in and its first
    # Running: they are its runs row's created and start_time, and the view history
    # gives every run's states, those two included.
    """
    DELETE FROM states WHERE rowid IN (
        SELECT s.rowid FROM states s JOIN runs r ON r.id = s.run_id
        WHERE r.kind = 'task' AND r.parent_id IS NOT NULL AND (
            (s.type = 'PENDING' AND s.timestamp = r.created)
            OR (s.type = 'RUNNING' AND s.name = 'Running' AND s.timestamp = r.start_time)
        )
    );
    CREATE VIEW history (run_id, type, name, message, timestamp, thread_wait, worker, seq) AS
        SELECT id, 'PENDING', 'Pending', NULL, created, NULL, NULL, -2 FROM runs
        WHERE kind = 'task' AND parent_id IS NOT NULL
        UNION ALL
        SELECT id, 'RUNNING', 'Running', NULL, start_time, NULL, NULL, -1 FROM runs
        WHERE kind = 'task' AND parent_id IS NOT NULL AND start_time IS NOT NULL
        UNION ALL
        SELECT run_id, type, name, message, timestamp, thread_wait, worker, rowid FROM states;
    """,
    # 10: states found by their tree, not their run: run ids are random, so an index by
    # run takes each new state row to a page of its own (a thousand task runs rewrote
    # 1,700 pages of a store with 100,000 runs, 950 without it); a tree's rows sit
    # together.
    """
    ALTER TABLE states ADD COLUMN root_id TEXT;
    UPDATE states SET root_id = (SELECT r.root_id FROM runs r WHERE r.id = states.run_id);
    DROP INDEX states_by_run;
    CREATE INDEX states_by_root ON states (root_id, run_id);
    DROP VIEW history;
    CREATE VIEW history (run_id, root_id, type, name, message, timestamp, thread_wait, worker,
                         seq) AS
        SELECT id, root_id, 'PENDING', 'Pending', NULL, created, NULL, NULL, -2 FROM runs
        WHERE kind = 'task' AND parent_id IS NOT NULL
        UNION ALL
        SELECT id, root_id, 'RUNNING', 'Running', NULL, start_time, NULL, NULL, -1 FROM runs
        WHERE kind = 'task' AND parent_id IS NOT NULL AND start_time IS NOT NULL
        UNION ALL
        SELECT run_id, root_id, type, name, message, timestamp, thread_wait, worker, rowid
        FROM states;
    """,
    # 11: artifacts made outside any run (no run_id, no root_id), and progress artifacts,
    # which are updated: when last (an update rewrites the row, which takes a new rowid,
    # so the page's change marks move).
    """
    CREATE TABLE artifacts_11 (
        id TEXT PRIMARY KEY,
        run_id TEXT,                     -- NULL: made outside any run
        root_id TEXT,                    -- NULL: made outside any run
        created REAL NOT NULL,           -- Unix time
        type TEXT NOT NULL,              -- 'markdown', 'table', 'link' or 'progress'
        key TEXT,
        description TEXT,
        data TEXT NOT NULL,              -- JSON
        updated REAL NOT NULL            -- Unix time
    );
    INSERT INTO artifacts_11 SELECT id, run_id, root_id, created, type, key, description,
        data, created FROM artifacts;
    DROP TABLE artifacts;
    ALTER TABLE artifacts_11 RENAME TO artifacts;
    CREATE INDEX artifacts_by_root ON artifacts (root_id, created);
    CREATE INDEX artifacts_by_time ON artifacts (created);
    """,
    # 12: each commit and rollback of a transaction, with the hooks it ran.
    """
    CREATE TABLE transactions (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,            -- the run it happened in
        root_id TEXT NOT NULL,
        created REAL NOT NULL,           -- Unix time
        action TEXT NOT NULL,            -- 'commit' or 'rollback'
        key TEXT,
        task_run TEXT,                   -- a task run's own transaction: the run's name
        hooks TEXT NOT NULL              -- JSON list of {hook, kind, task_run, error}
    );
    CREATE INDEX transactions_by_root ON transactions (root_id, created);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """The run store cannot be used: missing, not flowkit's, or from a newer flowkit."""


class DiskRefusedError(StoreError):
    """The store's schema could not be written: its disk is full, or refuses to write.

    A passing trouble: the store can be used once the disk takes writes again.
    """

    def __init__(self, path: Path, reason: str) -> None:
        fix = "free some space" if reason.startswith("its disk is full") else "check its disk"
        super().__init__(
            f"the run store at {path} cannot be set up ({reason}); {fix}, then try again"
        )
        self.reason = reason
        """What the disk said, e.g. ``its disk is full: database or disk is full``."""


class DamagedStoreError(StoreError):
    """The file is damaged, or is no SQLite database at all: moved aside, a new store
    takes its place."""


def default_path() -> Path:
    """``$FLOWKIT_HOME/runs.db``; ``FLOWKIT_HOME`` defaults to ``~/.flowkit``."""
    return home() / "runs.db"


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` says another connection holds a lock the statement needs."""
    return isinstance(exc, sqlite3.OperationalError) and (
        exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    )


def disk_trouble(exc: BaseException) -> str | None:
    """How the disk under a store refused a write, or ``None`` if ``exc`` is no such
    refusal: ``"its disk is full: ..."`` (SQLITE_FULL, or ENOSPC/EDQUOT from the file
    system) or ``"its disk refuses to write: ..."`` (an I/O error)."""
    if isinstance(exc, DiskRefusedError):
        return exc.reason
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"its disk is full: {exc.strerror}"
    if isinstance(exc, sqlite3.OperationalError):
        code = exc.sqlite_errorcode & 0xFF
        if code == sqlite3.SQLITE_FULL:
            return f"its disk is full: {exc}"
        if code == sqlite3.SQLITE_IOERR:
            return f"its disk refuses to write: {exc}"
    return None


def is_damaged(exc: BaseException) -> bool:
    """Whether ``exc`` says the store's file is damaged (SQLITE_CORRUPT) or is no SQLite
    database at all (SQLITE_NOTADB)."""
    if isinstance(exc, DamagedStoreError):
        return True
    code: int = getattr(exc, "sqlite_errorcode", 0)  # absent on errors the module made
    return isinstance(exc, sqlite3.DatabaseError) and (
        code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    )


def damaged(path: Path, cause: BaseException | str) -> DamagedStoreError:
    """The error that says the file at ``path`` is damaged (``cause`` says how), and what
    to do about it."""
    what = "is damaged"
    if getattr(cause, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_NOTADB:
        what = "is not a flowkit run store, or it is damaged"
    return DamagedStoreError(
        f"the run store at {path} {what} ({cause}); move it aside (with its -wal and -shm "
        "files), and flowkit starts a new one"
    )


def connect(path: Path, *, create: bool, busy_seconds: float = 30) -> sqlite3.Connection:
    """Open the store at ``path``, creating or migrating its schema as needed.

    A new store, and a new ``FLOWKIT_HOME``, are private to the user (0600, 0700); SQLite
    gives its ``-wal`` and ``-shm`` files the mode of the database. Opening a store whose
    schema is current takes no lock, so it never waits on a writer.

    Args:
        path: The database file.
        create: Whether to create it if it is missing.
        busy_seconds: How long a statement waits for a lock another connection holds.

    Raises:
        StoreError: There is no store and ``create`` is false; the file is not a flowkit
            run store; or a newer flowkit wrote it.
        DamagedStoreError: The file is damaged, or is no SQLite database at all.
        DiskRefusedError: The schema had to be written, and the disk is full or refuses
            to write.
        sqlite3.OperationalError: A migration needs the write lock and another connection
            held it for ``busy_seconds`` (see ``is_busy``).
        OSError: The file or its directory cannot be created.
    """
    if not create and not path.exists():
        raise StoreError(f"no run store at {path} yet: run a flow first, or set FLOWKIT_HOME")
    if create:
        create_private_file(path)
    _bind_none_cheaply()
    db = sqlite3.connect(path, timeout=busy_seconds, isolation_level=None,
                         check_same_thread=False)  # fmt: skip
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_seconds * 1000)}")
        _check_and_migrate(db, path)
        db.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.DatabaseError as exc:
        db.close()
        if is_busy(exc):
            raise
        # A full disk is no fault of the file: said as what it is, it lets a writer keep
        # its rows until the disk has room.
        if (reason := disk_trouble(exc)) is not None:
            raise DiskRefusedError(path, reason) from None
        if is_damaged(exc):
            raise damaged(path, exc) from None
        raise StoreError(f"{path} is not a flowkit run store ({exc})") from None
    except BaseException:
        db.close()
        raise
    return db


def _null(_: None) -> None:
    return None


def _bind_none_cheaply() -> None:
    """Have ``None`` bound as NULL without the sqlite3 module's search for an adapter.

    The module looks for one for every value that is not an int, float or str, and the
    failed lookup formats an AttributeError each time: a row's ``None`` values cost more
    than the rest of its insert. An adapter that returns ``None`` binds NULL, as before, for
    every connection in the process; one the program registered itself is left alone.
    """
    sqlite3.adapters.setdefault((type(None), sqlite3.PrepareProtocol), _null)


def _current(db: sqlite3.Connection) -> bool:
    """Whether the store is flowkit's, at this schema, in WAL mode: nothing to do."""
    app_id: int = db.execute("PRAGMA application_id").fetchone()[0]
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    mode: str = db.execute("PRAGMA journal_mode").fetchone()[0]
    return app_id == APPLICATION_ID and version == SCHEMA_VERSION and mode == "wal"


def _check_and_migrate(db: sqlite3.Connection, path: Path) -> None:
    if _current(db):  # a read: in WAL mode it never waits on a writer
        return
    # BEGIN IMMEDIATE takes the write lock, so two processes creating the store at once
    # take turns: the second finds the schema done.
    db.execute("BEGIN IMMEDIATE")
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id != APPLICATION_ID and (app_id != 0 or tables):
            raise StoreError(
                f"{path} is not a flowkit run store (it holds other data); "
                "point FLOWKIT_HOME at another directory"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path} was written by a newer flowkit (schema {version}; this flowkit "
                f"knows up to {SCHEMA_VERSION}); upgrade flowkit to read it"
            )
        for script in MIGRATIONS[version:]:
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        # A full disk may have rolled it back already: a ROLLBACK then would fail, and
        # hide why.
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("PRAGMA journal_mode = WAL")
