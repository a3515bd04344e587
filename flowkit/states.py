"""The states of a run, and the constructors for the named ones.

A state is an immutable record: a ``type`` that the engine reasons about, a ``name``
that people read (``TimedOut`` is a ``FAILED`` state, ``Cached`` a ``COMPLETED`` one), an
optional message, a timestamp and, once final, the run's value or exception.

The constructors are Prefect's, with the same names and types. The engine itself makes
``Pending``, ``Running``, ``Retrying``, ``AwaitingRetry``, ``Completed``, ``Cached``,
``Failed``, ``TimedOut``, ``NotReady``, ``Crashed`` and ``Cancelled`` states; the others
(``Scheduled``, ``Late``, ``Paused``...) are there for code that builds states itself,
e.g. a hook or a test.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar, overload
from uuid import UUID

import attrs

from .exceptions import CancelledRun, CrashedRun, FailedRun, PausedRun, UnfinishedRunError

__all__ = [
    "AwaitingConcurrencySlot",
    "AwaitingRetry",
    "Cached",
    "Cancelled",
    "Cancelling",
    "Completed",
    "Crashed",
    "Failed",
    "Late",
    "NotReady",
    "Paused",
    "Pending",
    "ResultReference",
    "Retrying",
    "Running",
    "Scheduled",
    "State",
    "StateConstructor",
    "StateDetails",
    "StateType",
    "Suspended",
    "TimedOut",
]

R = TypeVar("R")


class StateType(enum.Enum):
    """The kinds of state, Prefect's nine: each value is its name.

    ``COMPLETED``, ``FAILED``, ``CANCELLED`` and ``CRASHED`` are final. ``PAUSED`` and
    ``CANCELLING`` are not: a paused run waits to be resumed, a cancelling one to stop.
    """

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"

    @property
    def is_final(self) -> bool:
        """Whether a run in this kind of state is over."""
        return self in _FINAL


_FINAL = frozenset({StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED})


def _now() -> datetime:
    return datetime.now(UTC)


@attrs.frozen
class StateDetails:
    """Which run a state belongs to: set by the engine on the state that ends a run.

    A state made by hand (``Completed(...)`` in a body or a test) belongs to no run, and
    that is how a returned state is told apart from another run's state: the first
    becomes the run's own final state, the second is aggregated (see ``flow``).

    Attributes:
        flow_run_id: The flow run: the run itself, or the flow run a task ran in.
        task_run_id: The task run, for a task run's state.
    """

    flow_run_id: UUID | None = None
    task_run_id: UUID | None = None


_BY_HAND = StateDetails()


@attrs.frozen(repr=False)
class State(Generic[R]):
    """One state of a flow or task run.

    Attributes:
        type: The kind of state.
        name: The state's readable name, e.g. ``"Completed"`` or ``"TimedOut"``;
            by default its type's, e.g. ``"Failed"`` for ``State(StateType.FAILED)``.
        message: Why the run is in this state, if anything needs saying.
        timestamp: When the run entered this state (UTC).
        data: The run's return value, for a completed state.
        exception: The exception that ended the run, for a failed, crashed or
            cancelled state (and for ``NotReady``: why the run could not start).
        state_details: The run the state ended; empty for a state made by hand.
    """

    type: StateType
    # Prefect's default: ``State(type=StateType.FAILED)`` is named "Failed".
    name: str = attrs.field(
        default=attrs.Factory(lambda self: self.type.value.title(), takes_self=True)
    )
    message: str | None = None
    timestamp: datetime = attrs.field(factory=_now, eq=False)
    data: R | None = None
    exception: BaseException | None = None
    state_details: StateDetails = attrs.field(default=_BY_HAND, eq=False)

    @overload
    def result(self, raise_on_failure: Literal[True] = ...) -> R: ...
    @overload
    def result(self, raise_on_failure: Literal[False]) -> R | BaseException: ...
    @overload
    def result(self, raise_on_failure: bool) -> R | BaseException: ...

    def result(self, raise_on_failure: bool = True) -> R | BaseException:
        """Return the run's value, or raise the exception that ended it.

        Args:
            raise_on_failure: With ``False``, a failed, crashed or cancelled state gives
                its data if it has any (e.g. the states a flow returned, which decided
                its own), else its exception, instead of raising.

        Raises:
            BaseException: The run's own exception, when it did not complete.
            FailedRun: A failed state holds no exception (``CrashedRun`` and
                ``CancelledRun`` likewise for crashed and cancelled states).
            PausedRun: The state is paused, so there is no result yet.
            UpstreamFailedError: The state is ``NotReady``: the run never started,
                because a run it waited for did not complete.
            ValueError: The result was persisted and not kept in memory
                (``cache_result_in_memory=False``), and it was altered since.
            UnfinishedRunError: The state is not final, so there is no result yet.
        """
        if self.type is StateType.COMPLETED:
            data = self.data
            if isinstance(data, ResultReference):  # cache_result_in_memory=False: read it
                return data.load()  # type: ignore[no-any-return]
            return data  # type: ignore[return-value]  # a completed state holds an R
        exc = self.exception
        if not self.type.is_final and (exc is None or self.type is not StateType.PENDING):
            unfinished = PausedRun if self.type is StateType.PAUSED else UnfinishedRunError
            raise unfinished(
                f"state {self} is not final and has no result yet; wait for the run to finish"
            )
        if not raise_on_failure and self.data is not None:
            return self.data
        if exc is None:
            exc = _NO_EXCEPTION[self.type](
                f"the run ended in state {self} and holds no exception to raise; "
                "give the state one with exception=..."
            )
        if raise_on_failure:
            raise exc
        return exc

    def is_scheduled(self) -> bool:
        """Whether the run is waiting for a time to start (e.g. ``AwaitingRetry``)."""
        return self.type is StateType.SCHEDULED

    def is_pending(self) -> bool:
        """Whether the run was created and has not started."""
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        """Whether the run is executing (including ``Retrying``)."""
        return self.type is StateType.RUNNING

    def is_completed(self) -> bool:
        """Whether the run finished with a value (including ``Cached``)."""
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        """Whether the run raised an exception (including ``TimedOut``)."""
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        """Whether the run was interrupted by something outside its own code."""
        return self.type is StateType.CRASHED

    def is_cancelled(self) -> bool:
        """Whether the run was cancelled."""
        return self.type is StateType.CANCELLED

    def is_paused(self) -> bool:
        """Whether the run is paused (including ``Suspended``)."""
        return self.type is StateType.PAUSED

    def is_cancelling(self) -> bool:
        """Whether the run was asked to stop and has not stopped yet."""
        return self.type is StateType.CANCELLING

    def is_final(self) -> bool:
        """Whether the run is over, whatever the outcome."""
        return self.type.is_final

    def __str__(self) -> str:
        return f"{self.name}({self.message!r})" if self.message else f"{self.name}()"

    def __repr__(self) -> str:
        return f"<State {self} type={self.type.value}>"


class ResultReference:
    """Where a persisted result is, held by a completed state in place of the value
    (``cache_result_in_memory=False``): ``State.result()`` calls ``load``."""

    __slots__ = ()

    def load(self) -> Any:
        """Read the value back.

        Raises:
            NotImplementedError: Always: subclasses say where to read from.
        """
        raise NotImplementedError


_NO_EXCEPTION: dict[StateType, type[Exception]] = {
    StateType.FAILED: FailedRun,
    StateType.CRASHED: CrashedRun,
    StateType.CANCELLED: CancelledRun,
}


@attrs.frozen
class StateConstructor:
    """Builds states of one named kind: ``Completed(data=3)``, ``Failed("why", exception=e)``.

    Attributes:
        type: The kind of every state it builds.
        name: The name it gives them, unless a call gives another.
    """

    type: StateType
    name: str

    def __call__(
        self,
        message: str | None = None,
        *,
        data: Any = None,
        exception: BaseException | None = None,
        name: str | None = None,
    ) -> State[Any]:
        """Return a new state of this kind, stamped now.

        Args:
            message: Why the run is in this state.
            data: The run's value, for a completed state.
            exception: The exception that ended the run.
            name: Another name for the state, e.g. ``Completed(name="Skipped")``; the
                type stays this constructor's.

        Raises:
            TypeError: ``name`` is not a string.
        """
        if name is None:
            name = self.name
        elif not isinstance(name, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"{self.name}(name=...) takes a string, got {name!r}")
        return State(self.type, name, message, data=data, exception=exception)


Scheduled = StateConstructor(StateType.SCHEDULED, "Scheduled")
Late = StateConstructor(StateType.SCHEDULED, "Late")
AwaitingRetry = StateConstructor(StateType.SCHEDULED, "AwaitingRetry")
AwaitingConcurrencySlot = StateConstructor(StateType.SCHEDULED, "AwaitingConcurrencySlot")
Pending = StateConstructor(StateType.PENDING, "Pending")
Paused = StateConstructor(StateType.PAUSED, "Paused")
Suspended = StateConstructor(StateType.PAUSED, "Suspended")
Running = StateConstructor(StateType.RUNNING, "Running")
Retrying = StateConstructor(StateType.RUNNING, "Retrying")
Completed = StateConstructor(StateType.COMPLETED, "Completed")
Cached = StateConstructor(StateType.COMPLETED, "Cached")
Failed = StateConstructor(StateType.FAILED, "Failed")
TimedOut = StateConstructor(StateType.FAILED, "TimedOut")
# Pending, as in Prefect: the run never started (a run it waited for did not complete).
NotReady = StateConstructor(StateType.PENDING, "NotReady")
Crashed = StateConstructor(StateType.CRASHED, "Crashed")
Cancelling = StateConstructor(StateType.CANCELLING, "Cancelling")
Cancelled = StateConstructor(StateType.CANCELLED, "Cancelled")
