"""Prefect's ``prefect.client.schemas.objects`` path: ``State``, ``StateType``, and the run
records state hooks and ``retry_condition_fn`` receive (``TaskRun``, ``FlowRun``).

``State`` and ``StateType`` are the classes of ``flowkit.states``. ``TaskRun`` and
``FlowRun`` are frozen snapshots with Prefect's field names (``id``, ``name``, ``state``,
``run_count``, ``start_time``, ``total_run_time``...), made when the hook is called.
"""

from ..._engine.lifecycle.records import FlowRun as FlowRun
from ..._engine.lifecycle.records import TaskRun as TaskRun
from ..._engine.lifecycle.records import TaskRunResult as TaskRunResult
from ...states import State as State
from ...states import StateType as StateType

__all__ = ["FlowRun", "State", "StateType", "TaskRun", "TaskRunResult"]
