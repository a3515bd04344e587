"""What a body returned decides its run's final state, when it returned states or futures.

Prefect's rule, which ported code depends on:

- A flow's returned futures, anywhere in lists, tuples, sets, dicts and dataclasses, are
  waited for and replaced by their final states (``resolve``). A task's are not: a task
  may hand a future on as its value.
- A state made by hand (``Completed(...)``, ``Failed(...)``: no run's) becomes the run's
  own final state, its data kept.
- Another run's state, or a list, tuple or set of nothing but states, decides the run's
  state by their aggregate: completed if all completed; else cancelled if any was
  cancelled; else failed. The returned states are its data.
- Anything else, states nested deeper or beside other values included, is plain data.

What the *call* hands back is another matter (``handed_back``): a flow call returns the
resolved value (its states, not their values) unless it is a single state; a task call
returns whatever the body returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

import attrs

from ... import states
from ...exceptions import CancelledRun, CrashedRun, FailedRun
from ...states import State, StateType
from .futures import TaskFuture
from .inputs import walk

if TYPE_CHECKING:
    from ..events import RunInfo

__all__ = ["as_final", "decide", "pending_futures", "resolve"]

_NO_EXCEPTION: dict[StateType, type[Exception]] = {
    StateType.FAILED: FailedRun,
    StateType.CRASHED: CrashedRun,
    StateType.CANCELLED: CancelledRun,
}
_FAILURES = (StateType.FAILED, StateType.CRASHED)
_ENDED_BADLY = (*_FAILURES, StateType.CANCELLED)


def _futures(value: object) -> list[TaskFuture[Any]]:
    found: list[TaskFuture[Any]] = []

    def visit(leaf: Any, allowed: bool) -> Any:
        if issubclass(type(leaf), TaskFuture):  # not isinstance: see inputs.walk
            found.append(leaf)
        return leaf

    walk(value, visit, keep_annotations=True)
    return found


def pending_futures(value: object) -> list[TaskFuture[Any]]:
    """The futures a flow returned whose runs are not over: the run waits for them."""
    return [f for f in _futures(value) if not f.done()]


def resolve(value: object) -> Any:
    """``value``, a flow's return value, with each future replaced by its final state.

    Each returned future counts as observed: its failure is the caller's to see.
    """

    def visit(leaf: Any, allowed: bool) -> Any:
        if issubclass(type(leaf), TaskFuture):
            leaf._observed = True
            return leaf._task_run.state
        return leaf

    return walk(value, visit, keep_annotations=True)


def is_state_iterable(value: object) -> bool:
    """Whether ``value`` is a non-empty list, tuple or set of nothing but states."""
    kind = type(value)  # not isinstance: see inputs.walk
    if not issubclass(kind, list | tuple | set | frozenset) or not value:
        return False
    return all(issubclass(type(v), State) for v in cast("Iterable[Any]", value))


class Labelled(Protocol):
    """A run, as far as messages go: its ``RunInfo``, whose ``label`` names it."""

    @property
    def info(self) -> RunInfo: ...


def decide(value: object, run: Labelled) -> State[Any] | None:
    """The final state a (resolved) return value decides for ``run``, or ``None`` for
    plain data (the run's label is read only for a message about a returned state)."""
    if issubclass(type(value), State):
        state = cast("State[Any]", value)
        if state.state_details.flow_run_id is None and state.state_details.task_run_id is None:
            return as_final(state, run.info.label)  # made by hand: the run's own state
        return aggregate([state], value)
    if is_state_iterable(value):
        return aggregate(list(cast("Iterable[State[Any]]", value)), value)
    return None


def aggregate(found: list[State[Any]], value: object) -> State[Any]:
    """Prefect's aggregate of returned run states, ``value`` (what held them) its data."""
    total = len(found)
    if all(s.type is StateType.COMPLETED for s in found):
        return states.Completed("All states completed.", data=value)
    if cancelled := [s for s in found if s.type is StateType.CANCELLED]:
        message = f"{len(cancelled)}/{total} states cancelled."
        return states.Cancelled(message, data=value, exception=_first_exception(found, message))
    if paused := [s for s in found if s.type is StateType.PAUSED]:
        # Prefect pauses the run; flowkit cannot pause one (see docs/porting.md).
        message = f"{len(paused)}/{total} states paused."
    elif failed := [s for s in found if s.type in _FAILURES]:
        message = f"{len(failed)}/{total} states failed."
    else:
        unfinished = [s for s in found if not s.is_final()]
        message = f"{len(unfinished)}/{total} states are not final."
    return states.Failed(message, data=value, exception=_first_exception(found, message))


def _first_exception(found: list[State[Any]], message: str) -> BaseException:
    """What reading the aggregate's result raises: the first failure's own exception,
    as Prefect raises it; else the first ``NotReady`` state's (why it did not start)."""
    for state in found:
        if state.type in _ENDED_BADLY and state.exception is not None:
            return state.exception
    for state in found:
        if not state.is_final() and state.exception is not None:
            return state.exception
    return FailedRun(message)


def as_final(state: State[Any], owner: str) -> State[Any]:
    """A state a body made and returned, as its run's final state, stamped now.

    A final state without an exception gets one that says what was returned, so that
    reading its result raises something telling; ``Cancelling`` is kept (the engine ends
    the run Cancelled after its hooks); any other state that is not final fails the run.
    """
    if state.type is StateType.CANCELLING:
        return attrs.evolve(state, timestamp=datetime.now(UTC))
    if not state.is_final():
        message = (
            f"{owner} returned {state}, which is not a final state; return Completed(...), "
            "Failed(...), Cancelled(...) or Crashed(...), or a value"
        )
        return states.Failed(message, exception=FailedRun(message))
    exception = state.exception
    if exception is None and not state.is_completed():
        exception = _NO_EXCEPTION[state.type](f"{owner} returned {state}")
    return attrs.evolve(state, timestamp=datetime.now(UTC), exception=exception)
