"""``LocalFileSystem``: Prefect's local file system block, for files under one directory.

It is a ``ResultStorage``, the protocol a ``result_storage`` object follows:
``read_path(path) -> bytes`` and ``write_path(path, content)``.

Writes are atomic: a temporary file in the same directory, flushed to disk, then renamed
over the target, so a reader sees the old content or the new, never half of it.

As Prefect's blocks are, a ``LocalFileSystem`` is saved under a name (``save``) and
loaded by it (``load``): here a JSON file under ``$FLOWKIT_HOME/blocks``, not a server.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Self

import attrs

from ._engine.home import home
from ._engine.results.storage import ResultStorage, contained, create_atomic, write_atomic

__all__ = ["LocalFileSystem", "ResultStorage"]

# Prefect's rule for block document names; it also keeps a name one plain file name.
_BLOCK_NAME = re.compile(r"[a-z0-9-]+")
# Prefect's slug for this kind of block: the directory its saved blocks are in.
_BLOCK_TYPE = "local-file-system"


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

    @classmethod
    def _saved_path(cls, name: object, method: str) -> Path:
        """The file block ``name`` is saved in.

        Raises:
            ValueError: ``name`` is not a block name (lowercase letters, digits, dashes).
        """
        if not isinstance(name, str) or not _BLOCK_NAME.fullmatch(name):
            raise ValueError(
                f"LocalFileSystem.{method}({name!r}): a block name must be lowercase "
                "letters, numbers and dashes, as in Prefect; e.g. 'my-results'"
            )
        return home() / "blocks" / _BLOCK_TYPE / f"{name}.json"

    def save(self, name: str, overwrite: bool = False) -> uuid.UUID:
        """Save this file system under ``name``, to be loaded with
        ``LocalFileSystem.load(name)`` by this or another program with the same
        ``FLOWKIT_HOME`` (Prefect's ``Block.save``, without a server).

        The file is written atomically; saving over a name again with
        ``overwrite=True`` keeps the block's id.

        Args:
            name: The block's name: lowercase letters, numbers and dashes.
            overwrite: Replace a block already saved under ``name``.

        Returns:
            The saved block's id.

        Raises:
            ValueError: ``name`` is not a block name, or a block is saved under it
                already and ``overwrite`` is false.
            TypeError: ``overwrite`` is not a bool.
        """
        path = self._saved_path(name, "save")
        if not isinstance(overwrite, bool):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                f"LocalFileSystem.save({name!r}): overwrite must be True or False, "
                f"got {overwrite!r}"
            )
        block_id = uuid.uuid4()
        if overwrite and path.exists():
            block_id = uuid.UUID(str(self._read_saved(path, name)["id"]))
        document = {
            "id": str(block_id),
            "block_type_slug": _BLOCK_TYPE,
            "data": {"basepath": None if self.basepath is None else str(self.basepath)},
        }
        content = json.dumps(document, indent=2).encode()
        if overwrite:
            write_atomic(path, content)
        elif not create_atomic(path, content):  # no check-then-write race with another saver
            raise ValueError(
                f"LocalFileSystem.save({name!r}): a block is saved under that name already "
                f"({path}); to replace it, save with overwrite=True"
            )
        return block_id

    @classmethod
    def load(cls, name: str) -> Self:
        """The file system saved under ``name`` with ``save`` (Prefect's ``Block.load``).

        Raises:
            ValueError: ``name`` is not a block name, or no block is saved under it.
        """
        path = cls._saved_path(name, "load")
        if not path.is_file():
            raise ValueError(
                f"LocalFileSystem.load({name!r}): no block is saved under that name in "
                f"{path.parent}; save one first with LocalFileSystem(basepath=...).save({name!r})"
            )
        data = cls._read_saved(path, name)["data"]
        return cls(basepath=data["basepath"])

    @staticmethod
    def _read_saved(path: Path, name: str) -> dict[str, Any]:
        """The saved document at ``path``.

        Raises:
            ValueError: The file is not a saved ``LocalFileSystem``.
        """
        try:
            document = json.loads(path.read_bytes())
            uuid.UUID(document["id"])
            basepath = document["data"]["basepath"]
            if document["block_type_slug"] != _BLOCK_TYPE or not (
                basepath is None or isinstance(basepath, str)
            ):
                raise TypeError(document)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(
                f"LocalFileSystem block {name!r}: {path} is not a saved LocalFileSystem "
                f"({type(exc).__name__}); save it again with overwrite=True"
            ) from None
        return document  # type: ignore[no-any-return]

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
