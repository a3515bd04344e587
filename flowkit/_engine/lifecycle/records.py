"""What state hooks and ``retry_condition_fn`` get as their second argument: a frozen record
of the run, with the field names of Prefect's ``TaskRun`` and ``FlowRun`` client objects.

A hook in Prefect receives the run as its server holds it: a snapshot, not the live engine
object. So here: the record is made once per round of hooks (never when the run has none,
so runs without hooks pay nothing), and a hook that keeps it sees the run as it was when
the hook was called. ``flowkit.client.schemas.objects`` exports these classes under the
import path Prefect code uses.

flowkit has no server, and so no scheduling: a run is expected to start when it starts
(``expected_start_time`` is ``start_time``), and a flow's id is derived from its name,
one id per flow name as Prefect's server keeps it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID, uuid5

import attrs

from ...states import State, StateType
from .runs import FlowRun as LiveFlowRun
from .runs import Run
from .runs import TaskRun as LiveTaskRun

__all__ = ["FlowRun", "TaskRun", "TaskRunResult", "flow_id", "run_record"]

_FLOW_IDS = UUID("6f1c3e52-8a0d-4d1b-9a57-3b7c2f0e9d41")
"""The namespace of flow ids: ``uuid5(_FLOW_IDS, flow name)``."""


def flow_id(flow_name: str) -> UUID:
    """The id of the flow named ``flow_name``: the same in every run and process."""
    return uuid5(_FLOW_IDS, flow_name)


@attrs.frozen
class TaskRunResult:
    """An upstream run whose result (or completion, for ``wait_for``) a task run took:
    an entry of ``TaskRun.task_inputs``.

    Attributes:
        id: The upstream run's id.
        input_type: Always ``"task_run"``.
    """

    id: UUID
    input_type: Literal["task_run"] = "task_run"


@attrs.frozen(kw_only=True)
class _RunRecord:
    """The fields task runs and flow runs share (see the subclasses)."""

    id: UUID
    name: str
    tags: list[str]
    state: State[Any]
    state_type: StateType
    state_name: str
    run_count: int
    expected_start_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    total_run_time: timedelta


@attrs.frozen(kw_only=True)
class TaskRun(_RunRecord):
    """A task run as its hooks see it: Prefect's ``TaskRun`` fields, frozen.

    Attributes:
        id: The run's id.
        name: The run's name.
        flow_run_id: The flow run it belongs to, if any.
        task_key: Its task's key.
        dynamic_key: Its occurrence among its task's runs in its flow run: ``"0"``, ...
        tags: Its tags, sorted.
        task_inputs: The upstream runs it took results from, by parameter (and
            ``"wait_for"``).
        state: Its state when the hook was called.
        state_type: ``state.type``.
        state_name: ``state.name``.
        run_count: How many attempts have started.
        flow_run_run_count: Its flow run's ``run_count`` (0 outside flows).
        expected_start_time: When it was expected to start: ``start_time`` (no schedules).
        start_time: When it first entered Running.
        end_time: When it reached its final state, once it has.
        total_run_time: The time its attempts spent running, all together.
    """

    flow_run_id: UUID | None
    task_key: str
    dynamic_key: str
    task_inputs: dict[str, list[TaskRunResult]]
    flow_run_run_count: int


@attrs.frozen(kw_only=True)
class FlowRun(_RunRecord):
    """A flow run as its hooks see it: Prefect's ``FlowRun`` fields, frozen.

    Attributes:
        id: The run's id.
        name: The run's name.
        flow_id: Its flow's id (one per flow name).
        parameters: Its arguments by parameter name (a copy).
        tags: Its tags, sorted.
        parent_task_run_id: For a subflow called from a task: that task run's id.
        state: Its state when the hook was called.
        state_type: ``state.type``.
        state_name: ``state.name``.
        run_count: How many attempts have started.
        expected_start_time: When it was expected to start: ``start_time`` (no schedules).
        start_time: When it first entered Running.
        end_time: When it reached its final state, once it has.
        total_run_time: The time its attempts spent running, all together.
    """

    flow_id: UUID
    parameters: dict[str, Any]
    parent_task_run_id: UUID | None


def run_record(run: Run) -> TaskRun | FlowRun:
    """The frozen record of ``run`` as it is now."""
    state = run.state
    total = run.progress.run_time
    if state.is_running():  # the attempt under way counts so far
        total += datetime.now(UTC) - state.timestamp
    shared: dict[str, Any] = {
        "id": run.id, "name": run.name, "tags": sorted(run.tags), "state": state,
        "state_type": state.type, "state_name": state.name, "run_count": run.run_count,
        "expected_start_time": run.start_time, "start_time": run.start_time,
        "end_time": run.progress.end_time, "total_run_time": total,
    }  # fmt: skip
    if isinstance(run, LiveFlowRun):
        parent = run.parent
        return FlowRun(
            flow_id=flow_id(run.definition.name), parameters=dict(run.parameters),
            parent_task_run_id=parent.id if isinstance(parent, LiveTaskRun) else None,
            **shared,
        )  # fmt: skip
    assert isinstance(run, LiveTaskRun)
    flow_run = run.flow_run
    return TaskRun(
        flow_run_id=flow_run.id if flow_run is not None else None,
        task_key=getattr(run.definition, "task_key", run.definition.name),
        dynamic_key=run.dynamic_key,
        task_inputs={
            name: [TaskRunResult(i) for i in ids] for name, ids in run.task_inputs.items()
        },
        flow_run_run_count=flow_run.run_count if flow_run is not None else 0,
        **shared,
    )
