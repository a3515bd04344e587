"""``FLOWKIT_HOME``: where flowkit keeps what it writes, private to the user who runs it.

The run store holds parameters, logs and errors; results hold return values. Whatever the
umask, directories flowkit creates are 0700 and files 0600. Modes of directories and files
that already exist are left as they are: someone chose them.

Files are written atomically, through a temporary file renamed over the target. A process
killed mid-write leaves its temporary behind; ``sweep`` removes those that are stale.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

__all__ = [
    "PRIVATE_DIRECTORY",
    "PRIVATE_FILE",
    "STALE_SECONDS",
    "TEMPORARY_PREFIX",
    "TEMPORARY_SUFFIX",
    "create_private_file",
    "home",
    "make_private_directory",
    "sweep",
    "sweep_once",
]

PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600
TEMPORARY_PREFIX = "."
TEMPORARY_SUFFIX = ".tmp"
STALE_SECONDS = 3600.0
"""A temporary file untouched for this long is left by a dead writer: a live one writes on."""


def home() -> Path:
    """``FLOWKIT_HOME``, default ``~/.flowkit``."""
    return Path(os.environ.get("FLOWKIT_HOME") or Path("~", ".flowkit")).expanduser()


def make_private_directory(directory: Path) -> Path:
    """Make ``directory`` and its missing parents, each one 0700; return it.

    Raises:
        OSError: A directory cannot be made (say, a file is in the way).
    """
    missing: list[Path] = []
    path = directory
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=PRIVATE_DIRECTORY)
        except FileExistsError:  # another process made it meanwhile: theirs to set
            if not path.is_dir():
                raise
            continue
        # mkdir's mode passes through the umask, which may take away the owner's bits.
        path.chmod(PRIVATE_DIRECTORY)
    return directory


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 unless it exists; its directory is made private.

    Raises:
        OSError: It cannot be created.
    """
    make_private_directory(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, PRIVATE_FILE)  # whatever the umask
    finally:
        os.close(fd)


def sweep(directory: Path, *, older_than: float = STALE_SECONDS) -> int:
    """Remove the temporary files in ``directory`` untouched for ``older_than`` seconds.

    Returns:
        How many were removed. A directory that is missing or unreadable has none.
    """
    cutoff = time.time() - older_than
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        name = entry.name
        if not (name.startswith(TEMPORARY_PREFIX) and name.endswith(TEMPORARY_SUFFIX)):
            continue
        # Another process may remove or finish it between the look and the unlink.
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
    return removed


_swept: set[Path] = set()
_swept_lock = threading.Lock()


def sweep_once(directory: Path) -> None:
    """``sweep(directory)`` the first time this process writes there."""
    if directory in _swept:
        return
    with _swept_lock:
        if directory in _swept:
            return
        _swept.add(directory)
    sweep(directory)
