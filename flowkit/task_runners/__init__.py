"""Task runners: where a flow's submitted task runs execute.

Give one to a flow: ``@flow(task_runner=ProcessPoolTaskRunner(max_workers=4))``. Only
runs started with ``.submit()`` or ``.map()`` go to it; a task called plainly runs in
the flow's process. Whatever the runner, the run's states, retries, deadlines, caching
and hooks are handled by the flow, in its process: a runner only decides where bodies run.

``DaskTaskRunner`` lives in ``flowkit.task_runners.dask`` (extra ``flowkit[dask]``).
"""

from __future__ import annotations

import os

import attrs

from .._engine.definition.task_runner import Executor, TaskRunner
from .._engine.execution.processes import ProcessPool

__all__ = [
    "ConcurrentTaskRunner",
    "ProcessPoolTaskRunner",
    "TaskRunner",
    "ThreadPoolTaskRunner",
]


def _max_workers(_: object, attribute: attrs.Attribute[int | None], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"max_workers must be a positive int or None, got {value!r}")
    if value < 1:
        raise ValueError(f"max_workers must be at least 1, or None for the default, got {value!r}")


@attrs.frozen
class ThreadPoolTaskRunner(TaskRunner):
    """Sync task bodies in worker threads, async ones on the flow's event loop: the default.

    Args:
        max_workers: How many sync task bodies of the flow may run at once (the flow's
            ``thread_limit``). ``None``: the flow's ``thread_limit``, else
            ``FLOWKIT_THREAD_LIMIT``, else 40.

    Raises:
        TypeError: ``max_workers`` is not an int.
        ValueError: ``max_workers`` is below 1.
    """

    max_workers: int | None = attrs.field(default=None, validator=_max_workers)

    @property
    def thread_limit(self) -> int | None:
        """``max_workers``: the flow's worker-thread limit."""
        return self.max_workers


ConcurrentTaskRunner = ThreadPoolTaskRunner
"""Prefect 3's other name for ``ThreadPoolTaskRunner``."""


@attrs.frozen
class ProcessPoolTaskRunner(TaskRunner):
    """Submitted task bodies, sync or async, in worker processes.

    Each flow run starts its own workers as work arrives (at most ``max_workers``) and
    stops them when it ends. Functions, arguments and results cross by cloudpickle, so
    they must pickle; an argument that does not is refused at ``submit``. A body past
    its deadline, or cancelled, is stopped for real: its worker is killed (and replaced
    when work next needs one). A run whose worker dies ends ``Crashed``, after its
    retries, which run in new workers. Log records of the run (``get_run_logger()`` and,
    with ``log_prints``, prints) come back with the result, tagged with the run.

    Args:
        max_workers: How many worker processes; ``None``: one per CPU.

    Raises:
        TypeError: ``max_workers`` is not an int.
        ValueError: ``max_workers`` is below 1.
    """

    max_workers: int | None = attrs.field(default=None, validator=_max_workers)

    async def executor(self, owner: str) -> Executor:
        """The worker processes of one run of the flow ``owner`` (none start yet).

        Raises:
            OSError: The program's fork server, which starts them, cannot be started.
        """
        return await ProcessPool.open(self.max_workers or os.cpu_count() or 1, owner)
