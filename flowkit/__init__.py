"""flowkit: observable, retryable units of work on structured concurrency.

The names below are imported when first used (PEP 562), so that ``import flowkit``, and
a process-pool worker that needs only the engine's core, do not pay for all of them.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from . import concurrency as concurrency
    from . import runtime as runtime
    from . import store as store
    from . import task_runners as task_runners
    from .annotations import allow_failure as allow_failure
    from .annotations import quote as quote
    from .annotations import unmapped as unmapped
    from .context import tags as tags
    from .flows import Flow as Flow
    from .flows import flow as flow
    from .futures import PrefectFuture as PrefectFuture
    from .futures import TaskFuture as TaskFuture
    from .futures import as_completed as as_completed
    from .futures import wait as wait
    from .logging import get_run_logger as get_run_logger
    from .states import State as State
    from .tasks import Task as Task
    from .tasks import task as task
    from .transactions import Transaction as Transaction

# Each public name, and the module it comes from ("": it is that submodule).
_WHERE = {
    "Flow": "flows",
    "PrefectFuture": "futures",
    "State": "states",
    "Task": "tasks",
    "TaskFuture": "futures",
    "Transaction": "transactions",
    "allow_failure": "annotations",
    "as_completed": "futures",
    "concurrency": "",
    "flow": "flows",
    "get_run_logger": "logging",
    "quote": "annotations",
    "runtime": "",
    "store": "",
    "tags": "context",
    "task": "tasks",
    "task_runners": "",
    "unmapped": "annotations",
    "wait": "futures",
}

__all__ = [
    "Flow",
    "PrefectFuture",
    "State",
    "Task",
    "TaskFuture",
    "Transaction",
    "allow_failure",
    "as_completed",
    "concurrency",
    "flow",
    "get_run_logger",
    "quote",
    "runtime",
    "store",
    "tags",
    "task",
    "task_runners",
    "unmapped",
    "wait",
]


def __getattr__(name: str) -> _typing.Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'flowkit' has no attribute {name!r}")
    value: _typing.Any = _importlib.import_module(f"{__name__}.{where or name}")
    if where:
        value = getattr(value, name)
    globals()[name] = value  # from now on, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
