"""Context that callers put around runs: ``with flowkit.tags("etl"):``."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self, cast
from uuid import UUID

import attrs

from ._engine.lifecycle.runs import Run, TaskRun, current_run
from ._engine.lifecycle.runs import current_tags as _tags
from .exceptions import MissingContextError

if TYPE_CHECKING:
    from .flows import Flow
    from .tasks import Task

__all__ = [
    "FlowRunContext",
    "FlowRunView",
    "RunContext",
    "RunView",
    "TaskRunContext",
    "TaskRunView",
    "current_tags",
    "get_run_context",
    "tags",
]


@contextmanager
def tags(*new_tags: str) -> Generator[frozenset[str], None, None]:
    """Add tags to every flow and task run started inside the block.

    Contexts nest: an inner block adds to the tags of the outer ones. The tags are
    combined with those given to ``@task(tags=...)`` and ``@flow``.

    Args:
        *new_tags: The tags to add.

    Yields:
        All tags in force inside the block.

    Raises:
        TypeError: A tag is not a string.

    Example:
        >>> with tags("test", "nightly") as current:
        ...     sorted(current)
        ['nightly', 'test']
    """
    for tag in new_tags:
        if not isinstance(tag, str):
            raise TypeError(f"tags() takes strings, got {tag!r}; write tags('a', 'b')")
    combined = _tags.get() | frozenset(new_tags)
    token = _tags.set(combined)
    try:
        yield combined
    finally:
        _tags.reset(token)


def current_tags() -> frozenset[str]:
    """Return the tags set by the enclosing ``tags()`` blocks."""
    return _tags.get()


# get_run_context(): the current run, as Prefect's FlowRunContext / TaskRunContext.


@attrs.frozen
class RunView:
    """A read-only view of a run; each attribute is read when you access it."""

    _run: Run = attrs.field(alias="run", repr=False)

    @property
    def id(self) -> UUID:
        """The run's id."""
        return self._run.id

    @property
    def name(self) -> str:
        """The run's name."""
        return self._run.name

    @property
    def tags(self) -> list[str]:
        """The run's tags, sorted."""
        return sorted(self._run.tags)

    @property
    def parameters(self) -> dict[str, Any]:
        """The arguments of the call, by parameter name (a copy)."""
        return dict(self._run.parameters)

    @property
    def run_count(self) -> int:
        """How many times the body has started in this run."""
        return self._run.run_count

    @property
    def start_time(self) -> datetime | None:
        """When the run started running (UTC)."""
        return self._run.start_time


@attrs.frozen
class FlowRunView(RunView):
    """A read-only view of a flow run."""

    @property
    def flow_name(self) -> str:
        """The name of the flow."""
        return self._run.definition.name

    @property
    def parent_task_run_id(self) -> UUID | None:
        """The id of the task run that called this flow as a subflow, if one did."""
        parent = self._run.parent
        return parent.id if isinstance(parent, TaskRun) else None


@attrs.frozen
class TaskRunView(RunView):
    """A read-only view of a task run."""

    @property
    def task_name(self) -> str:
        """The name of the task."""
        return self._run.definition.name

    @property
    def flow_run_id(self) -> UUID | None:
        """The id of the flow run the task run belongs to, if any."""
        flow_run = self._run.flow_run
        return flow_run.id if flow_run is not None else None


@attrs.frozen
class RunContext:
    """The run the code is in, as ``get_run_context()`` gives it.

    Attributes:
        flow_run: The flow run (in a task, the flow run it belongs to), if any.
        task_run: The task run, in a task.
        parameters: The arguments of the current run, by parameter name.
    """

    flow_run: FlowRunView | None
    task_run: TaskRunView | None
    parameters: dict[str, Any]


def _flow_run_view(run: Run) -> FlowRunView | None:
    flow_run = run.flow_run
    return FlowRunView(flow_run) if flow_run is not None else None


@attrs.frozen
class FlowRunContext(RunContext):
    """The context of a flow run: ``get_run_context()`` in a flow's body."""

    @property
    def flow(self) -> Flow[..., Any]:
        """The flow being run."""
        assert self.flow_run is not None  # a flow run's context always has its run
        return cast("Flow[..., Any]", self.flow_run._run.definition)  # pyright: ignore[reportPrivateUsage]

    @classmethod
    def get(cls) -> Self | None:
        """The context of the flow run the code is in (from a task: its flow run's), or
        ``None`` outside any flow run."""
        run = current_run.get()
        flow_run = run.flow_run if run is not None else None
        if flow_run is None:
            return None
        return cls(FlowRunView(flow_run), None, dict(flow_run.parameters))


@attrs.frozen
class TaskRunContext(RunContext):
    """The context of a task run: ``get_run_context()`` in a task's body."""

    @property
    def task(self) -> Task[..., Any]:
        """The task being run."""
        assert self.task_run is not None  # a task run's context always has its run
        return cast("Task[..., Any]", self.task_run._run.definition)  # pyright: ignore[reportPrivateUsage]

    @classmethod
    def get(cls) -> Self | None:
        """The context of the task run the code is in, or ``None`` outside any task run."""
        run = current_run.get()
        if not isinstance(run, TaskRun):
            return None
        return cls(_flow_run_view(run), TaskRunView(run), dict(run.parameters))


def get_run_context() -> TaskRunContext | FlowRunContext:
    """Return the context of the current run: a task run's in a task, else a flow run's.

    Raises:
        MissingContextError: Called outside any flow or task run.
    """
    context = TaskRunContext.get() or FlowRunContext.get()
    if context is None:
        raise MissingContextError(
            "get_run_context() needs a flow or task run, and was called outside one; "
            "call it in a flow's or task's body, or read flowkit.runtime.flow_run, whose "
            "attributes are empty outside runs"
        )
    return context
