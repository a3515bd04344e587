"""The states of a run, and the constructors for the named ones.

A state is an immutable record: a ``type`` that the engine reasons about, a ``name``
that people read (``TimedOut`` is a ``FAILED`` state, ``Cached`` a ``COMPLETED`` one), an
optional message, a timestamp and, once final, the run's value or exception.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar, overload

import attrs

from .exceptions import UnfinishedRunError

__all__ = [
    "AwaitingRetry",
    "Cached",
    "Cancelled",
    "Completed",
    "Crashed",
    "Failed",
    "NotReady",
    "Pending",
    "Retrying",
    "Running",
    "State",
    "StateConstructor",
    "StateType",
    "TimedOut",
]

R = TypeVar("R")


class StateType(enum.Enum):
    """The kinds of state the engine distinguishes."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"

    @property
    def is_final(self) -> bool:
        """Whether a run in this kind of state is over."""
        return self in _FINAL


_FINAL = frozenset({StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED})


def _now() -> datetime:
    return datetime.now(UTC)


@attrs.frozen(repr=False)
class State(Generic[R]):
    """One state of a flow or task run.

    Attributes:
        type: The kind of state.
        name: The state's readable name, e.g. ``"Completed"`` or ``"TimedOut"``.
        message: Why the run is in this state, if anything needs saying.
        timestamp: When the run entered this state (UTC).
        data: The run's return value, for a completed state.
        exception: The exception that ended the run, for a failed, crashed or
            cancelled state.
    """

    type: StateType
    name: str
    message: str | None = None
    timestamp: datetime = attrs.field(factory=_now, eq=False)
    data: R | None = None
    exception: BaseException | None = None

    @overload
    def result(self, raise_on_failure: Literal[True] = ...) -> R: ...
    @overload
    def result(self, raise_on_failure: Literal[False]) -> R | BaseException: ...
    @overload
    def result(self, raise_on_failure: bool) -> R | BaseException: ...

    def result(self, raise_on_failure: bool = True) -> R | BaseException:
        """Return the run's value, or raise the exception that ended it.

        Args:
            raise_on_failure: With ``False``, the exception of a failed, crashed or
                cancelled run is returned instead of raised.

        Raises:
            BaseException: The run's own exception, when it did not complete.
            UnfinishedRunError: The state is not final, so there is no result yet.
        """
        if self.type is StateType.COMPLETED:
            return self.data  # type: ignore[return-value]  # a completed state holds an R
        if not self.type.is_final:
            raise UnfinishedRunError(
                f"state {self} is not final and has no result yet; wait for the run to finish"
            )
        exc = self.exception
        if exc is None:
            exc = UnfinishedRunError(f"run ended in state {self} without an exception")
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

    def is_final(self) -> bool:
        """Whether the run is over, whatever the outcome."""
        return self.type.is_final

    def __str__(self) -> str:
        return f"{self.name}({self.message!r})" if self.message else f"{self.name}()"

    def __repr__(self) -> str:
        return f"<State {self} type={self.type.value}>"


@attrs.frozen
class StateConstructor:
    """Builds states of one named kind: ``Completed(data=3)``, ``Failed("why", exception=e)``."""

    type: StateType
    name: str

    def __call__(
        self,
        message: str | None = None,
        *,
        data: Any = None,
        exception: BaseException | None = None,
    ) -> State[Any]:
        """Return a new state of this kind, stamped now."""
        return State(self.type, self.name, message, data=data, exception=exception)


Pending = StateConstructor(StateType.PENDING, "Pending")
Running = StateConstructor(StateType.RUNNING, "Running")
Retrying = StateConstructor(StateType.RUNNING, "Retrying")
AwaitingRetry = StateConstructor(StateType.SCHEDULED, "AwaitingRetry")
Completed = StateConstructor(StateType.COMPLETED, "Completed")
Cached = StateConstructor(StateType.COMPLETED, "Cached")
Failed = StateConstructor(StateType.FAILED, "Failed")
TimedOut = StateConstructor(StateType.FAILED, "TimedOut")
NotReady = StateConstructor(StateType.FAILED, "NotReady")
Crashed = StateConstructor(StateType.CRASHED, "Crashed")
Cancelled = StateConstructor(StateType.CANCELLED, "Cancelled")
