"""Prefect's ``prefect.client.schemas`` path: ``objects`` holds ``State`` and ``StateType``."""

from . import objects as objects
from .objects import State as State
from .objects import StateType as StateType

__all__ = ["State", "StateType", "objects"]
