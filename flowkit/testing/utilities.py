"""``flowkit_test_harness``: a fresh, temporary ``FLOWKIT_HOME`` for a block of code."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

from .._engine.results.cache import RESULTS
from ..store._writer import override, release, set_override

__all__ = ["flowkit_test_harness", "prefect_test_harness"]

_lock = threading.Lock()
# The homes of the harnesses open now, innermost last, and FLOWKIT_HOME as it was before
# the first of them (None: unset).
_open: list[Path] = []
_outside: str | None = None


@contextmanager
def flowkit_test_harness(home: str | os.PathLike[str] | None = None) -> Generator[Path, None, None]:
    """Give the block a fresh ``FLOWKIT_HOME``: run store, results, cache and limits.

    Harnesses nest, and may be used from several threads: ``FLOWKIT_HOME`` names the
    innermost one open, and is restored when the last one closes. On leaving, the runs
    recorded in the home are committed, its store writer is stopped, the results cached
    in memory are forgotten, and ``flowkit.store.enable()``/``disable()`` are undone.
    Works in ``unittest`` (``setUp``/``addCleanup``) as in pytest.

    Args:
        home: The directory to use, kept afterwards (flowkit makes it when it first
            writes there); by default a new temporary one, deleted afterwards.

    Yields:
        The home directory.

    Raises:
        OSError: A temporary directory cannot be made.
    """
    global _outside
    made = home is None
    path = Path(tempfile.mkdtemp(prefix="flowkit-home-") if home is None else home).resolve()
    switch = override()
    with _lock:
        if not _open:
            _outside = os.environ.get("FLOWKIT_HOME")
        _open.append(path)
        os.environ["FLOWKIT_HOME"] = str(path)
    try:
        yield path
    finally:
        release(path)
        # The memo is keyed by FLOWKIT_HOME's text, which a later temporary home may reuse.
        RESULTS.forget_memo()
        set_override(switch)
        with _lock:
            _open.remove(path)
            if _open:
                os.environ["FLOWKIT_HOME"] = str(_open[-1])
            elif _outside is None:
                os.environ.pop("FLOWKIT_HOME", None)
            else:
                os.environ["FLOWKIT_HOME"] = _outside
        if made:
            shutil.rmtree(path, ignore_errors=True)


prefect_test_harness = flowkit_test_harness
"""Prefect's name for ``flowkit_test_harness``, for tests ported from Prefect."""
