"""The current task run, read-only: ``flowkit.runtime.task_run.name`` and so on.

Outside a task run (in a flow's own body, or outside any run) each attribute has its
empty value: ``None``, ``{}``, ``[]`` or ``0``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .._engine.lifecycle.shown import NO_TASK_RUN, TASK_RUN
from ._views import current_task_run, view

__all__ = [
    "flow_run_id",
    "id",
    "name",
    "parameters",
    "parent_task_run_id",
    "run_count",
    "start_time",
    "tags",
    "task_inputs",
    "task_name",
]

id: str | None
"""The task run's id, as a string."""
name: str | None
"""The task run's name, e.g. ``"get_url-0"``."""
task_name: str | None
"""The name of the task."""
parameters: dict[str, Any]
"""The arguments of the task call, by parameter name (a copy)."""
tags: list[str]
"""The task run's tags, sorted: the task's own and those of enclosing ``tags()`` blocks."""
run_count: int
"""How many times the task's body has started in this run (1 on the first attempt)."""
flow_run_id: str | None
"""The id of the flow run this task run belongs to, if any."""
parent_task_run_id: str | None
"""The id of the task run that called this one, if it was called from a task."""
start_time: datetime | None
"""When the task run started running (UTC)."""
task_inputs: dict[str, list[str]]
"""The ids of the upstream task runs whose futures or states this run received, by
parameter name (``"wait_for"`` for those given in ``wait_for``)."""

__getattr__, __dir__ = view(
    __name__, current_task_run, TASK_RUN, NO_TASK_RUN, lambda away: away.task_run
)
