"""The run store under faults: another process's lock, kill -9, a full disk, a damaged file."""

from __future__ import annotations

import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowkit import flow, store, task
from flowkit.cli import main as flowkit_main
from flowkit.store import Store, _writer

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)

HOLD = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


@task
def step(i: int) -> int:
    return i


@flow
def steps(n: int) -> int:
    return sum(step(i) for i in range(n))


def _count(sql: str) -> int:
    db = sqlite3.connect(store.default_path())
    try:
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


@pytest.fixture
def held_lock(monkeypatch: pytest.MonkeyPatch) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the store's write lock (``BEGIN EXCLUSIVE``) until the
    test writes a line to its stdin."""
    monkeypatch.setattr(_writer, "BUSY_SECONDS", 0.1)
    monkeypatch.setattr(_writer, "RETRY_SECONDS", 0.1)
    steps(1)  # the store exists, with one flow run
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(store.default_path())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    yield holder
    if holder.poll() is None:
        holder.kill()
    holder.wait(10)
    for pipe in (holder.stdin, holder.stdout):
        if pipe is not None:
            pipe.close()


def _release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    assert holder.wait(10) == 0


def test_a_held_write_lock_stalls_no_run_and_loses_no_row(
    backend: str, held_lock: subprocess.Popen[str]
) -> None:
    # With the lock held until we let go, every call returning proves none waits for it.
    assert [steps(10) for _ in range(5)] == [45] * 5
    assert held_lock.poll() is None  # still holding
    assert _count("SELECT count(*) FROM runs") == 2  # the first flow; nothing more yet
    _release(held_lock)
    store.flush()
    assert _count("SELECT count(*) FROM runs WHERE kind = 'flow'") == 6
    assert _count("SELECT count(*) FROM runs WHERE kind = 'task'") == 51
    assert _count("SELECT count(*) FROM runs WHERE state_name != 'Completed'") == 0


def test_rows_past_the_bound_are_dropped_with_a_warning(
    backend: str,
    held_lock: subprocess.Popen[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(_writer, "MAX_WAITING", 40)
    steps(5)  # meets the lock: its rows wait
    writer = _writer._writers[store.default_path()]
    for _ in range(100):  # until the writer has found the store locked
        if writer._trouble is not None:
            break
        time.sleep(0.05)
    steps(50)  # hundreds of events: past the bound
    _release(held_lock)
    store.flush()
    said = [r.getMessage() for r in caplog.records if r.name == "flowkit.store"]
    assert any("40 events wait in memory, the most it keeps" in m for m in said)
    assert any("takes rows again" in m and "were dropped" in m for m in said)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings
    assert _count("SELECT count(*) FROM runs") < 2 + 6 + 51


KILLED = """
import sys, time
from flowkit import flow, store, task

@task(persist_result=True)
def work(i: int, salt: float) -> list[int]:
    time.sleep(0.01)  # a flow lasts 0.2 s or more: a kill soon after "running" lands in it
    return list(range(i % 50))

@flow
def busy(k: int) -> None:
    if k == 1:
        store.flush()  # this flow run's Pending and Running are on disk
        print("running", flush=True)
    for i in range(20):
        work.submit(i, time.time()).result()

for k in range(10_000):
    busy(k)
"""


def test_kill_9_at_random_points_leaves_a_sound_store_and_crashed_runs(tmp_path: Path) -> None:
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    chance = random.Random(16)
    pids = []
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
            env=os.environ.copy(),
        )  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "running"
        time.sleep(chance.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        pids.append(proc.pid)
        db = sqlite3.connect(store.default_path())
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()
    with Store.open() as s:  # opening marks the dead processes' runs
        left = s._db.execute(
            "SELECT count(*) FROM runs WHERE state_type IN ('PENDING', 'RUNNING')"
        ).fetchone()[0]
        crashed = s.flow_runs(state="Crashed", limit=None)
        trees = [s.tree(r.id) for r in s.flow_runs(state="Completed", limit=None)]
    assert left == 0
    assert {r.pid for r in crashed} <= set(pids)
    assert len(crashed) == 3  # each kill met a flow run in progress
    for tree in trees:  # a flow recorded Completed has its whole story
        assert [r.state_name for r in tree] == ["Completed"] * 21


FULL = """
import resource, signal, sys
from flowkit import flow, store, task
from flowkit.store import _writer

_writer.CLOSE_SECONDS = 0.5
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, not kills

@task
def echo(text: str) -> int:
    return len(text)

@flow
def filler(n: int) -> int:
    return sum(echo("x" * 2000 + str(i)) for i in range(n))

filler(1)
store.flush()
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
print("limited", flush=True)
for _ in range(10):
    assert filler(50) > 0
print("runs went on", flush=True)
"""


def test_a_full_disk_is_a_clear_error_and_corrupts_nothing(tmp_path: Path) -> None:
    script = tmp_path / "full.py"
    script.write_text(FULL)
    done = subprocess.run(
        [sys.executable, str(script), str(256 * 1024)], capture_output=True, text=True,
        env=os.environ.copy(), timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["limited", "runs", "went", "on"]
    assert "does not take rows now (its disk refuses to write" in done.stderr
    assert "events of runs were not recorded" in done.stderr
    db = sqlite3.connect(store.default_path())
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    with Store.open() as s:
        first = s.flow_runs(limit=None)[-1]
        assert (first.parameters, first.state_name) == ({"n": 1}, "Completed")


class FullDisk:
    """A disk that fills up and frees again: while ``full``, a new connection to a
    database can add no page to it (``PRAGMA max_page_count``), so SQLite's writes fail
    with SQLITE_FULL ("database or disk is full") as on a full disk."""

    def __init__(self) -> None:
        self.full = False


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> FullDisk:
    """A ``FullDisk`` under every connection the test's process opens; not full yet."""
    monkeypatch.setattr(_writer, "RETRY_SECONDS", 0.1)
    disk = FullDisk()
    connect = sqlite3.connect

    def limited(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        if disk.full:
            db.execute("PRAGMA max_page_count = 1")  # SQLite keeps the pages it has
        return db

    monkeypatch.setattr(sqlite3, "connect", limited)
    return disk


def test_a_disk_full_at_first_open_loses_no_row(
    backend: str, burners: None, full_disk: FullDisk
) -> None:
    full_disk.full = True  # before this process first opens the store, which is new
    assert [steps(10) for _ in range(3)] == [45] * 3
    assert store.default_path().stat().st_size == 0  # nothing could be written yet
    full_disk.full = False
    store.flush()
    assert _count("SELECT count(*) FROM runs WHERE kind = 'flow'") == 3
    assert _count("SELECT count(*) FROM runs WHERE kind = 'task'") == 30
    assert _count("SELECT count(*) FROM runs WHERE state_name != 'Completed'") == 0


def test_a_disk_full_at_first_open_is_said_to_be_full(
    backend: str, full_disk: FullDisk, caplog: pytest.LogCaptureFixture
) -> None:
    full_disk.full = True
    assert steps(2) == 1
    said = [r.getMessage() for r in caplog.records if r.name == "flowkit.store"]
    assert said == [
        f"the run store at {store.default_path()} does not take rows now (its disk is full: "
        "database or disk is full); runs go on, and their rows wait in memory (up to "
        "100000 events) until it does"
    ]
    full_disk.full = False
    store.flush()


def test_runs_ls_says_the_disk_is_full(
    backend: str, full_disk: FullDisk, capsys: pytest.CaptureFixture[str]
) -> None:
    full_disk.full = True
    steps(1)  # the store's file is made, empty: its schema could not be written
    capsys.readouterr()
    assert flowkit_main(["runs", "ls"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"Error: the run store at {store.default_path()} cannot be set up (its disk is full: "
        "database or disk is full); free some space, then try again"
    ]
    full_disk.full = False
    store.flush()


def _damaged_store() -> Path:
    """A store with some runs recorded, left by a process that is gone, with garbage
    written over a page in the middle of it (as a failing disk or a bad copy leaves it)."""
    for _ in range(20):
        steps(20)
    path = store.default_path()
    _writer.release(path.parent)  # this process opens it afresh, as a later one would
    db = sqlite3.connect(path)
    page_size, pages = (
        db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "page_count")
    )
    db.close()
    assert pages > 50
    with path.open("r+b") as file:
        file.seek(page_size * (pages // 2))
        file.write(b"\x07" * page_size)
    return path


def test_a_damaged_store_is_said_once_and_not_written_into(
    backend: str, burners: None, caplog: pytest.LogCaptureFixture
) -> None:
    path = _damaged_store()
    before = path.read_bytes()
    assert [steps(5) for _ in range(3)] == [10] * 3
    store.flush()
    said = [r for r in caplog.records if r.name == "flowkit.store"]
    assert [r.levelno for r in said] == [logging.WARNING]
    assert said[0].getMessage().startswith(f"the run store at {path} is damaged (")
    assert "move it aside (with its -wal and -shm files), and flowkit starts a new one" in (
        said[0].getMessage()
    )
    assert path.read_bytes() == before
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # no page written into its log


def test_a_damaged_stores_records_land_in_a_new_one_once_it_is_moved_aside(
    backend: str, burners: None
) -> None:
    path = _damaged_store()
    assert [steps(5) for _ in range(3)] == [10] * 3
    store.flush()
    for suffix in ("", "-wal", "-shm"):  # as the warning says
        found = path.with_name(path.name + suffix)
        if found.exists():
            found.rename(path.with_name("damaged.db" + suffix))
    store.flush()
    assert _count("SELECT count(*) FROM runs WHERE kind = 'flow'") == 3
    assert _count("SELECT count(*) FROM runs WHERE kind = 'task'") == 15
    assert _count("SELECT count(*) FROM runs WHERE state_name != 'Completed'") == 0
