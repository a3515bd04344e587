"""What flowkit writes is private to its user, whatever the umask; temporaries a killed
process left are swept."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowkit import flow, store, task
from flowkit._engine.home import STALE_SECONDS

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o002, 0o000])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    before = os.umask(request.param)
    yield int(request.param)
    os.umask(before)


@task(persist_result=True)
def remembered(x: int) -> int:
    return x * 2


@flow
def remembering(x: int) -> int:
    return remembered(x)


def test_home_is_0700_and_its_files_0600_whatever_the_umask(
    backend: str, umask: int, flowkit_home: Path
) -> None:
    assert remembering(21) == 42
    store.flush()  # the writer holds the database open: -wal and -shm are there
    files = [p for p in flowkit_home.rglob("*") if p.is_file()]
    directories = [flowkit_home, *(p for p in flowkit_home.rglob("*") if p.is_dir())]
    names = {p.name for p in files}
    assert {"runs.db", "runs.db-wal", "runs.db-shm"} <= names
    assert len(files) >= 5  # and a result and its cache record
    assert {p.name: _mode(p) for p in files} == dict.fromkeys(names, 0o600)
    assert {str(p): _mode(p) for p in directories} == dict.fromkeys(map(str, directories), 0o700)


def test_an_existing_directory_keeps_the_mode_its_owner_chose(
    backend: str, flowkit_home: Path
) -> None:
    flowkit_home.mkdir(mode=0o750)
    flowkit_home.chmod(0o750)
    remembering(1)
    assert _mode(flowkit_home) == 0o750
    assert _mode(flowkit_home / "runs.db") == 0o600


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_temporaries_are_swept_when_a_directory_is_first_written(
    backend: str, flowkit_home: Path
) -> None:
    results = flowkit_home / "results"
    results.mkdir(parents=True)
    stale = results / ".ab12.x7f3k.tmp"
    fresh = results / ".cd34.q9w8e.tmp"
    kept = [results / "old-result", results / ".hidden", results / "plain.tmp"]
    for path in [stale, fresh, *kept]:
        path.write_text("left by kill -9")
        _age(path, STALE_SECONDS + 60)
    _age(fresh, 5)  # a live writer's, perhaps
    remembering(3)
    assert not stale.exists()
    assert fresh.exists()
    assert all(path.exists() for path in kept)
