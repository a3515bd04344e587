"""The terminal progress line: shown for a root flow run when asked and stderr is a
terminal; log records untouched."""

from __future__ import annotations

import io
import re
import sys
import time

import pytest

from flowkit import _progress as progress
from flowkit import flow, task

LINE = re.compile(
    r"\r\x1b\[2K(\w+) '[\w-]+': (\d+)/(\d+) task runs finished, (\d+) running, (\d+) failed "
    r"· \d+\.\d s"
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Terminal:
    """A terminal, for the test to make its stderr with ``_use``: pytest's capture puts
    its own stderr in place after fixtures are set up."""
    stream = Terminal()
    monkeypatch.setattr(progress, "REFRESH_SECONDS", 0.01)
    monkeypatch.delenv("FLOWKIT_PROGRESS", raising=False)
    return stream


@task
def fine() -> int:
    return 1


@task
def broken() -> None:
    raise ValueError("broken")


@task
def linger() -> None:
    time.sleep(0.4)


@flow(progress=True)
def watched() -> None:
    fine()
    broken.submit().wait()
    linger()


@flow
def unwatched() -> None:
    fine()
    linger()


def _use(terminal: Terminal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", terminal)


def _lines(stream: Terminal) -> list[tuple[str, ...]]:
    return [m.groups() for m in LINE.finditer(stream.getvalue())]


def test_a_flow_with_progress_shows_its_task_runs_and_erases_the_line(
    terminal: Terminal, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    _use(terminal, monkeypatch)
    watched(return_state=True)
    # While linger-0 sleeps: fine and broken have ended, one of them failed.
    assert ("watched", "2", "3", "1", "1") in _lines(terminal)
    assert terminal.getvalue().endswith("\r\x1b[2K")


def test_flowkit_progress_turns_it_on_for_every_flow(
    terminal: Terminal, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    _use(terminal, monkeypatch)
    monkeypatch.setenv("FLOWKIT_PROGRESS", "1")
    unwatched()
    assert ("unwatched", "1", "2", "1", "0") in _lines(terminal)


def test_the_option_wins_over_the_environment(
    terminal: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(terminal, monkeypatch)
    monkeypatch.setenv("FLOWKIT_PROGRESS", "1")
    unwatched.with_options(progress=False)()
    assert terminal.getvalue() == ""


def test_no_line_unless_asked(terminal: Terminal, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(terminal, monkeypatch)
    unwatched()
    assert terminal.getvalue() == ""


def test_no_line_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    watched(return_state=True)
    assert stream.getvalue() == ""


def test_log_records_are_unchanged(
    terminal: Terminal, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _use(terminal, monkeypatch)
    unwatched()
    plain = [r.getMessage() for r in caplog.records]
    caplog.clear()
    unwatched.with_options(progress=True)()
    shown = [r.getMessage() for r in caplog.records]
    assert [re.sub(r"'[\w-]+'", "'x'", m) for m in shown] == [
        re.sub(r"'[\w-]+'", "'x'", m) for m in plain
    ]
    assert _lines(terminal)


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_wrong_flowkit_progress_says_what_it_takes(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("FLOWKIT_PROGRESS", value)
    with pytest.raises(ValueError, match=f"FLOWKIT_PROGRESS='{value}' is neither on nor off"):
        progress.progress_wanted(None)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.04, "0.0 s"), (59.94, "59.9 s"), (75, "1 min 15 s"), (3725, "1 h 02 min")],
)
def test_elapsed_time_reads_at_a_glance(seconds: float, shown: str) -> None:
    assert progress._elapsed(seconds) == shown
