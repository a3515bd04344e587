"""The lookups behind ``flowkit.runtime.flow_run`` and ``flowkit.runtime.task_run``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from .._engine.runs import FlowRun, Run, TaskRun, current_run


def current_task_run() -> TaskRun | None:
    run = current_run.get()
    return run if isinstance(run, TaskRun) else None


def current_flow_run() -> FlowRun | None:
    run = current_run.get()
    return run.flow_run if run is not None else None


def view(
    module: str,
    current: Callable[[], Run | None],
    getters: dict[str, Callable[[Any], Any]],
    empty: dict[str, Any],
) -> Callable[[str], Any]:
    """Build a module ``__getattr__`` that reads ``getters[name]`` of the current run."""

    def __getattr__(name: str) -> Any:
        getter = getters.get(name)
        if getter is None:
            raise AttributeError(
                f"module {module!r} has no attribute {name!r}; it has {', '.join(sorted(getters))}"
            )
        run = current()
        if run is None:
            value = empty.get(name)
            return cast("Any", value).copy() if isinstance(value, dict | list) else value
        return getter(run)

    return __getattr__
