"""The lookups behind ``flowkit.runtime.flow_run`` and ``flowkit.runtime.task_run``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from .._engine.lifecycle.runs import FlowRun, Run, TaskRun, current_run


def current_task_run() -> TaskRun | None:
    run = current_run.get()
    return run if isinstance(run, TaskRun) else None


def current_flow_run() -> FlowRun | None:
    run = current_run.get()
    return run.flow_run if run is not None else None


def root_flow_run(run: FlowRun) -> FlowRun:
    """The outermost flow run above ``run`` (``run`` itself, for a flow run at the top)."""
    root = run
    parent = run.parent
    while parent is not None:
        if isinstance(parent, FlowRun):
            root = parent
        parent = parent.parent
    return root


def view(
    module: str,
    current: Callable[[], Run | None],
    getters: dict[str, Callable[[Any], Any]],
    empty: dict[str, Any],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build a module's ``__getattr__``, which reads ``getters[name]`` of the current run,
    and its ``__dir__``, which lists the names (so editors and ``dir()`` show them)."""

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

    names = sorted(getters)

    def __dir__() -> list[str]:
        return list(names)

    return __getattr__, __dir__
