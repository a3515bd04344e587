"""The task-runner contract: what a flow's ``task_runner`` gives the engine.

A task runner opens one ``Executor`` per flow run, as the flow's body starts, and the
engine closes it once the flow's last child is over; in between, the executor runs packed
bodies somewhere else (``execution.remote`` packs them and reads the replies). The public
runners (``flowkit.task_runners``) build on these two.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

import attrs

__all__ = ["BodyRun", "Executor", "TaskRunner"]


class BodyRun(Protocol):
    """What an executor may read of the run whose body it runs (to name its work)."""

    @property
    def id(self) -> UUID: ...
    @property
    def name(self) -> str: ...
    @property
    def run_count(self) -> int: ...


class Executor(Protocol):
    """What a task runner opens for one flow run: somewhere to run packed bodies."""

    @property
    def kind(self) -> str:
        """How errors name it: ``"process"``, ``"Dask"``."""
        ...

    async def run(self, run: BodyRun, payload: bytes) -> bytes:
        """Run a packed body (see ``pack``) and return the packed reply (see ``serve``).

        Raises:
            WorkerCrashedError: The worker died before it replied.
        """
        ...

    async def aclose(self) -> None:
        """Release the workers; called once, when the flow's children are all over."""
        ...


@attrs.frozen
class TaskRunner:
    """Where a flow's submitted task runs execute. The base of ``flowkit.task_runners``."""

    @property
    def thread_limit(self) -> int | None:
        """The flow's worker-thread limit this runner sets, if it sets one."""
        return None

    async def executor(self, owner: str) -> Executor | None:
        """Start the workers one run of the flow ``owner`` uses; ``None``: none needed.

        Raises:
            OSError: The workers cannot be reached or started.
        """
        return None
