"""``LocalFileSystem``: Prefect's local file system block, for files under one directory.

It is a ``ResultStorage``, the protocol a ``result_storage`` object follows:
``read_path(path) -> bytes`` and ``write_path(path, content)``.

Writes are atomic: a temporary file in the same directory, flushed to disk, then renamed
over the target, so a reader sees the old content or the new, never half of it.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from pathlib import Path

import attrs

from ._engine.results import ResultStorage, contained, write_atomic

__all__ = ["LocalFileSystem", "ResultStorage"]


def _basepath(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value).expanduser().resolve()


@attrs.frozen
class LocalFileSystem:
    """Files on this machine, under ``basepath`` if one is given.

    Relative paths are taken from ``basepath`` (from the working directory without one).
    With a ``basepath``, a path that leads outside it is refused.

    Attributes:
        basepath: The directory every path is resolved in, or ``None``.
    """

    basepath: Path | None = attrs.field(default=None, converter=_basepath)

    def _resolve_path(self, path: str | os.PathLike[str] | None) -> Path:
        """``path`` made absolute under ``basepath``.

        Raises:
            ValueError: ``path`` leads outside ``basepath``.
        """
        given = Path(path if path is not None else "").expanduser()
        if self.basepath is None:
            return given.resolve()
        return contained(self.basepath, given, owner="LocalFileSystem")

    def read_path(self, path: str | os.PathLike[str]) -> bytes:
        """Return the content of the file at ``path``.

        Raises:
            ValueError: ``path`` leads outside ``basepath``.
            FileNotFoundError: There is no file at ``path``.
            IsADirectoryError: ``path`` is a directory.
        """
        return self._resolve_path(path).read_bytes()

    def write_path(self, path: str | os.PathLike[str], content: bytes) -> str:
        """Write ``content`` to the file at ``path`` atomically, making parent directories.

        Returns:
            The absolute path written, as a string.

        Raises:
            ValueError: ``path`` leads outside ``basepath``.
            TypeError: ``content`` is not bytes.
            IsADirectoryError: ``path`` is a directory.
        """
        if not isinstance(content, bytes | bytearray | memoryview):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                f"LocalFileSystem.write_path({str(path)!r}) takes bytes, got "
                f"{type(content).__name__}; encode text first, e.g. text.encode()"
            )
        target = self._resolve_path(path)
        if target.is_dir():
            raise IsADirectoryError(
                f"LocalFileSystem.write_path: {str(target)!r} is a directory, not a file"
            )
        write_atomic(target, bytes(content))
        return str(target)

    def get_directory(
        self, from_path: str | os.PathLike[str] | None = None, local_path: str | None = None
    ) -> None:
        """Copy the directory ``from_path`` (default: ``basepath``) to ``local_path``
        (default: the working directory), merging into what is there.

        Raises:
            ValueError: ``from_path`` leads outside ``basepath``.
            NotADirectoryError: ``from_path`` is not a directory.
        """
        source = self._resolve_path(from_path)
        destination = Path(local_path if local_path is not None else ".").expanduser().resolve()
        if source == destination:
            return
        if not source.is_dir():
            raise NotADirectoryError(
                f"LocalFileSystem.get_directory: {str(source)!r} is not a directory"
            )
        shutil.copytree(source, destination, dirs_exist_ok=True)

    def put_directory(
        self,
        local_path: str | os.PathLike[str] | None = None,
        to_path: str | os.PathLike[str] | None = None,
        ignore_file: str | os.PathLike[str] | None = None,
    ) -> int:
        """Copy the directory ``local_path`` (default: the working directory) to ``to_path``
        under ``basepath``, merging into what is there.

        Args:
            local_path: The directory to copy.
            to_path: Where to copy it, relative to ``basepath``.
            ignore_file: A file of glob patterns, one a line (``#`` starts a comment):
                files whose path relative to ``local_path`` matches one are not copied.

        Returns:
            How many files were copied.

        Raises:
            ValueError: ``to_path`` leads outside ``basepath``.
            NotADirectoryError: ``local_path`` is not a directory.
            FileNotFoundError: ``ignore_file`` does not exist.
        """
        source = Path(local_path if local_path is not None else ".").expanduser().resolve()
        destination = self._resolve_path(to_path)
        if not source.is_dir():
            raise NotADirectoryError(
                f"LocalFileSystem.put_directory: {str(source)!r} is not a directory"
            )
        patterns: list[str] = []
        if ignore_file is not None:
            lines = Path(ignore_file).read_text().splitlines()
            patterns = [p.strip() for p in lines if p.strip() and not p.lstrip().startswith("#")]
        copied = 0
        for file in sorted(source.rglob("*")):
            relative = file.relative_to(source).as_posix()
            if not file.is_file() or any(fnmatch.fnmatch(relative, p) for p in patterns):
                continue
            if destination == source or (destination / relative).resolve() == file:
                continue
            write_atomic(destination / relative, file.read_bytes())
            copied += 1
        return copied
