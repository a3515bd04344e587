"""Run logging: ``get_run_logger()``, the console format, and ``log_prints``.

Records go through structlog, which adds the current run's ids and names, and end as
stdlib ``logging`` records on the ``flowkit.flow_runs`` and ``flowkit.task_runs``
loggers, so the user's handlers and pytest's ``caplog`` see them. structlog's global
configuration is never touched: flowkit keeps its own processor chain.

Nothing is configured at import. The first run calls ``setup()``, which sets the level of
the ``flowkit`` logger (``FLOWKIT_LOGGING_LEVEL``, default ``INFO``) unless the user did,
adds a console handler only when the program has configured no logging of its own, and
subscribes the console story: the engine's state changes told as log lines. Every record
of a run also travels the event bus as a ``LogLine`` (``BusHandler``), which is how the
run store and other sinks get them.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Generator
from contextlib import contextmanager
from logging import DEBUG, ERROR, INFO, WARNING
from typing import TYPE_CHECKING, Any, TextIO, cast

from . import _progress
from ._engine import events
from ._engine.events import LogLine, RunInfo, StateChanged, format_exception
from ._engine.lifecycle.runs import current_run
from .exceptions import MissingContextError
from .states import StateType

if TYPE_CHECKING:
    from structlog.stdlib import BoundLogger
    from structlog.typing import EventDict, WrappedLogger

__all__ = [
    "BusHandler",
    "ConsoleFormatter",
    "ConsoleHandler",
    "disable_run_logger",
    "get_logger",
    "get_run_logger",
    "setup",
]

_LOG_KWARGS = ("exc_info", "stack_info", "stacklevel")
_STRUCTLOG_FRAMES = 3


def _to_stdlib(_: WrappedLogger, __: str, event_dict: EventDict) -> tuple[Any, ...]:
    """Final processor: hand the event to stdlib, keeping ``%`` args lazy as stdlib does."""
    msg = event_dict.pop("event")
    args = event_dict.pop("positional_args", ())
    kwargs = {k: event_dict.pop(k) for k in _LOG_KWARGS if k in event_dict}
    # The record's file, line and function are the caller's: skip structlog's frames
    # (BoundLogger.info and the proxies under it) on top of what the caller asked for.
    kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + _STRUCTLOG_FRAMES
    kwargs["extra"] = event_dict
    return (msg, *args), kwargs


def get_logger(name: str, **context: Any) -> BoundLogger:
    """Return a structlog logger that writes stdlib records to logger ``name``.

    Keyword arguments are bound to every record (as attributes of the stdlib record).
    """
    # Imported here, not at the top: structlog takes ~40 ms to import, a cost only
    # programs that ask for a logger should pay (the engine's own lines skip it).
    from structlog.stdlib import BoundLogger, filter_by_level

    return BoundLogger(logging.getLogger(name), [filter_by_level, _to_stdlib], context)


def _context(info: RunInfo) -> dict[str, Any]:
    """What every record of a run carries: its ids and names, and its console label."""
    return {**info.fields, "run_label": info.label}


def _stdlib_name(info: RunInfo) -> str:
    return "flowkit.flow_runs" if info.kind == "flow" else "flowkit.task_runs"


def run_logger(info: RunInfo) -> BoundLogger:
    """Return the logger of a run: its records carry the run's ids and names."""
    return get_logger(_stdlib_name(info), **_context(info))


def get_run_logger() -> BoundLogger:
    """Return a logger for the current flow or task run.

    Use it like a stdlib logger: ``logger.info("fetched %d rows", n)``. Its records carry
    ``flow_run_id``, ``flow_run_name``, ``flow_name`` and, in a task, ``task_run_id``,
    ``task_run_name`` and ``task_name``.

    Inside ``disable_run_logger()``, outside a run, it returns a logger that writes
    nothing, so a task's function can be called directly (``my_task.fn()``) in a test.

    Raises:
        MissingContextError: Called outside a flow or task run.
    """
    run = current_run.get()
    if run is None:
        if _disabled_depth:
            return _silent_logger()
        raise MissingContextError(
            "get_run_logger() needs a flow or task run; outside one, use "
            "logging.getLogger(__name__) or flowkit.logging.get_logger(name)"
        )
    return run_logger(run.info)


class ConsoleFormatter(logging.Formatter):
    """Formats records as ``12:45:28.241 | INFO    | Flow run 'intrepid-coua' - message``."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s.%(msecs)03d | %(levelname)-7s | %(label)s - %(message)s",
            datefmt="%H:%M:%S",
        )
        # The clock of the last second a line was made in: most lines share it with the
        # line before, and ``strftime`` costs more than the rest of a line.
        self._clock: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        record.label = label = getattr(record, "run_label", record.name)
        record.message = record.getMessage()
        line = self.line(record.created, int(record.msecs), record.levelname, label, record.message)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line

    def line(self, created: float, msecs: int, levelname: str, label: str, message: str) -> str:
        """The line of a record made at ``created``, without its traceback."""
        second = int(created)
        clock = self._clock
        if clock[0] != second:
            clock = self._clock = (second, time.strftime("%H:%M:%S", self.converter(second)))
        return f"{clock[1]}.{msecs:03d} | {levelname:<7} | {label} - {message}"

    def formatException(self, ei: Any) -> str:
        # Without the ``^^^`` markers, whose source parsing is not thread-safe on 3.11.
        return format_exception(ei[1])


_consoles: weakref.WeakSet[ConsoleHandler] = weakref.WeakSet()
_consoles_lock = threading.Lock()


def _flush_before_fork(handler: ConsoleHandler) -> None:
    """Have ``handler`` flushed before the process forks, or both processes would write
    the lines it gathered."""
    global _fork_hooked
    with _consoles_lock:
        if not _fork_hooked:
            os.register_at_fork(before=_flush_consoles)
            _fork_hooked = True
        _consoles.add(handler)


def _flush_consoles() -> None:
    for handler in list(_consoles):
        handler.flush()


_fork_hooked = False


FLUSH_SECONDS = 0.02
"""How long a console line may wait for the lines after it, at most."""
_FLUSH_LINES = 1000


class ConsoleHandler(logging.StreamHandler[TextIO]):
    """flowkit's console: a line per record on ``stream`` (stderr), written in batches.

    Writing a line costs a system call, and a reader (a terminal, a pipe to a log
    collector) to wake: more than the run the line is about. So lines are gathered and
    written together, in order: within ``FLUSH_SECONDS`` of the first of a batch, at once
    for a record at WARNING or above (with every line before it), and before a flow or
    task called outside any flow returns or raises. ``flush()`` writes what is gathered,
    as ``logging.shutdown`` does at exit.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.setFormatter(ConsoleFormatter())
        self._lines: list[str] = []
        self._due = threading.Event()
        self._flusher_pid = 0  # the process the flusher thread runs in (a fork has none)
        _flush_before_fork(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.gather(line, record.levelno)

    def gather(self, line: str, level: int) -> None:
        """Have ``line``, of a record at ``level``, written with the lines of its batch."""
        with self.lock:  # type: ignore[union-attr]  # Handler.__init__ made it
            lines = self._lines
            lines.append(line)
            if level >= WARNING or len(lines) >= _FLUSH_LINES:
                self.flush()
            elif len(lines) == 1:
                if self._flusher_pid != os.getpid():
                    self._start_flusher()
                self._due.set()

    def flush(self) -> None:
        """Write the lines gathered so far, then flush the stream."""
        with self.lock:  # type: ignore[union-attr]  # Handler.__init__ made it
            lines, self._lines = self._lines, []
            if not lines:
                return
            try:
                self.stream.write(self.terminator.join(lines) + self.terminator)
                self.stream.flush()
            except Exception:  # a closed or broken stream: say so as stdlib handlers do
                self.handleError(logging.makeLogRecord({"msg": lines[0]}))

    def _start_flusher(self) -> None:
        self._flusher_pid = os.getpid()
        name = "flowkit-console"
        threading.Thread(target=self._flush_when_due, name=name, daemon=True).start()

    def _flush_when_due(self) -> None:
        while True:
            self._due.wait()
            time.sleep(FLUSH_SECONDS)
            # Cleared before the flush: a line gathered after it wakes this thread again.
            self._due.clear()
            self.flush()


_setup_lock = threading.Lock()
_setup_done = False
_console: ConsoleHandler | None = None
_bus: BusHandler | None = None


def setup() -> None:
    """Configure flowkit's logging once, at the first run. Safe to call again."""
    global _setup_done, _console, _bus
    if _setup_done:
        return
    with _setup_lock:
        if _setup_done:
            return
        root_logger = logging.getLogger("flowkit")
        if root_logger.level == logging.NOTSET:
            given = os.environ.get("FLOWKIT_LOGGING_LEVEL", "INFO")
            level = given.upper()
            if level not in logging.getLevelNamesMapping():
                raise ValueError(
                    f"FLOWKIT_LOGGING_LEVEL={given!r} is not a logging level; "
                    "use DEBUG, INFO, WARNING, ERROR or CRITICAL"
                )
            root_logger.setLevel(level)
        # Handlers flowkit adds itself (the bus's) do not count as configuration.
        own = [h for h in root_logger.handlers if not getattr(h, "flowkit_internal", False)]
        if not logging.getLogger().handlers and not own:
            _console = ConsoleHandler(sys.stderr)
            root_logger.addHandler(_console)
        _bus = BusHandler()
        root_logger.addHandler(_bus)
        events.subscribe(_log_state_change, kinds=(StateChanged,))
        _progress.setup()  # the terminal progress line: the console's other sink
        _setup_done = True


_loggers = {
    None: logging.getLogger("flowkit.engine"),
    "flow": logging.getLogger("flowkit.flow_runs"),
    "task": logging.getLogger("flowkit.task_runs"),
}


def _news(
    speaker: RunInfo | None,
    level: int,
    msg: str,
    *args: object,
    event: StateChanged | None = None,
    about: RunInfo | None = None,
) -> None:
    """Log one line of a run's story as a stdlib record, the cheap way.

    These records are made on every state change, so they skip structlog and the stdlib's
    caller lookup (a stack walk that would only ever point into the engine), and cost
    nothing when their logger is not enabled for ``level``. ``event`` gives the record
    the exception of its state, with the traceback the engine formatted.
    """
    logger = _loggers[None if speaker is None else speaker.kind]
    if not logger.isEnabledFor(level):
        return
    direct = event is None or event.error is None
    if direct and (console := _sole_console(logger, level)) is not None:
        _tell(console, logger.name, level, msg % args if args else msg, speaker, about)
        return
    if speaker is None:
        # An engine line about a run (its creation) carries its ids, not its label.
        extra = None if about is None else {**about.fields, "run_label": "flowkit.engine"}
    else:
        extra = _context(speaker)
    exc_info: Any = None
    exc_text = None
    if event is not None and event.error is not None and event.error.traceback is not None:
        exc = event.state.exception
        exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
        exc_text = event.error.traceback
    if logging.getLogRecordFactory() is logging.LogRecord:
        record = _record(logger.name, level, msg, args, exc_info, extra)
    else:  # the program installed its own factory: let it make the record
        record = logger.makeRecord(
            logger.name, level, "flowkit", 0, msg, args, exc_info, None, extra
        )
    record.exc_text = exc_text  # formatted already: no handler parses source again
    logger.handle(record)


def _sole_console(logger: logging.Logger, level: int) -> ConsoleHandler | None:
    """flowkit's console, if a record of ``logger`` at ``level`` would reach it and the
    bus handler and nothing else (no handler, filter or record factory of the program's,
    no formatter but flowkit's): ``_tell`` can then do what they would, without a record."""
    console, bus, flowkit = _console, _bus, _flowkit
    sole = (
        console is not None
        and bus is not None
        and not logger.handlers
        and not logger.filters
        and not logger.disabled
        and logger.propagate
        and len(handlers := flowkit.handlers) == 2
        and handlers[0] is console
        and handlers[1] is bus
        and not flowkit.filters
        and not console.filters
        and not bus.filters
        and console.level <= level
        and bus.level <= level
        and type(console.formatter) is ConsoleFormatter
        and (not flowkit.propagate or not logging.root.handlers)
        and logging.getLogRecordFactory() is logging.LogRecord
    )
    return console if sole else None


def _tell(
    console: ConsoleHandler,
    name: str,
    level: int,
    message: str,
    speaker: RunInfo | None,
    about: RunInfo | None,
) -> None:
    """What flowkit's console and bus handlers make of a record, made without one: a
    line on ``console`` and, for a line about a run, a ``LogLine`` on the bus."""
    created_ns = time.time_ns()
    created = created_ns / 1e9
    label = "flowkit.engine" if speaker is None else speaker.label
    levelname = logging.getLevelName(level)
    msecs = (created_ns % 1_000_000_000) // 1_000_000
    formatter = cast(ConsoleFormatter, console.formatter)
    console.gather(formatter.line(created, msecs, levelname, label, message), level)
    if (run := speaker or about) is not None:
        events.emit(LogLine(run.id, run.root_id, created, level, name, label, message))


_flowkit = logging.getLogger("flowkit")


# What every engine record shares: where it comes from (flowkit, not a user's line) and
# the process. LogRecord.__init__ works these out for each record, which costs more than
# the rest of a run's bookkeeping; ``_record`` fills them in at once.
_SHARED = {
    "pathname": "flowkit", "filename": "flowkit", "module": "flowkit", "lineno": 0,
    "funcName": None, "stack_info": None, "exc_text": None,
    "process": os.getpid(), "processName": "MainProcess", "taskName": None,
}  # fmt: skip


def _record(
    name: str, level: int, msg: str, args: tuple[object, ...], exc_info: Any,
    extra: dict[str, Any] | None,
) -> logging.LogRecord:  # fmt: skip
    """A ``LogRecord`` equal to what ``Logger.makeRecord`` makes, made faster."""
    if _SHARED["process"] != (pid := os.getpid()):  # a fork: this is another process
        _SHARED["process"] = pid
        _SHARED["processName"] = _process_name()
    record = _new_record(logging.LogRecord)
    created = time.time_ns()
    record.__dict__ = {
        **_SHARED, "name": name, "msg": msg, "args": args,
        "levelname": logging.getLevelName(level), "levelno": level, "exc_info": exc_info,
        "created": created / 1e9, "msecs": (created % 1_000_000_000) // 1_000_000 + 0.0,
        "relativeCreated": (created - _START_NS) / 1e6,
        "thread": threading.get_ident(), "threadName": threading.current_thread().name,
        **(extra or {}),
    }  # fmt: skip
    return record


_new_record = object.__new__
_START_NS = int(logging._startTime * 1e9)  # type: ignore[attr-defined]


def _process_name() -> str:
    multiprocessing = sys.modules.get("multiprocessing")
    return multiprocessing.current_process().name if multiprocessing else "MainProcess"


_STOPPED = "stopped"


def _log_state_change(event: events.Event) -> None:
    """The console story of a run: created, executing, finished."""
    if not isinstance(event, StateChanged):
        return
    run, state = event.run, event.state
    if state.is_pending() and not event.ended:
        if run.kind == "flow" and run.parent is None:
            _news(None, INFO, "Created flow run %r for flow %r", run.name, run.definition,
                  about=run)  # fmt: skip
        else:
            kind = run.kind
            _news(
                run.parent, INFO, "Created %s run %r for %s %r",
                "subflow" if kind == "flow" else kind, run.name, kind, run.definition,
            )  # fmt: skip
            if run.submitted:
                _news(run.parent, INFO, "Submitted task run %r for execution.", run.name)
    elif state.is_running():
        if event.run_count == 1 and not run.submitted and run.kind == "task":
            _news(run.parent, INFO, "Executing %r immediately...", run.name)
    elif state.is_scheduled():
        _news(run, WARNING, "%s", state.message)
    elif state.is_completed():
        _news(run, INFO, "Finished in state %s%s", state, _children(event))
    elif event.ended:
        _log_end(event)
    if run.parent is None and event.ended and _console is not None:
        _console.flush()  # a run's lines are out before its call returns or raises


def _log_end(event: StateChanged) -> None:
    """A run that did not complete: one ERROR line with its traceback if it broke; one
    WARNING line without one if it was stopped (cancelled, Ctrl-C, a shutdown), or a
    DEBUG line for a task run stopped with its flow, whose final line counts it."""
    run, state = event.run, event.state
    if event.error is not None and event.error.traceback is not None:
        _news(run, ERROR, "Finished in state %s%s", state, _children(event), event=event)
    elif run.in_flow is not None and run.kind == "task":
        _news(run, DEBUG, "Finished in state %s", state)
    else:
        _news(run, WARNING, "Finished in state %s%s", state, _children(event))


_COUNTED = {StateType.CANCELLED: "cancelled", StateType.CRASHED: "crashed"}


def _children(event: StateChanged) -> str:
    """``"; 20 task runs cancelled"``: the task runs that were stopped, for a flow's line."""
    counts = event.children
    if not counts:
        return ""
    parts = [f"{n} task run{'s' * (n != 1)} {word}" for t, word in _COUNTED.items()
             if (n := counts.get(t, 0))]  # fmt: skip
    return "; " + ", ".join(parts) if parts else ""


class BusHandler(logging.Handler):
    """Puts the records of runs on the event bus as ``LogLine`` events (for the run
    store and any other sink), their message and traceback formatted in this thread."""

    flowkit_internal = True  # not the user's logging configuration

    def emit(self, record: logging.LogRecord) -> None:
        root = getattr(record, "root_run_id", None)
        if root is None:
            return
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad format string must not cost the record
            message = f"{record.msg!r} (unformattable: {type(exc).__name__}: {exc})"
        if record.exc_text:
            message += "\n" + record.exc_text
        elif record.exc_info and record.exc_info[1] is not None:
            message += "\n" + format_exception(record.exc_info[1])
        run_id = getattr(record, "task_run_id", None) or getattr(record, "flow_run_id", None)
        label = getattr(record, "run_label", record.name)
        line = LogLine(run_id, root, record.created, record.levelno, record.name, label, message)
        events.emit(line)


events.on_first_run(setup)


# disable_run_logger(): while any block is open, the run loggers write nothing. A logger's
# ``disabled`` flag is process-wide, so nested and concurrent blocks share one count and
# the last to close puts the flags back as they were.
_RUN_LOGGERS = ("flowkit.flow_runs", "flowkit.task_runs")
_SILENT_LOGGER = "flowkit.disabled_run_logger"
_disabled_lock = threading.Lock()
_disabled_depth = 0
_disabled_before: dict[str, bool] = {}


def _silent_logger() -> BoundLogger:
    logging.getLogger(_SILENT_LOGGER).disabled = True
    return get_logger(_SILENT_LOGGER)


@contextmanager
def disable_run_logger() -> Generator[None, None, None]:
    """Silence the flow and task run loggers inside the block, as Prefect's does.

    Records of ``get_run_logger()``, of ``log_prints`` and flowkit's own lines about runs
    (created, finished...) are dropped. Outside a run, ``get_run_logger()`` returns a
    silent logger instead of raising, so a task's function can be called directly in a
    test. Blocks nest, and the loggers are silenced for every thread while one is open.

    Yields:
        Nothing: the block runs with the run loggers silenced.
    """
    global _disabled_depth
    with _disabled_lock:
        if _disabled_depth == 0:
            for name in _RUN_LOGGERS:
                logger = logging.getLogger(name)
                _disabled_before[name] = logger.disabled
                logger.disabled = True
        _disabled_depth += 1
    try:
        yield
    finally:
        with _disabled_lock:
            _disabled_depth -= 1
            if _disabled_depth == 0:
                for name in _RUN_LOGGERS:
                    logging.getLogger(name).disabled = _disabled_before.pop(name)
