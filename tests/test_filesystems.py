"""``flowkit.filesystems.LocalFileSystem``: files under a base path, written atomically."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowkit.filesystems import LocalFileSystem


def test_write_then_read_gives_the_content(tmp_path: Path) -> None:
    fs = LocalFileSystem(basepath=tmp_path)
    written = fs.write_path("a/b/data.bin", b"\x00payload")
    assert written == str(tmp_path.resolve() / "a" / "b" / "data.bin")
    assert fs.read_path("a/b/data.bin") == b"\x00payload"


@given(content=st.binary())
def test_any_bytes_round_trip(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        fs = LocalFileSystem(basepath=directory)
        fs.write_path("f", content)
        assert fs.read_path("f") == content


def test_write_replaces_a_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    fs = LocalFileSystem(basepath=tmp_path)
    fs.write_path("f", b"old")
    fs.write_path("f", b"new")
    assert fs.read_path("f") == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_a_failed_write_keeps_the_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = LocalFileSystem(basepath=tmp_path)
    fs.write_path("f", b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        fs.write_path("f", b"new")
    assert fs.read_path("f") == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../escape"])
def test_a_path_outside_the_base_path_is_refused(tmp_path: Path, path: str) -> None:
    fs = LocalFileSystem(basepath=tmp_path / "base")
    with pytest.raises(ValueError, match="outside the base path"):
        fs.write_path(path, b"x")
    with pytest.raises(ValueError, match="outside the base path"):
        fs.read_path(path)


def test_an_absolute_path_inside_the_base_path_is_taken(tmp_path: Path) -> None:
    fs = LocalFileSystem(basepath=tmp_path)
    fs.write_path(tmp_path / "f", b"x")
    assert (tmp_path / "f").read_bytes() == b"x"


def test_without_a_base_path_paths_are_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    LocalFileSystem().write_path("here.txt", b"hi")
    assert (tmp_path / "here.txt").read_bytes() == b"hi"


def test_reading_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        LocalFileSystem(basepath=tmp_path).read_path("nothing")


def test_write_refuses_text(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"takes bytes, got str; encode text first"):
        LocalFileSystem(basepath=tmp_path).write_path("f", "text")  # type: ignore[arg-type]


def test_write_refuses_a_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        LocalFileSystem(basepath=tmp_path).write_path("d", b"x")


def test_put_directory_copies_files_but_the_ignored_ones(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "a.py").write_bytes(b"a")
    (source / "pkg" / "a.pyc").write_bytes(b"compiled")
    (source / "notes.txt").write_bytes(b"n")
    ignore = tmp_path / ".flowkitignore"
    ignore.write_text("# compiled files\n*.pyc\n")
    fs = LocalFileSystem(basepath=tmp_path / "remote")
    assert fs.put_directory(source, "copy", ignore_file=ignore) == 2
    copied = sorted(p.relative_to(tmp_path / "remote").as_posix() for p in fs.basepath.rglob("*"))  # type: ignore[union-attr]
    assert copied == ["copy", "copy/notes.txt", "copy/pkg", "copy/pkg/a.py"]


def test_get_directory_copies_the_base_path_to_a_local_directory(tmp_path: Path) -> None:
    fs = LocalFileSystem(basepath=tmp_path / "remote")
    fs.write_path("sub/f", b"x")
    fs.get_directory("sub", str(tmp_path / "local"))
    assert (tmp_path / "local" / "f").read_bytes() == b"x"


def test_get_directory_of_a_file_is_refused(tmp_path: Path) -> None:
    fs = LocalFileSystem(basepath=tmp_path)
    fs.write_path("f", b"x")
    with pytest.raises(NotADirectoryError):
        fs.get_directory("f", str(tmp_path / "local"))


# Saved under a name, as Prefect's blocks are


def test_a_saved_file_system_loads_back_by_name(flowkit_home: Path, tmp_path: Path) -> None:
    block_id = LocalFileSystem(basepath=tmp_path / "data").save("my-data")
    assert isinstance(block_id, uuid.UUID)
    assert LocalFileSystem.load("my-data") == LocalFileSystem(basepath=tmp_path / "data")
    saved = flowkit_home / "blocks" / "local-file-system" / "my-data.json"
    assert json.loads(saved.read_text())["data"] == {"basepath": str((tmp_path / "data").resolve())}


def test_a_file_system_without_a_base_path_is_saved_too(flowkit_home: Path) -> None:
    LocalFileSystem().save("cwd")
    assert LocalFileSystem.load("cwd") == LocalFileSystem()


def test_saving_over_a_saved_name_needs_overwrite(tmp_path: Path) -> None:
    LocalFileSystem(basepath=tmp_path / "a").save("shared")
    with pytest.raises(ValueError, match=r"saved under that name already.*overwrite=True"):
        LocalFileSystem(basepath=tmp_path / "b").save("shared")
    assert LocalFileSystem.load("shared").basepath == (tmp_path / "a").resolve()


def test_overwrite_replaces_the_saved_block_and_keeps_its_id(tmp_path: Path) -> None:
    first = LocalFileSystem(basepath=tmp_path / "a").save("shared")
    again = LocalFileSystem(basepath=tmp_path / "b").save("shared", overwrite=True)
    assert again == first
    assert LocalFileSystem.load("shared").basepath == (tmp_path / "b").resolve()
    assert LocalFileSystem(basepath=tmp_path).save("fresh", overwrite=True) != first


def test_overwrite_must_be_true_or_false() -> None:
    with pytest.raises(TypeError, match=r"save\('a'\): overwrite must be True or False, got 'yes'"):
        LocalFileSystem().save("a", overwrite="yes")  # type: ignore[arg-type]


def test_loading_a_name_never_saved_says_to_save_it_first() -> None:
    with pytest.raises(ValueError, match=r"load\('nothing'\): no block is saved under that name"):
        LocalFileSystem.load("nothing")


@pytest.mark.parametrize("name", ["", "Upper", "a/b", "../up", "a b", "a.json", 7])
def test_a_block_name_is_lowercase_letters_numbers_and_dashes(name: Any) -> None:
    with pytest.raises(ValueError, match="lowercase letters, numbers and dashes"):
        LocalFileSystem().save(name)
    with pytest.raises(ValueError, match="lowercase letters, numbers and dashes"):
        LocalFileSystem.load(name)


def test_a_failed_save_keeps_the_saved_block_and_leaves_no_temporary_file(
    flowkit_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    LocalFileSystem(basepath=tmp_path / "old").save("kept")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        LocalFileSystem(basepath=tmp_path / "new").save("kept", overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        LocalFileSystem(basepath=tmp_path / "new").save("other")
    monkeypatch.undo()
    assert LocalFileSystem.load("kept").basepath == (tmp_path / "old").resolve()
    directory = flowkit_home / "blocks" / "local-file-system"
    assert sorted(p.name for p in directory.iterdir()) == ["kept.json"]


def test_a_saved_file_that_is_not_a_block_is_named_with_the_fix(flowkit_home: Path) -> None:
    LocalFileSystem().save("broken")
    (flowkit_home / "blocks" / "local-file-system" / "broken.json").write_text("{}")
    with pytest.raises(ValueError, match=r"'broken'.*not a saved LocalFileSystem.*overwrite=True"):
        LocalFileSystem.load("broken")
