"""The current flow run, read-only: ``flowkit.runtime.flow_run.name`` and so on.

In a task, these describe the flow run the task runs in. Outside any flow run each
attribute has its empty value: ``None``, ``{}``, ``[]`` or ``0``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .._engine.lifecycle.shown import FLOW_RUN, NO_FLOW_RUN
from ._views import current_flow_run, view

__all__ = [
    "flow_name",
    "flow_version",
    "id",
    "name",
    "parameters",
    "parent_flow_run_id",
    "root_flow_run_id",
    "run_count",
    "scheduled_start_time",
    "start_time",
    "tags",
]

id: str | None
"""The flow run's id, as a string."""
name: str | None
"""The flow run's name, e.g. ``"great-ammonite"``."""
flow_name: str | None
"""The name of the flow."""
flow_version: str | None
"""The flow's version option."""
parameters: dict[str, Any]
"""The arguments of the flow call, by parameter name, defaults filled in (a copy)."""
tags: list[str]
"""The flow run's tags, sorted."""
run_count: int
"""How many times the flow's body has started in this run (1 on the first attempt)."""
parent_flow_run_id: str | None
"""The id of the flow run that called this one as a subflow."""
root_flow_run_id: str | None
"""The id of the outermost flow run: this one's, unless it is a subflow."""
start_time: datetime | None
"""When the flow run started running (UTC)."""
scheduled_start_time: datetime | None
"""When the flow run was due to start (UTC). flowkit starts a run when it is called, so
this is ``start_time``."""

__getattr__, __dir__ = view(
    __name__, current_flow_run, FLOW_RUN, NO_FLOW_RUN, lambda away: away.flow_run
)
