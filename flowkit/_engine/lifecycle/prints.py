"""``log_prints``: ``print`` in a run's body becomes an INFO log record of the run.

While any run that logs its prints is in its body, ``builtins.print`` is replaced by a
function that sends the current run's prints to its logger and passes everything else
(other threads, other runs, other files) to the real ``print`` untouched.
"""

from __future__ import annotations

import builtins
import logging
import sys
import threading
from collections.abc import Generator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from .runs import current_run

__all__ = ["printing_to_log"]

_real_print = builtins.print
_lock = threading.Lock()
_users = 0
_loggers = {"flow": logging.getLogger("flowkit.flow_runs"),
            "task": logging.getLogger("flowkit.task_runs")}  # fmt: skip


def _print(
    *values: object,
    sep: str | None = " ",
    end: str | None = "\n",
    file: Any = None,
    flush: bool = False,
) -> None:
    run = current_run.get()
    if run is None or not run.log_prints or (file is not None and file is not sys.stdout):
        _real_print(*values, sep=sep, end=end, file=file, flush=flush)
        return
    info = run.info
    # stacklevel 2: the record's file, line and function are those of the print call.
    _loggers[info.kind].info(
        (" " if sep is None else sep).join(map(str, values)),
        extra={**info.fields, "run_label": info.label}, stacklevel=2,
    )  # fmt: skip


_NOT_PRINTING = nullcontext()


def printing_to_log(enabled: bool) -> AbstractContextManager[None]:
    """While the block runs, send ``print`` calls of runs with ``log_prints`` to their logs."""
    return _printing_to_log() if enabled else _NOT_PRINTING


@contextmanager
def _printing_to_log() -> Generator[None, None, None]:
    global _users
    with _lock:
        _users += 1
        builtins.print = _print
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                builtins.print = _real_print
