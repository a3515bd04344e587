"""flowkit: observable, retryable units of work on structured concurrency."""

from . import concurrency as concurrency
from . import limits as limits
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

__all__ = [
    "Flow",
    "PrefectFuture",
    "State",
    "Task",
    "TaskFuture",
    "allow_failure",
    "as_completed",
    "concurrency",
    "flow",
    "get_run_logger",
    "limits",
    "quote",
    "runtime",
    "store",
    "tags",
    "task",
    "task_runners",
    "unmapped",
    "wait",
]
