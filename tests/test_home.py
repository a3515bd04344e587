"""``FLOWKIT_HOME`` (``flowkit._engine.home``): where it is, directories and files made
private to the user whatever the umask, and temporaries a killed writer left swept."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowkit._engine.home import (
    STALE_SECONDS,
    create_private_file,
    home,
    make_private_directory,
    sweep,
    sweep_once,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


# 0o277 takes the owner's write bit: what flowkit makes must get it back, or be unusable.
@pytest.fixture(params=[0o022, 0o002, 0o000, 0o077, 0o277], ids=oct)
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    before = os.umask(request.param)
    yield int(request.param)
    os.umask(before)


# Where it is


def test_home_is_flowkit_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLOWKIT_HOME", str(tmp_path / "mine"))
    assert home() == tmp_path / "mine"


def test_home_defaults_to_dot_flowkit_in_the_users_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FLOWKIT_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert home() == tmp_path / ".flowkit"


def test_an_empty_flowkit_home_is_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLOWKIT_HOME", "")  # not the current directory
    monkeypatch.setenv("HOME", str(tmp_path))
    assert home() == tmp_path / ".flowkit"


def test_a_tilde_in_flowkit_home_is_the_users_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLOWKIT_HOME", "~/runs")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert home() == tmp_path / "runs"


# Private directories and files


def test_missing_parents_of_home_are_made_private(umask: int, tmp_path: Path) -> None:
    home = tmp_path / "a" / "b" / "home"
    make_private_directory(home)
    assert [_mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", home)] == [0o700] * 3


def test_an_existing_directory_keeps_the_mode_its_owner_chose(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o750)
    assert make_private_directory(shared / "home") == shared / "home"
    assert (_mode(shared), _mode(shared / "home")) == (0o750, 0o700)


def test_a_file_in_the_way_of_home_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(FileExistsError):
        make_private_directory(tmp_path / "file" / "home")


def test_a_new_file_is_empty_and_private_in_a_private_directory(umask: int, tmp_path: Path) -> None:
    path = tmp_path / "home" / "runs.db"
    create_private_file(path)
    assert path.read_bytes() == b""
    assert (_mode(path), _mode(path.parent)) == (0o600, 0o700)


def test_an_existing_file_is_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_text("records")
    path.chmod(0o640)
    create_private_file(path)
    assert (path.read_text(), _mode(path)) == ("records", 0o640)


# Temporaries left by a killed writer


def test_sweep_counts_what_it_removed_and_takes_a_missing_directory(tmp_path: Path) -> None:
    for name in (".a.1.tmp", ".b.2.tmp"):
        (tmp_path / name).write_text("")
        _age(tmp_path / name, STALE_SECONDS * 2)
    (tmp_path / ".c.3.tmp").mkdir()  # not a file: not ours
    _age(tmp_path / ".c.3.tmp", STALE_SECONDS * 2)
    assert sweep(tmp_path) == 2
    assert sweep(tmp_path / "missing") == 0
    assert [p.name for p in tmp_path.iterdir()] == [".c.3.tmp"]


def test_sweep_leaves_a_link_named_like_a_temporary(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("someone else's")
    _age(target, STALE_SECONDS * 2)
    (tmp_path / ".link.x1.tmp").symlink_to(target)
    assert sweep(tmp_path) == 0
    assert (tmp_path / ".link.x1.tmp").is_symlink()


def test_sweep_removes_only_temporaries_older_than_asked(tmp_path: Path) -> None:
    names = [".old.x1.tmp", ".young.x2.tmp", "result.tmp", ".hidden", "result"]
    for name in names:
        (tmp_path / name).write_text("")
        _age(tmp_path / name, 120)
    _age(tmp_path / ".young.x2.tmp", 30)
    assert sweep(tmp_path, older_than=60) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])


def test_a_directory_is_swept_once_per_process(tmp_path: Path) -> None:
    first, second = tmp_path / ".a.1.tmp", tmp_path / ".b.2.tmp"
    first.write_text("")
    _age(first, STALE_SECONDS * 2)
    sweep_once(tmp_path)
    second.write_text("")
    _age(second, STALE_SECONDS * 2)
    sweep_once(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [second.name]
