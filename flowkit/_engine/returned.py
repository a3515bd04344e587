"""What a body returned decides its run's final state, when it returned states or futures.

A body that returns a ``State`` ends its run in that state. One that returns futures or
states (alone, or inside lists, tuples, sets and dicts) ends its run in their aggregate,
as Prefect does: completed if all completed, else cancelled if any was cancelled, else
failed; its value is the returned structure with each future and state replaced by its
result. A flow's return value is searched all through. A task's counts only when it is a
state, or a list, tuple or set of nothing but states (as in Prefect): a task may hand a
future on as its value, and a task returning a large list pays nothing for the search.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

import attrs

from .. import states
from ..exceptions import CancelledRun, CrashedRun, FailedRun
from ..states import State, StateType
from .futures import TaskFuture

__all__ = ["aggregate", "as_final", "pending_futures"]

_SEQUENCES = (list, tuple, set, frozenset)
_CONTAINERS = (*_SEQUENCES, dict)
_NO_EXCEPTION: dict[StateType, type[Exception]] = {
    StateType.FAILED: FailedRun,
    StateType.CRASHED: CrashedRun,
    StateType.CANCELLED: CancelledRun,
}


def _is_leaf(value: object) -> bool:
    return issubclass(type(value), TaskFuture | State)  # not narrowing: see _results


def _leaves(value: object, deep: bool) -> list[TaskFuture[Any] | State[Any]]:
    """The futures and states in ``value`` (see the module docstring for where)."""
    kind = type(value)
    if not deep:  # a task: states only (a task may hand a future on as its value)
        if issubclass(kind, State):
            return [cast("State[Any]", value)]
        if issubclass(kind, _SEQUENCES):
            items = list(cast("Iterable[Any]", value))
            if items and all(issubclass(type(v), State) for v in items):
                return items
        return []
    found: list[TaskFuture[Any] | State[Any]] = []
    seen: set[int] = set()  # a structure may hold itself
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if _is_leaf(item):
            found.append(cast("TaskFuture[Any] | State[Any]", item))
        elif issubclass(kind, _CONTAINERS) and id(item) not in seen:
            seen.add(id(item))
            if issubclass(kind, dict):
                item = cast("dict[Any, Any]", item).values()
            stack.extend(reversed(list(cast("Iterable[Any]", item))))
    return found


def pending_futures(value: object, deep: bool) -> list[TaskFuture[Any]]:
    """The returned futures whose runs are not over: the run waits for them first."""
    return [f for f in _leaves(value, deep) if isinstance(f, TaskFuture) and not f.done()]


def as_final(state: State[Any], owner: str) -> State[Any]:
    """A state a body returned, as its run's final state, stamped now.

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


def aggregate(value: object, deep: bool, owner: str) -> State[Any] | None:
    """The final state of a body that returned ``value``, if futures or states decide it.

    Returns:
        ``None`` when ``value`` holds no future or state: it is a plain result.
    """
    if issubclass(type(value), State):
        return as_final(cast("State[Any]", value), owner)
    leaves = _leaves(value, deep)
    if not leaves:
        return None
    found: list[State[Any]] = []
    for leaf in leaves:
        if isinstance(leaf, TaskFuture):
            leaf.observed = True  # its failure is accounted for here
            found.append(leaf.task_run.state)
        else:
            found.append(leaf)
    total = len(found)
    failed = [s for s in found if s.type in (StateType.FAILED, StateType.CRASHED)]
    cancelled = [s for s in found if s.type is StateType.CANCELLED]
    if cancelled:
        first = cancelled[0]
        return states.Cancelled(
            f"{len(cancelled)}/{total} states cancelled.",
            exception=first.exception or CancelledRun(f"{owner} returned {first}"),
        )
    if failed:
        first = failed[0]
        return states.Failed(
            f"{len(failed)}/{total} states failed.",
            exception=first.exception or FailedRun(f"{owner} returned {first}"),
        )
    if unfinished := [s for s in found if not s.is_final()]:
        message = (
            f"{owner} returned {len(unfinished)}/{total} states that are not final, e.g. "
            f"{unfinished[0]}; return final states, or futures (the run waits for them)"
        )
        return states.Failed(message, exception=FailedRun(message))
    return states.Completed("All states completed.", data=_results(value, deep))


def _results(value: object, deep: bool) -> Any:
    """``value`` with each future and state replaced by its result."""
    # Types are told by ``issubclass(type(value), ...)``: ``isinstance`` would narrow
    # ``value`` to generics of unknown parameters, which strict pyright refuses.
    kind = type(value)
    if issubclass(kind, TaskFuture):
        return cast("TaskFuture[Any]", value).task_run.state.result()
    if issubclass(kind, State):
        return cast("State[Any]", value).result()
    if issubclass(kind, list):  # a TaskFutureList becomes a plain list
        return [_results(v, deep) for v in cast("list[Any]", value)]
    if issubclass(kind, tuple | set | frozenset):
        items = [_results(v, deep) for v in cast("Iterable[Any]", value)]
        build = cast("Any", kind)
        return build(*items) if hasattr(build, "_fields") else build(items)  # a namedtuple
    if deep and issubclass(kind, dict):
        return {k: _results(v, deep) for k, v in cast("dict[Any, Any]", value).items()}
    return value
