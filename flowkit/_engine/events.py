"""The engine's one kind of event: a run changed state.

Sinks (logging, the run store, anything later) subscribe here; the engine knows none of
them by name. A sink is called on the thread that changed the state, so it must be cheap:
anything slow is queued by the sink and done off the hot path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ..states import State
    from .runs import Run

__all__ = ["Event", "Sink", "activate", "emit", "on_first_run", "subscribe"]


@attrs.frozen
class Event:
    """A run entered a new state.

    Attributes:
        run: The run. Its identity fields (id, name, parent, parameters) do not change;
            its *current* state may have moved on by the time a sink reads it, so sinks
            use ``state``.
        state: The state the run entered.
    """

    run: Run
    state: State[Any]


Sink = Callable[[Event], None]

_sinks: tuple[Sink, ...] = ()
_log = logging.getLogger("flowkit.engine")


def subscribe(sink: Sink, *, first: bool = False) -> Callable[[], None]:
    """Call ``sink`` with every event from now on; return a function that stops it.

    Sinks are called in the order they subscribed; ``first`` puts ``sink`` before the
    others (the run store does, so that it knows a run before its log lines arrive).
    """
    global _sinks
    _sinks = (sink, *_sinks) if first else (*_sinks, sink)

    def unsubscribe() -> None:
        global _sinks
        _sinks = tuple(s for s in _sinks if s is not sink)

    return unsubscribe


_setups: list[Callable[[], None]] = []
_active = False


def on_first_run(setup: Callable[[], None]) -> None:
    """Have ``setup`` called when the first run starts (e.g. to subscribe a sink)."""
    _setups.append(setup)


def activate() -> None:
    """Called by the engine as each run is created: runs the setups, the first time."""
    global _active
    if _active:
        return
    for setup in _setups:
        setup()
    _active = True


def emit(run: Run, state: State[Any]) -> None:
    """Hand one event to every sink. A failing sink is logged, never fatal to the run."""
    if not _sinks:
        return
    event = Event(run, state)
    for sink in _sinks:
        try:
            sink(event)
        except Exception:
            _log.exception("event sink %r failed on %s of %r", sink, state, run.name)
