"""The terminal progress line: a sink of the engine's events.

A flow run called outside any flow, with ``progress=True`` (or ``FLOWKIT_PROGRESS=1``),
shows one line at the bottom of a terminal while it runs::

    nightly 'brave-okapi': 12/40 task runs finished, 4 running, 1 failed · 3.2 s

It is drawn only when stderr is a terminal, redrawn a few times a second, and erased
when the run ends. Log records are unchanged: before a run logger's record reaches any
handler, the line is erased (and drawn again a moment later), so log lines and the
progress line never share a row.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import TextIO

import attrs

from ._engine import events
from ._engine.events import RunInfo, StateChanged

__all__ = ["REFRESH_SECONDS", "progress_wanted", "setup"]

REFRESH_SECONDS = 0.25
"""How often the line is redrawn (its elapsed time moves even when nothing happens)."""
_HOLD_SECONDS = 0.1
"""After a log record, how long the line stays erased: the record is written meanwhile."""
_ON = frozenset({"1", "true", "on", "yes"})
_OFF = frozenset({"", "0", "false", "off", "no"})
_ERASE = "\r\x1b[2K"
# Every run record starts on one of these loggers (get_run_logger's and the engine's).
_RUN_LOGGERS = ("flowkit.engine", "flowkit.flow_runs", "flowkit.task_runs")


def progress_wanted(option: bool | None) -> bool:
    """Whether a root flow run with ``progress=option`` wants the line.

    Raises:
        ValueError: ``option`` is ``None`` and ``FLOWKIT_PROGRESS`` is not a yes or no.
    """
    if option is not None:
        return option
    raw = os.environ.get("FLOWKIT_PROGRESS", "")
    value = raw.strip().lower()
    if value in _ON or value in _OFF:
        return value in _ON
    raise ValueError(
        f"FLOWKIT_PROGRESS={raw!r} is neither on nor off; set it to 1 to show a progress "
        "line for flow runs in a terminal, or unset it"
    )


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return (
        f"{minutes} min {secs:02d} s"
        if minutes < 60
        else f"{minutes // 60} h {minutes % 60:02d} min"
    )


@attrs.define(eq=False)
class _Tally:
    """What one root flow run's line says."""

    label: str
    started: float
    total: int = 0
    finished: int = 0
    failed: int = 0
    running: set[str] = attrs.Factory(set[str])

    def text(self, now: float) -> str:
        return (
            f"{self.label}: {self.finished}/{self.total} task runs finished, "
            f"{len(self.running)} running, {self.failed} failed · {_elapsed(now - self.started)}"
        )


class _Line(logging.Filter):
    """The line on one stream: the tallies of the runs it shows, and its redrawing thread.

    As a filter on the run loggers it erases the line before a record is handled; it
    never changes or drops the record.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.tallies: dict[str, _Tally] = {}
        self._lock = threading.Lock()
        self._shown = False
        self._hold_until = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._redraw, name="flowkit-progress", daemon=True)

    def start(self) -> None:
        for name in _RUN_LOGGERS:
            logging.getLogger(name).addFilter(self)
        self._thread.start()

    def stop(self) -> None:
        for name in _RUN_LOGGERS:
            logging.getLogger(name).removeFilter(self)
        self._stop.set()
        with self._lock:
            self._erase()

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            self._erase()
            self._hold_until = time.monotonic() + _HOLD_SECONDS
        return True

    def draw(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._hold_until or not self.tallies:
                return
            text = "  |  ".join(t.text(now) for t in self.tallies.values())
            self._write(_ERASE + text)
            self._shown = True

    def _erase(self) -> None:
        if self._shown:
            self._write(_ERASE)
            self._shown = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed terminal: the line is only a courtesy
            self._stop.set()

    def _redraw(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            self.draw()


_lock = threading.Lock()
_line: _Line | None = None
_roots: dict[str, _Tally] = {}


def _begin(run: RunInfo) -> None:
    global _line
    if not progress_wanted(run.progress):
        return
    stream = sys.stderr
    if not stream.isatty():
        return
    with _lock:
        if _line is None:
            _line = _Line(stream)
            _line.start()
        tally = _Tally(f"{run.definition} {run.name!r}", time.monotonic())
        _line.tallies[run.id] = _roots[run.id] = tally


def _end(run: RunInfo) -> None:
    global _line
    with _lock:
        _roots.pop(run.id, None)
        if _line is None:
            return
        _line.tallies.pop(run.id, None)
        if not _line.tallies:
            _line.stop()
            _line = None


def _on_event(event: events.Event) -> None:
    if not isinstance(event, StateChanged):
        return
    run, state = event.run, event.state
    if run.parent is None:
        if event.ended:
            _end(run)
        elif run.kind == "flow" and state.is_pending():
            _begin(run)
        return
    tally = _roots.get(run.root_id)
    if tally is None or run.kind != "task":
        return
    if event.ended:
        tally.running.discard(run.id)
        tally.finished += 1
        if state.is_failed() or state.is_crashed() or state.is_pending():  # NotReady
            tally.failed += 1
    elif state.is_pending():
        tally.total += 1
    elif state.is_running():
        tally.running.add(run.id)
    else:  # AwaitingRetry, Paused: not running for now
        tally.running.discard(run.id)


_setup_done = False


def setup() -> None:
    """Subscribe the progress line to the engine's events (at the first run, by the
    console's setup in ``flowkit.logging``).

    Raises:
        ValueError: ``FLOWKIT_PROGRESS`` is neither on nor off.
    """
    global _setup_done
    progress_wanted(None)  # a wrong value is said to the first run's caller
    with _lock:
        if not _setup_done:
            events.subscribe(_on_event, kinds=(StateChanged,))
            _setup_done = True
