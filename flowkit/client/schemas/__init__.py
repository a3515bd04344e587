"""Prefect's ``prefect.client.schemas`` path: ``objects`` holds ``State``, ``StateType``
and the run records hooks receive, ``TaskRun`` and ``FlowRun``."""

from . import objects as objects
from .objects import FlowRun as FlowRun
from .objects import State as State
from .objects import StateType as StateType
from .objects import TaskRun as TaskRun

__all__ = ["FlowRun", "State", "StateType", "TaskRun", "objects"]
