"""Prefect's ``prefect.client.schemas.objects`` path for ``State`` and ``StateType``.

These are the classes of ``flowkit.states``, under the path Prefect code imports them from.
"""

from ...states import State as State
from ...states import StateType as StateType

__all__ = ["State", "StateType"]
