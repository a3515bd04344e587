"""Task runners: where a flow's submitted task bodies run, when not in this process.

A flow's ``task_runner`` opens one ``Executor`` per flow run, as its body starts, and
closes it once the flow's last child is over. A submitted run then goes through
``engine.execute`` on the flow's loop as any other (states, retries, deadlines, caching
and hooks stay here); only its body travels: ``Remote.call`` packs the function and its
arguments with cloudpickle, the executor runs them in a worker (``serve``), and the
reply brings back the value or the exception, with the log records the body made.
"""

from __future__ import annotations

import functools
import inspect
import logging
import pickle
import weakref
from collections.abc import Callable
from typing import Any, cast

import anyio
import attrs

from ...exceptions import WorkerCrashedError
from ..definition.signature import bind, parameters_of, plain_parameters
from ..definition.task_runner import Executor
from ..events import RunInfo, format_exception
from ..lifecycle.prints import printing_to_log
from ..lifecycle.runs import Run, TaskRun, current_run
from ..lifecycle.shown import Away, away
from ..results.storage import cloudpickle
from .local import OnLoop, consumed, is_async_generator

__all__ = ["Remote", "attempt", "pack", "serve"]

_RUN_LOGGERS = ("flowkit.flow_runs", "flowkit.task_runs")


@attrs.frozen
class _Job:
    """A body to run somewhere else, and what its logs need."""

    function: bytes  # the task's function, pickled once per flow run (see ``_function``)
    arguments: bytes  # (args, kwargs), by cloudpickle
    is_async: bool
    info: RunInfo
    log_prints: bool
    level: int
    skip: int  # leading arguments that are not parameters (a bound method's instance)


@attrs.frozen
class _Reply:
    value: Any
    error: BaseException | None
    logs: list[dict[str, Any]]
    worker: str


def pack(run: Run, kind: str, function: bytes | None = None) -> bytes:
    """The body of ``run`` (function and arguments), packed for a worker.

    ``function`` is the run's function as ``pack_function`` packed it, if known.

    Raises:
        TypeError: The function or an argument cannot be pickled.
    """
    if function is None:
        function = pack_function(run, kind)
    definition = run.definition
    job = _Job(
        function, _dumps((run.call.args, run.call.kwargs), run, kind), definition.is_async,
        run.info,
        run.log_prints,
        logging.getLogger(_RUN_LOGGERS[run.info.kind == "task"]).getEffectiveLevel(),
        run.call.skip,
    )  # fmt: skip
    # The rest is flowkit's own (importable in any worker): pickle does it, at half
    # the cost of cloudpickle.
    return pickle.dumps(job, pickle.HIGHEST_PROTOCOL)


def pack_function(run: Run, kind: str) -> bytes:
    """The function of ``run``, packed for ``pack``.

    Raises:
        TypeError: The function cannot be pickled.
    """
    return _dumps(run.definition.fn, run, kind)


def _dumps(value: object, run: Run, kind: str) -> bytes:
    try:
        return cloudpickle().dumps(value)
    except Exception as exc:
        raise TypeError(
            f"task {run.definition.name!r}: cannot send its function and arguments to a "
            f"{kind} worker: {type(exc).__name__}: {exc}; pass values that pickle (no open "
            "files, locks or clients: create those inside the task), or run the flow with "
            "ThreadPoolTaskRunner"
        ) from None


@functools.lru_cache(maxsize=64)
def _function(packed: bytes) -> Callable[..., Any]:
    """A worker's copy of a packed function: unpickled once, not once per run."""
    return cast("Callable[..., Any]", cloudpickle().loads(packed))


class _Records(logging.Handler):
    """Keeps the records of the run loggers in the worker, to send back with the reply."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = dict(record.__dict__)
        fields["msg"], fields["args"] = record.getMessage(), None
        if record.exc_info and record.exc_info[1] is not None:
            fields["exc_text"] = format_exception(record.exc_info[1])
        fields["exc_info"] = None
        self.records.append({k: v for k, v in fields.items() if _plain(v)})


def _plain(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | tuple)


def attempt(packed: bytes, run: TaskRun) -> bytes:
    """What a worker gets for one attempt of ``run``: its packed body, and what
    ``flowkit.runtime`` shows of the run as this attempt starts (see ``shown.away``)."""
    task_run, flow_run = away(run)
    return pickle.dumps((packed, task_run, flow_run), pickle.HIGHEST_PROTOCOL)


def serve(payload: bytes, worker: str) -> bytes:
    """In a worker: run an attempt's packed body and return the packed reply (never
    raises).

    ``worker`` names this worker in the reply (``"process <pid>"``, ``"dask <address>"``):
    the run store records it on the state that ends the attempt.
    """
    packed, task_run, flow_run = pickle.loads(payload)
    job = cast("_Job", pickle.loads(packed))
    records = _Records()
    for name in _RUN_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level != job.level:  # setLevel clears every logger's cache
            logger.setLevel(job.level)
        logger.addHandler(records)
    value: Any = None
    error: BaseException | None = None
    token = None
    try:
        fn = _function(job.function)
        args, kwargs = cast("tuple[tuple[Any, ...], dict[str, Any]]", pickle.loads(job.arguments))
        shown = {**task_run, "parameters": _parameters(fn, args, kwargs, job.skip)}
        here = Away(job.info, job.log_prints, shown, flow_run)
        token = current_run.set(cast("Run", here))  # get_run_logger, prints, runtime
        with printing_to_log(job.log_prints):
            value = _call(job, fn, args, kwargs)
    except Exception as exc:
        error = exc
        exc.add_note(f"(raised in worker {worker})")
    finally:
        if token is not None:
            current_run.reset(token)
        for name in _RUN_LOGGERS:
            logging.getLogger(name).removeHandler(records)
    try:
        return cloudpickle().dumps(_Reply(value, error, records.records, worker))
    except Exception as exc:
        what = "result" if error is None else f"exception ({type(error).__name__}: {error})"
        problem = TypeError(
            f"task run {job.info.name!r}: its {what} cannot be sent back from the worker: "
            f"{type(exc).__name__}: {exc}; return values that pickle"
        )
        return cloudpickle().dumps(_Reply(None, problem, records.records, worker))


def _parameters(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], skip: int
) -> dict[str, Any]:
    """The body's arguments by parameter name, defaults filled in, as in the process that
    sent them (a bound method's instance left out)."""
    try:
        signature = inspect.signature(fn)
        bound = bind(signature, plain_parameters(signature), args, kwargs)
    except (TypeError, ValueError):  # the call itself will say what is wrong
        return {}
    return parameters_of(bound, skip)


def _call(job: _Job, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    owner = f"task run {job.info.name!r}"
    if not job.is_async:
        return consumed(fn(*args, **kwargs), owner)

    async def main() -> Any:
        value = fn(*args, **kwargs)
        value = await value if inspect.isawaitable(value) else value
        if is_async_generator(value):
            return [item async for item in value]
        return consumed(value, owner)

    return anyio.run(main)


def _replay(records: list[dict[str, Any]]) -> None:
    """Hand the worker's log records to this process's handlers (console, run store)."""
    for fields in records:
        record = logging.makeLogRecord(fields)
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


class Remote(OnLoop):
    """The venue of the submitted runs of a flow with a process or Dask task runner."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._packed: weakref.WeakKeyDictionary[Run, bytes] = weakref.WeakKeyDictionary()
        self._functions: dict[object, bytes] = {}  # by definition: the flow run's few

    def _pack(self, run: Run) -> bytes:
        function = self._functions.get(run.definition)
        if function is None:
            function = self._functions[run.definition] = pack_function(run, self.executor.kind)
        return pack(run, self.executor.kind, function)

    def prepare(self, run: Run) -> None:
        """At submit: pack a run whose arguments are known, so that a bad one is refused
        there and then.

        Raises:
            TypeError: The function or an argument cannot be pickled.
        """
        if not run.takes_inputs:
            self._packed[run] = self._pack(run)

    async def call(self, run: Run) -> Any:
        nursery = run.nursery_around
        assert nursery is not None  # a flow's task runner is used inside that flow only
        nursery.threaded(run)  # it waits for a worker, not for one of this process's threads
        packed = self._packed.get(run)
        if packed is None:
            packed = self._pack(run)
        payload = attempt(packed, cast("TaskRun", run))
        try:
            packed = await self.executor.run(run, payload)
        except WorkerCrashedError as exc:
            run.attempt.ran_in(exc.worker)  # it sent no reply to say so
            raise
        reply = cast("_Reply", cloudpickle().loads(packed))
        run.attempt.ran_in(reply.worker)
        _replay(reply.logs)
        if reply.error is not None:
            raise reply.error
        return reply.value

    async def aclose(self) -> None:
        """Release the workers, once the flow's children are all over."""
        await self.executor.aclose()
