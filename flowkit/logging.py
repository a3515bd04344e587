"""Run logging: ``get_run_logger()``, the console format, and ``log_prints``.

Records go through structlog, which adds the current run's ids and names, and end as
stdlib ``logging`` records on the ``flowkit.flow_runs`` and ``flowkit.task_runs``
loggers, so the user's handlers and pytest's ``caplog`` see them. structlog's global
configuration is never touched: flowkit keeps its own processor chain.

Nothing is configured at import. The first run calls ``setup()``, which sets the level of
the ``flowkit`` logger (``FLOWKIT_LOGGING_LEVEL``, default ``INFO``) unless the user did,
and adds a console handler only when the program has configured no logging of its own.
"""

from __future__ import annotations

import builtins
import logging
import os
import sys
import threading
import time
from collections.abc import Generator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from logging import ERROR, INFO, WARNING
from typing import TYPE_CHECKING, Any

from ._engine import events
from ._engine.runs import FlowRun, Run, current_run
from .exceptions import MissingContextError

if TYPE_CHECKING:
    from structlog.stdlib import BoundLogger
    from structlog.typing import EventDict, WrappedLogger

__all__ = [
    "ConsoleFormatter",
    "disable_run_logger",
    "get_logger",
    "get_run_logger",
    "printing_to_log",
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


def _run_context(run: Run) -> dict[str, Any]:
    """The attributes every record of ``run`` carries; computed once per run.

    A task run in a flow shares the ids of its flow run's records, so it copies those.
    """
    context: dict[str, Any] | None = run.log_context
    if context is not None:
        return context
    root: Run = run
    if isinstance(run, FlowRun):
        while root.parent is not None:
            root = root.parent
        context = {
            "run_label": f"Flow run {run.name!r}", "root_run_id": root.key,
            "flow_run_id": run.key, "flow_run_name": run.name, "flow_name": run.definition.name,
        }  # fmt: skip
    else:
        flow_run = run.flow_run
        if flow_run is not None:
            context = _run_context(flow_run).copy()
        else:
            while root.parent is not None:
                root = root.parent
            context = {"root_run_id": root.key}
        context["run_label"] = f"Task run {run.name!r}"
        context["task_run_id"] = run.key
        context["task_run_name"] = run.name
        context["task_name"] = run.definition.name
    run.log_context = context
    return context


def _stdlib_name(run: Run) -> str:
    return "flowkit.flow_runs" if isinstance(run, FlowRun) else "flowkit.task_runs"


def run_logger(run: Run) -> BoundLogger:
    """Return the logger of ``run``: its records carry the run's ids and names."""
    return get_logger(_stdlib_name(run), **_run_context(run))


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
    return run_logger(run)


class ConsoleFormatter(logging.Formatter):
    """Formats records as ``12:45:28.241 | INFO    | Flow run 'intrepid-coua' - message``."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s.%(msecs)03d | %(levelname)-7s | %(label)s - %(message)s",
            datefmt="%H:%M:%S",
        )

    def format(self, record: logging.LogRecord) -> str:
        record.label = getattr(record, "run_label", record.name)
        return super().format(record)


_setup_lock = threading.Lock()
_setup_done = False


def setup() -> None:
    """Configure flowkit's logging once, at the first run. Safe to call again."""
    global _setup_done
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
        # Handlers flowkit adds itself (the run store's) do not count as configuration.
        own = [h for h in root_logger.handlers if not getattr(h, "flowkit_internal", False)]
        if not logging.getLogger().handlers and not own:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(ConsoleFormatter())
            root_logger.addHandler(handler)
        events.subscribe(_log_state_change)
        _setup_done = True


_engine_logger = logging.getLogger("flowkit.engine")
_flow_run_logger = logging.getLogger("flowkit.flow_runs")
_task_run_logger = logging.getLogger("flowkit.task_runs")


def _news(
    run: Run | None,
    level: int,
    msg: str,
    *args: object,
    exc_info: BaseException | None = None,
    about: Run | None = None,
) -> None:
    """Log one line of a run's story as a stdlib record, the cheap way.

    These records are made on every state change, so they skip structlog and the stdlib's
    caller lookup (a stack walk that would only ever point into the engine), and cost
    nothing when their logger is not enabled for ``level``.
    """
    if run is None:
        logger = _engine_logger
    else:
        logger = _flow_run_logger if isinstance(run, FlowRun) else _task_run_logger
    if logger.isEnabledFor(level):
        if run is None:
            # An engine line about a run (its creation) carries its ids, not its label.
            extra = (
                None if about is None else {**_run_context(about), "run_label": "flowkit.engine"}
            )
        else:
            extra = _run_context(run)
        if logging.getLogRecordFactory() is logging.LogRecord:
            record = _record(logger.name, level, msg, args, _exc_info(exc_info), extra)
        else:  # the program installed its own factory: let it make the record
            record = logger.makeRecord(
                logger.name, level, "flowkit", 0, msg, args, _exc_info(exc_info), None, extra
            )
        logger.handle(record)


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


def _exc_info(exc: BaseException | None) -> Any:
    return (type(exc), exc, exc.__traceback__) if exc is not None else None


def _log_state_change(event: events.Event) -> None:
    """The console story of a run: created, executing, finished."""
    run, state = event.run, event.state
    if state.is_pending():
        if isinstance(run, FlowRun) and run.parent is None:
            _news(
                None, INFO, "Created flow run %r for flow %r", run.name, run.definition.name,
                about=run,
            )  # fmt: skip
        else:
            kind = "flow" if isinstance(run, FlowRun) else "task"
            _news(
                run.parent, INFO, "Created %s run %r for %s %r",
                "subflow" if kind == "flow" else kind, run.name, kind, run.definition.name,
            )  # fmt: skip
            if run.submitted:
                _news(run.parent, INFO, "Submitted task run %r for execution.", run.name)
    elif (
        state.is_running()
        and run.run_count == 1
        and not (run.submitted or isinstance(run, FlowRun))
    ):
        _news(run.parent, INFO, "Executing %r immediately...", run.name)
    elif state.is_scheduled():
        _news(run, WARNING, "%s", state.message)
    elif state.is_completed():
        _news(run, INFO, "Finished in state %s", state)
    elif state.is_final():
        _news(run, ERROR, "Finished in state %s", state, exc_info=state.exception)


# log_prints: while any run that logs its prints is alive, builtins.print is replaced by
# a function that sends the current run's prints to its logger and passes everything
# else (other threads, other runs, other files) to the real print untouched.
_real_print = builtins.print
_print_lock = threading.Lock()
_print_users = 0


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
    # stacklevel 2: the record's file, line and function are those of the print call.
    run_logger(run).info((" " if sep is None else sep).join(map(str, values)), stacklevel=2)


_NOT_PRINTING = nullcontext()


def printing_to_log(enabled: bool) -> AbstractContextManager[None]:
    """While the block runs, send ``print`` calls of runs with ``log_prints`` to their logs."""
    return _printing_to_log() if enabled else _NOT_PRINTING


@contextmanager
def _printing_to_log() -> Generator[None, None, None]:
    global _print_users
    with _print_lock:
        _print_users += 1
        builtins.print = _print
    try:
        yield
    finally:
        with _print_lock:
            _print_users -= 1
            if _print_users == 0:
                builtins.print = _real_print


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
