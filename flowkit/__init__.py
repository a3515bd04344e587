"""flowkit: observable, retryable units of work on structured concurrency."""

from . import runtime as runtime
from .context import tags as tags
from .flows import Flow as Flow
from .flows import flow as flow
from .logging import get_run_logger as get_run_logger
from .states import State as State
from .tasks import Task as Task
from .tasks import task as task

__all__ = [
    "Flow",
    "State",
    "Task",
    "flow",
    "get_run_logger",
    "runtime",
    "tags",
    "task",
]
