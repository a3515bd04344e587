"""What ``flowkit.runtime`` shows of a run: here, read off the live run; in a process or
Dask worker, from a copy taken as the attempt started (``Away``).

One table per kind of run, each field a function of the run, is what both read: a body
sees the same fields on every task runner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ..convert import Encoded, snapshot
from .runs import FlowRun, TaskRun

if TYPE_CHECKING:
    from ..events import RunInfo

__all__ = ["FLOW_RUN", "NO_FLOW_RUN", "NO_TASK_RUN", "TASK_RUN", "Away", "away", "root_flow_run"]


def root_flow_run(run: FlowRun) -> FlowRun:
    """The outermost flow run above ``run`` (``run`` itself, for a flow run at the top)."""
    root = run
    parent = run.parent
    while parent is not None:
        if isinstance(parent, FlowRun):
            root = parent
        parent = parent.parent
    return root


def _flow_run_id(run: TaskRun) -> str | None:
    flow_run = run.flow_run
    return str(flow_run.id) if flow_run is not None else None


def _parent_flow_run_id(run: FlowRun) -> str | None:
    outer = run.parent.flow_run if run.parent is not None else None
    return str(outer.id) if outer is not None else None


TASK_RUN: dict[str, Callable[[TaskRun], Any]] = {
    "id": lambda r: str(r.id),
    "name": lambda r: r.name,
    "task_name": lambda r: r.definition.name,
    "parameters": lambda r: dict(r.parameters),
    "tags": lambda r: sorted(r.tags),
    "run_count": lambda r: r.run_count,
    "flow_run_id": _flow_run_id,
    "parent_task_run_id": lambda r: str(r.parent.id) if isinstance(r.parent, TaskRun) else None,
    "start_time": lambda r: r.start_time,
    "task_inputs": lambda r: {k: [str(i) for i in v] for k, v in r.task_inputs.items()},
}
"""``flowkit.runtime.task_run``'s fields, each read off a task run."""

NO_TASK_RUN: dict[str, Any] = {"parameters": {}, "tags": [], "run_count": 0, "task_inputs": {}}
"""Their values outside a task run (the others: ``None``)."""

FLOW_RUN: dict[str, Callable[[FlowRun], Any]] = {
    "id": lambda r: str(r.id),
    "name": lambda r: r.name,
    "flow_name": lambda r: r.definition.name,
    "flow_version": lambda r: getattr(r.definition, "version", None),
    "parameters": lambda r: dict(r.parameters),
    "tags": lambda r: sorted(r.tags),
    "run_count": lambda r: r.run_count,
    "parent_flow_run_id": _parent_flow_run_id,
    "root_flow_run_id": lambda r: str(root_flow_run(r).id),
    "start_time": lambda r: r.start_time,
    "scheduled_start_time": lambda r: r.start_time,
}
"""``flowkit.runtime.flow_run``'s fields, each read off a flow run."""

NO_FLOW_RUN: dict[str, Any] = {"parameters": {}, "tags": [], "run_count": 0}
"""Their values outside a flow run (the others: ``None``)."""


@attrs.frozen
class Away:
    """What stands for a task run in a process or Dask worker: who it is (for
    ``get_run_logger`` and prints) and what ``flowkit.runtime`` shows of it and of its
    flow run, as they were when the attempt started.

    Attributes:
        info: Who the run is.
        log_prints: Whether ``print`` in the body becomes a log record.
        task_run: ``flowkit.runtime.task_run``'s fields.
        flow_run: ``flowkit.runtime.flow_run``'s fields; ``None`` outside a flow run.
    """

    info: RunInfo
    log_prints: bool
    task_run: Mapping[str, Any]
    flow_run: Mapping[str, Any] | None

    @property
    def name(self) -> str:
        return self.info.name


def away(run: TaskRun) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The fields of ``run`` and of its flow run, to send with its attempt to a worker.

    Values that pickle does not take stay here: the task run's parameters are the body's
    arguments, which travel on their own (the worker binds them again); the flow run's
    are sent as recorded (``convert.snapshot``, as plain data: lists and dicts for what
    JSON holds, a ``repr`` or a placeholder for the rest).
    """
    task_run = {name: get(run) for name, get in TASK_RUN.items() if name != "parameters"}
    flow_run = run.flow_run
    if flow_run is None:
        return task_run, None
    flow = {name: get(flow_run) for name, get in FLOW_RUN.items() if name != "parameters"}
    recorded = snapshot(flow_run.parameters)
    flow["parameters"] = {
        k: v.value() if isinstance(v, Encoded) else v for k, v in recorded.items()
    }
    return task_run, flow
