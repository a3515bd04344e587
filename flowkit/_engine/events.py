"""The engine's one kind of event: a run changed state.

Sinks (logging, the run store, anything later) subscribe here; the engine knows none of
them by name. A sink is called on the thread that changed the state, so it must be cheap:
anything slow is queued by the sink and done off the hot path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

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

_tiers: dict[str, tuple[Sink, ...]] = {"first": (), "normal": (), "last": ()}
_sinks: tuple[Sink, ...] = ()
_log = logging.getLogger("flowkit.engine")


def subscribe(
    sink: Sink, *, tier: Literal["first", "normal", "last"] = "normal"
) -> Callable[[], None]:
    """Call ``sink`` with every event from now on; return a function that stops it.

    Sinks are called tier by tier (``"first"``, ``"normal"``, ``"last"``), in the order
    they subscribed within a tier. The run store records a run first, so that it knows the
    run before its log lines arrive, and lets go of it last, after them.
    """
    _tiers[tier] = (*_tiers[tier], sink)
    _rebuild()

    def unsubscribe() -> None:
        _tiers[tier] = tuple(s for s in _tiers[tier] if s is not sink)
        _rebuild()

    return unsubscribe


def _rebuild() -> None:
    global _sinks
    _sinks = _tiers["first"] + _tiers["normal"] + _tiers["last"]


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
