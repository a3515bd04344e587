"""``flowkit.filesystems.LocalFileSystem``: files under a base path, written atomically."""

from __future__ import annotations

import tempfile
from pathlib import Path

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
