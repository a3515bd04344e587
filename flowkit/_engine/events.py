"""The engine's events, and the one bus that carries them to sinks.

An event is a frozen record of plain data, made once: ``StateChanged`` when a run enters
a state, ``LogLine`` when a log record of a run is made, ``Artifact`` when an artifact is
recorded, ``ArtifactUpdate`` when a progress artifact moves on, ``TransactionEnded`` when a
transaction commits or rolls back. Sinks (the console story, the run store, and later the
web page's live feed or OpenTelemetry) subscribe to the bus; the engine knows none of them
by name, and no sink ever sees a live run.

A sink is called on the thread that made the event, so it must be cheap: anything slow
is queued by the sink and done off the hot path. A sink that raises is reported once
(by its name, with the cause) and goes on receiving events; it never costs another sink
an event, nor a run its state.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from ..states import State, StateType

__all__ = [
    "Artifact",
    "ArtifactUpdate",
    "ErrorInfo",
    "Event",
    "LogLine",
    "RunInfo",
    "Sink",
    "StateChanged",
    "TransactionEnded",
    "activate",
    "emit",
    "error_info",
    "format_exception",
    "on_first_run",
    "subscribe",
]


@attrs.frozen(slots=False)
class RunInfo:
    """Who a run is: what every event of the run carries. Made once per run.

    Attributes:
        id: The run's id.
        kind: ``"flow"`` or ``"task"``.
        name: The run's name.
        definition: The name of the flow or task it runs.
        parent: The run that started it, if any.
        in_flow: The nearest flow run around it (not itself), if any.
        root_id: The id of the outermost run of its tree.
        tags: Its tags.
        task_key: For a task run: its task's key.
        submitted: Whether it was started with ``submit`` or ``map``.
        progress: For a flow run: its ``progress`` option (``None``: not given).
    """

    id: str
    kind: Literal["flow", "task"]
    name: str
    definition: str
    parent: RunInfo | None
    in_flow: RunInfo | None
    root_id: str
    tags: frozenset[str] = frozenset()
    task_key: str | None = None
    submitted: bool = False
    progress: bool | None = None

    @property
    def flow_run_id(self) -> str | None:
        """The nearest flow run's id: its own, for a flow run."""
        if self.kind == "flow":
            return self.id
        return self.in_flow.id if self.in_flow is not None else None

    @cached_property
    def label(self) -> str:
        """How people read the run: ``Flow run 'x'`` or ``Task run 'y'``."""
        return f"{self.kind.capitalize()} run {self.name!r}"

    @cached_property
    def fields(self) -> Mapping[str, str]:
        """The run's ids and names as flat fields (log record attributes, span tags):
        ``root_run_id``, ``flow_run_id``, ``flow_run_name``, ``flow_name`` and, for a task
        run, ``task_run_id``, ``task_run_name``, ``task_name``."""
        flow = self if self.kind == "flow" else self.in_flow
        fields = {"root_run_id": self.root_id}
        if flow is not None:
            fields |= {
                "flow_run_id": flow.id, "flow_run_name": flow.name, "flow_name": flow.definition,
            }  # fmt: skip
        if self.kind == "task":
            fields |= {"task_run_id": self.id, "task_run_name": self.name,
                       "task_name": self.definition}  # fmt: skip
        return fields


@attrs.frozen
class ErrorInfo:
    """The exception that ended a run, as text made in the thread that raised it.

    Attributes:
        type: The exception's class name, e.g. ``"ValueError"``.
        message: ``str()`` of the exception.
        traceback: The formatted traceback, or ``None`` where it says nothing useful
            (a cancellation, an interrupt).
    """

    type: str
    message: str
    traceback: str | None

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@attrs.frozen
class StateChanged:
    """A run entered a new state.

    Attributes:
        run: Who the run is.
        state: The state it entered.
        run_count: How many attempts it has started.
        start_time: When it first entered Running, if it has.
        parameters: Its arguments by parameter name, as they were when the event was
            made (``convert.snapshot``), when it is created and, if its upstream values
            were put in its arguments, when it ends; else ``None``.
        task_inputs: Upstream run ids by parameter, alongside ``parameters``.
        cache_note: Why it did or did not use a cached result, once decided.
        error: For a final state with an exception: that exception, as text.
        children: For a flow run's final state: how many of its task runs ended in each
            kind of final state.
        result_location: For a final state: where its persisted result lives, if it was
            persisted.
        thread_wait: For the state that ends an attempt of a sync body on the event loop:
            the seconds that attempt waited, after it entered Running, for a slot of its
            flow's worker-thread limiter (``thread_limit``); else ``None``.
        worker: For the state that ends an attempt: who ran its body, ``"thread"``,
            ``"process <pid>"`` or ``"dask <worker address>"``; ``None`` when the body
            ran on the event loop or was never called.
        ended: Whether the run is over: its state is final, or it is ``NotReady`` (a
            Pending state, as in Prefect: the run ended without starting). Sinks read
            this, never ``state.is_final()``, to know a run has ended.
    """

    run: RunInfo
    state: State[Any]
    run_count: int = 0
    start_time: datetime | None = None
    parameters: Mapping[str, Any] | None = None
    task_inputs: Mapping[str, list[str]] | None = None
    cache_note: str | None = None
    error: ErrorInfo | None = None
    children: Mapping[StateType, int] | None = None
    result_location: str | None = None
    thread_wait: float | None = None
    worker: str | None = None
    ended: bool = False


@attrs.frozen
class LogLine:
    """A log record of a run, its message and traceback already formatted.

    Attributes:
        run_id: The run it belongs to.
        root_id: The outermost run of that run's tree.
        created: When it was made (Unix time).
        level: Its level, e.g. ``logging.INFO``.
        logger: The name of the logger that made it.
        label: Who speaks: the run's label, or the logger's name for engine lines.
        message: The formatted message, with the traceback of ``exc_info`` if any.
    """

    run_id: str | None
    root_id: str
    created: float
    level: int
    logger: str
    label: str
    message: str


@attrs.frozen
class Artifact:
    """An artifact recorded: a markdown text, a table, a link or a progress to look at.

    Attributes:
        id: The artifact's id.
        run_id: The run that made it; ``None`` for one made outside any run.
        root_id: The outermost run of that run's tree; ``None`` outside any run.
        created: When it was made (Unix time).
        type: ``"markdown"``, ``"table"``, ``"link"`` or ``"progress"``.
        key: The user's key, naming the artifact across runs, if any.
        description: A markdown description, if any.
        data: Its content as JSON text, encoded when it was made (so later changes to the
            caller's table do not reach it): a string for markdown, a list of rows (each
            a list or an object) for a table, ``{"link", "link_text"}`` for a link, a
            number from 0 to 100 for a progress.
    """

    id: str
    run_id: str | None
    root_id: str | None
    created: float
    type: Literal["markdown", "table", "link", "progress"]
    key: str | None
    description: str | None
    data: str


@attrs.frozen
class ArtifactUpdate:
    """A progress artifact moved on: ``update_progress_artifact``.

    Attributes:
        id: The artifact's id.
        root_id: The outermost run of the run that updated it (which routes the update
            to that tree's store); ``None`` when updated outside any run.
        updated: When (Unix time).
        data: Its new content as JSON text.
        description: Its new description; ``None`` keeps the one it has.
    """

    id: str
    root_id: str | None
    updated: float
    data: str
    description: str | None


@attrs.frozen
class TransactionEnded:
    """A transaction committed or rolled back (see ``flowkit.transactions``).

    Attributes:
        id: The record's id.
        run_id: The run it happened in.
        root_id: The outermost run of that run's tree.
        created: When (Unix time).
        action: ``"commit"`` or ``"rollback"``.
        key: The transaction's key, if it has one.
        task_run: For a task run's own transaction, that run's name; ``None`` for one
            opened with ``transaction()``.
        hooks: The hooks that ran, as JSON text: a list of objects with ``hook`` (its
            name), ``kind`` (``"commit"`` or ``"rollback"``), ``task_run`` (the run that
            staged it) and ``error`` (what it raised, or ``null``).
    """

    id: str
    run_id: str
    root_id: str
    created: float
    action: Literal["commit", "rollback"]
    key: str | None
    task_run: str | None
    hooks: str


Event = StateChanged | LogLine | Artifact | ArtifactUpdate | TransactionEnded
Sink = Callable[[Event], None]
KINDS: tuple[type[Event], ...] = (StateChanged, LogLine, Artifact, ArtifactUpdate, TransactionEnded)
"""Every kind of event."""

# Each tier's sinks, with the kinds of event each takes.
_tiers: dict[str, tuple[tuple[Sink, frozenset[type[Event]]], ...]] = {
    "first": (), "normal": (), "last": (),
}  # fmt: skip
# The sinks of each kind of event, tier by tier: what ``emit`` calls.
_routes: dict[type[Event], tuple[Sink, ...]] = dict.fromkeys(KINDS, ())
_failed: set[Sink] = set()
_log = logging.getLogger("flowkit.engine")


def subscribe(
    sink: Sink,
    *,
    tier: Literal["first", "normal", "last"] = "normal",
    kinds: Iterable[type[Event]] = KINDS,
) -> Callable[[], None]:
    """Call ``sink`` with every event of ``kinds`` (all, by default) from now on; return
    a function that stops it.

    Sinks are called tier by tier (``"first"``, ``"normal"``, ``"last"``), in the order
    they subscribed within a tier. The run store records a run first, so that it knows
    the run before its log lines arrive, and lets go of it last, after them. A sink is
    not called for events it does not take: each costs a call on the run's thread.

    Raises:
        TypeError: ``kinds`` names something that is not a kind of event.
    """
    wanted = frozenset(kinds)
    if unknown := wanted - set(KINDS):
        raise TypeError(f"kinds must be event classes of {KINDS}, got {sorted(map(repr, unknown))}")
    entry = (sink, wanted)
    _tiers[tier] = (*_tiers[tier], entry)
    _rebuild()

    def unsubscribe() -> None:
        _tiers[tier] = tuple(e for e in _tiers[tier] if e is not entry)
        _failed.discard(sink)
        _rebuild()

    return unsubscribe


def _rebuild() -> None:
    global _routes
    ordered = _tiers["first"] + _tiers["normal"] + _tiers["last"]
    _routes = {kind: tuple(s for s, kinds in ordered if kind in kinds) for kind in KINDS}


_setups: list[Callable[[], None]] = []
_active = False


def on_first_run(setup: Callable[[], None]) -> None:
    """Have ``setup`` called when the first run starts (e.g. to subscribe a sink)."""
    _setups.append(setup)


def activate() -> None:
    """Called by the engine as each run is created: runs the setups, the first time.

    Raises:
        Exception: A setup found the configuration wrong (say, a bad environment
            variable); it is raised to the caller of the run, each time, until fixed.
    """
    global _active
    if _active:
        return
    for setup in _setups:
        setup()
    _active = True


# What the call of a root run waits for before it returns, by the run's key: a sink's work
# on the run that its caller must see done (the run store: the run's rows committed).
_held: dict[str, list[tuple[threading.Event, float]]] = {}


def hold(run_key: str, done: threading.Event, timeout: float) -> None:
    """Have the call of root run ``run_key`` wait, before it returns, until ``done`` is
    set (``timeout`` seconds at most). A sink calls this as it takes the run's final
    state; the call waits where its lifecycle runs, without blocking an event loop."""
    _held.setdefault(run_key, []).append((done, timeout))


def take_held(run_key: str) -> list[tuple[threading.Event, float]]:
    """What the call of root run ``run_key`` is to wait for (see ``hold``), once."""
    return _held.pop(run_key, [])


def emit(event: Event) -> None:
    """Hand ``event`` to every sink that takes its kind. A sink that raises is reported
    once, never fatal."""
    for sink in _routes[type(event)]:
        try:
            sink(event)
        except Exception as exc:
            if sink not in _failed:
                _failed.add(sink)
                name = getattr(sink, "__qualname__", repr(sink))
                _log.error(
                    "flowkit's event sink %s failed (%s: %s); its later failures are not "
                    "reported, and every other sink goes on",
                    name, type(exc).__name__, exc,
                )  # fmt: skip


def error_info(exc: BaseException, *, with_traceback: bool = True) -> ErrorInfo:
    """``exc`` as text, made now, in the thread that has it."""
    try:
        message = str(exc)
    except Exception as failure:  # a broken __str__ must not cost the run its record
        message = f"<str() failed: {type(failure).__name__}>"
    return ErrorInfo(type(exc).__name__, message, format_exception(exc) if with_traceback else None)


def format_exception(exc: BaseException) -> str:
    """The traceback of ``exc`` as the interpreter prints it, without the ``^^^`` markers.

    The markers need the source parsed (``ast.parse``), which on Python 3.11 is not safe
    to run in two threads at once; flowkit never parses source, in any thread.
    """
    te = traceback.TracebackException.from_exception(exc, lookup_lines=True)
    _drop_positions(te, set())
    return "".join(te.format()).rstrip("\n")


def _drop_positions(te: traceback.TracebackException, seen: set[int]) -> None:
    if id(te) in seen:
        return
    seen.add(id(te))
    te.stack = traceback.StackSummary.from_list(
        [traceback.FrameSummary(f.filename, f.lineno, f.name, line=f.line) for f in te.stack]
    )
    for inner in (te.__cause__, te.__context__, *(te.exceptions or ())):
        if inner is not None:
            _drop_positions(inner, seen)
