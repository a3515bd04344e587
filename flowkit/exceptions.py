"""The one exception hierarchy of flowkit.

Each class subclasses the builtin it resembles, so ``except RuntimeError`` and friends
keep working in code that does not know flowkit. Code ported from Prefect keeps its
``except`` clauses: ``PrefectException``, ``UnfinishedRun`` and ``UpstreamTaskError`` are
other names of flowkit's own classes.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AcquireConcurrencySlotTimeoutError",
    "CancelledRun",
    "ConcurrencySlotAcquisitionError",
    "CrashedRun",
    "FailedRun",
    "FlowTimeoutError",
    "FlowkitError",
    "FutureDeadlockError",
    "InvalidNameError",
    "MatplotlibMissingError",
    "MissingContextError",
    "MissingResult",
    "ParameterBindError",
    "ParameterTypeError",
    "PausedRun",
    "PrefectException",
    "ReservedArgumentError",
    "SerializationError",
    "TaskTimeoutError",
    "UnfinishedRun",
    "UnfinishedRunError",
    "UpstreamFailedError",
    "UpstreamTaskError",
    "WorkerCrashedError",
]


class FlowkitError(Exception):
    """Base class of every error flowkit raises itself."""


PrefectException = FlowkitError
"""Prefect's name for ``FlowkitError``: ``except PrefectException`` catches flowkit's errors."""


class MissingContextError(FlowkitError, RuntimeError):
    """Something that needs a flow or task run was used outside of one."""


class UnfinishedRunError(FlowkitError, RuntimeError):
    """The result of a state that is not final was asked for."""


UnfinishedRun = UnfinishedRunError
"""Prefect's name for ``UnfinishedRunError``."""


class PausedRun(UnfinishedRunError):
    """The result of a ``Paused`` (or ``Suspended``) state was asked for."""


class FailedRun(FlowkitError, RuntimeError):
    """The result of a failed state that holds no exception was asked for."""


class CrashedRun(FlowkitError, RuntimeError):
    """The result of a crashed state that holds no exception was asked for."""


class CancelledRun(FlowkitError, RuntimeError):
    """A run was cancelled: while a thread was waiting for it, or its state holds no
    exception and its result was asked for."""


class ParameterTypeError(FlowkitError, TypeError):
    """A flow was called with an argument that does not fit its parameter's type hint."""


class UpstreamFailedError(FlowkitError, RuntimeError):
    """A task run did not start because a run it depends on did not complete."""


UpstreamTaskError = UpstreamFailedError
"""Prefect's name for ``UpstreamFailedError``."""


class FutureDeadlockError(FlowkitError, RuntimeError):
    """A blocking wait on a future was made on the event loop that must run it."""


class TaskTimeoutError(FlowkitError, TimeoutError):
    """A task run exceeded its ``timeout_seconds`` (or an enclosing run's deadline)."""


class FlowTimeoutError(FlowkitError, TimeoutError):
    """A flow run exceeded its ``timeout_seconds`` (or an enclosing run's deadline)."""


class ReservedArgumentError(FlowkitError, TypeError):
    """A function given to ``@task`` or ``@flow`` has a parameter that every call takes
    for itself (``return_state``, ``wait_for``)."""


class InvalidNameError(FlowkitError, ValueError):
    """A flow's name holds a character Prefect refuses in names (``/ % & < >``)."""


class ParameterBindError(FlowkitError, TypeError):
    """A task or flow was called with arguments that do not fit its function."""


class SerializationError(FlowkitError, TypeError):
    """A run's result cannot be written with its ``result_serializer``."""


class ConcurrencySlotAcquisitionError(FlowkitError, LookupError):
    """Slots were asked of a concurrency limit that is not defined, with ``strict=True``."""


class AcquireConcurrencySlotTimeoutError(FlowkitError, TimeoutError):
    """Slots of a concurrency limit were not free within ``timeout_seconds``."""


class MissingResult(FlowkitError, LookupError):
    """A completed state's result is not where it was persisted (the file is gone)."""


class MatplotlibMissingError(FlowkitError, RuntimeError):
    """``flowkit bench --html``: the report's plots need matplotlib (the ``bench`` extra),
    which is not installed."""


class WorkerCrashedError(FlowkitError, RuntimeError):
    """The worker process running a task run's body died before it replied; the run
    ends ``Crashed`` (after its retries, which run in a new worker).

    Attributes:
        worker: Who died, e.g. ``"process 4242"``, when the task runner knows.
    """

    def __init__(self, *args: object, worker: str | None = None) -> None:
        super().__init__(*args)
        self.worker = worker

    def __reduce__(self) -> tuple[Any, ...]:  # the worker survives pickling (Dask)
        return (_worker_crashed, (self.args, self.worker))


def _worker_crashed(args: tuple[object, ...], worker: str | None) -> WorkerCrashedError:
    return WorkerCrashedError(*args, worker=worker)
