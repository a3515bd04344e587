"""The lookups behind ``flowkit.runtime.flow_run`` and ``flowkit.runtime.task_run``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from .._engine.lifecycle.runs import FlowRun, Run, TaskRun, current_run
from .._engine.lifecycle.shown import Away


def current_task_run() -> TaskRun | None:
    run = current_run.get()
    return run if isinstance(run, TaskRun) else None


def current_flow_run() -> FlowRun | None:
    run = current_run.get()
    return run.flow_run if run is not None and not isinstance(run, Away) else None


def view(
    module: str,
    current: Callable[[], Run | None],
    getters: Mapping[str, Callable[[Any], Any]],
    empty: dict[str, Any],
    away: Callable[[Away], Mapping[str, Any] | None],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build a module's ``__getattr__``, which reads ``getters[name]`` of the current run
    (in a process or Dask worker: the field ``away`` picks from the copy the run sent),
    and its ``__dir__``, which lists the names (so editors and ``dir()`` show them)."""

    def __getattr__(name: str) -> Any:
        getter = getters.get(name)
        if getter is None:
            raise AttributeError(
                f"module {module!r} has no attribute {name!r}; it has {', '.join(sorted(getters))}"
            )
        fields: Mapping[str, Any]
        if isinstance(there := current_run.get(), Away):
            fields = away(there) or {}
        elif (run := current()) is not None:
            return getter(run)
        else:
            fields = {}
        value = fields.get(name, empty.get(name))  # a copy: the reader may change it
        return cast("Any", value).copy() if isinstance(value, dict | list) else value

    names = sorted(getters)

    def __dir__() -> list[str]:
        return list(names)

    return __getattr__, __dir__
