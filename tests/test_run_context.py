"""``flowkit.context.get_run_context()``: the current run, as Prefect's run contexts."""

from __future__ import annotations

import uuid
from typing import Any

import attrs
import pytest

from flowkit import flow, runtime, task
from flowkit.context import (
    FlowRunContext,
    RunContext,
    TaskRunContext,
    get_run_context,
)
from flowkit.exceptions import MissingContextError


def test_outside_a_run_it_raises_missing_context_error() -> None:
    with pytest.raises(MissingContextError, match=r"get_run_context\(\) needs a flow or task run"):
        get_run_context()


def test_outside_a_run_each_context_kind_is_none() -> None:
    assert (FlowRunContext.get(), TaskRunContext.get()) == (None, None)


def test_in_a_flow_body_it_is_the_flow_run_context(backend: str) -> None:
    @flow(flow_run_name="first-{n}")
    def main(n: int, unit: str = "kg") -> tuple[RunContext, str | None]:
        return get_run_context(), runtime.flow_run.id

    context, run_id = main(3)
    assert isinstance(context, FlowRunContext)
    assert context.task_run is None
    assert context.parameters == {"n": 3, "unit": "kg"}
    assert context.flow_run is not None
    seen = (str(context.flow_run.id), context.flow_run.name, context.flow_run.flow_name)
    assert seen == (run_id, "first-3", "main")


def test_in_a_task_it_is_the_task_run_context_with_its_flow_run(backend: str) -> None:
    @task(tags=["t"])
    def inner(x: int) -> tuple[Any, ...]:
        context = get_run_context()
        assert isinstance(context, TaskRunContext)
        assert context.task_run is not None
        assert context.flow_run is not None
        task_run, flow_run = context.task_run, context.flow_run
        return (
            context.parameters, task_run.name, task_run.task_name, task_run.tags,
            task_run.run_count, task_run.flow_run_id, flow_run.id, flow_run.parameters,
        )  # fmt: skip

    @flow
    def main() -> tuple[Any, ...]:
        return inner(5)

    params, name, task_name, tags, count, flow_run_id, flow_id, flow_params = main()
    assert (params, name, task_name, tags, count) == ({"x": 5}, "inner-0", "inner", ["t"], 1)
    assert flow_run_id == flow_id
    assert flow_params == {}


def test_in_a_task_the_flow_run_context_is_its_flows(backend: str) -> None:
    @task
    def inner() -> tuple[Any, Any]:
        context = FlowRunContext.get()
        assert context is not None
        assert context.flow_run is not None
        return context.flow_run.id, context.parameters

    @flow
    def main(a: int) -> tuple[Any, Any, str | None]:
        return (*inner(), runtime.flow_run.id)

    flow_id, params, expected = main(1)
    assert (str(flow_id), params) == (expected, {"a": 1})


def test_a_task_outside_any_flow_has_no_flow_run(backend: str) -> None:
    @task
    def alone() -> RunContext:
        return get_run_context()

    context = alone()
    assert context.flow_run is None
    assert context.task_run is not None
    assert context.task_run.flow_run_id is None


def test_a_subflow_called_from_a_task_knows_that_task_run(backend: str) -> None:
    @flow
    def child() -> uuid.UUID | None:
        context = get_run_context()
        assert context.flow_run is not None
        return context.flow_run.parent_task_run_id

    @task
    def caller() -> tuple[uuid.UUID | None, str | None]:
        return child(), runtime.task_run.id

    @flow
    def main() -> tuple[uuid.UUID | None, str | None]:
        return caller()

    parent_id, caller_id = main()
    assert str(parent_id) == caller_id


def test_the_views_read_the_run_live(backend: str) -> None:
    counts: list[int] = []

    @task(retries=1, retry_delay_seconds=0)
    def flaky() -> None:
        context = get_run_context()
        assert context.task_run is not None
        counts.append(context.task_run.run_count)
        if len(counts) == 1:
            raise ValueError("first try")

    @flow
    def main() -> None:
        flaky()

    main()
    assert counts == [1, 2]


def test_the_context_and_views_are_read_only(backend: str) -> None:
    @flow
    def main() -> RunContext:
        return get_run_context()

    context = main()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        context.parameters = {}  # type: ignore[misc]
    with pytest.raises(AttributeError):
        context.flow_run.name = "other"  # type: ignore[misc, union-attr]


def test_parameters_of_the_view_are_a_copy(backend: str) -> None:
    @flow
    def main(a: int) -> dict[str, Any]:
        context = get_run_context()
        assert context.flow_run is not None
        context.flow_run.parameters["a"] = 99
        return context.flow_run.parameters

    assert main(1) == {"a": 1}


def test_the_contexts_know_their_task_and_flow(backend: str) -> None:
    @task
    def inner() -> object:
        context = get_run_context()
        assert isinstance(context, TaskRunContext)
        return context.task

    @flow
    def main() -> tuple[object, object]:
        context = get_run_context()
        assert isinstance(context, FlowRunContext)
        return context.flow, inner()

    seen_flow, seen_task = main()
    assert seen_flow is main
    assert seen_task is inner
