"""flowkit.client.schemas.objects: state hooks and ``retry_condition_fn`` receive Prefect's
shapes, ``(task or flow, TaskRun or FlowRun record, State)``, the record a frozen snapshot
with Prefect's field names, never the engine's own run object."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import attrs
import pytest

from flowkit import flow, task
from flowkit._engine.lifecycle import engine
from flowkit.client.schemas.objects import FlowRun, State, StateType, TaskRun, TaskRunResult
from flowkit.runtime import flow_run as current_flow_run
from flowkit.runtime import task_run as current_task_run

Seen = list[tuple[Any, Any, State[Any]]]


def _keep(seen: Seen) -> Any:
    return lambda definition, run, state: seen.append((definition, run, state))


@pytest.mark.anyio
async def test_a_task_hook_gets_the_task_a_task_run_record_and_the_state() -> None:
    seen: Seen = []

    @task(tags=["b", "a"], on_completion=[_keep(seen)])
    async def double(x: int) -> int:
        return 2 * x

    @flow
    async def main() -> tuple[UUID, UUID]:
        future = double.submit(2)
        await future
        return future.task_run_id, UUID(current_flow_run.id)  # runtime ids are text

    task_run_id, flow_run_id = await main()
    ((definition, run, state),) = seen
    assert definition is double
    assert type(run) is TaskRun
    assert (run.id, run.flow_run_id, run.name) == (task_run_id, flow_run_id, "double-0")
    assert (run.task_key, run.dynamic_key, run.tags) == (double.task_key, "0", ["a", "b"])
    assert run.state is state
    assert (run.state_type, run.state_name, run.run_count) == (StateType.COMPLETED, "Completed", 1)
    assert run.flow_run_run_count == 1


def test_a_flow_hook_gets_the_flow_a_flow_run_record_and_the_state(backend: str) -> None:
    seen: Seen = []

    @flow(on_failure=[_keep(seen)])
    def broken(n: int, label: str = "x") -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        broken(3)
    ((definition, run, state),) = seen
    assert definition is broken
    assert type(run) is FlowRun
    assert isinstance(run.id, UUID)
    assert run.parameters == {"n": 3, "label": "x"}
    assert (run.state_type, run.state_name, state.is_failed()) == (StateType.FAILED, "Failed", True)
    assert run.parent_task_run_id is None


def test_a_flow_id_is_one_per_flow_name(backend: str) -> None:
    seen: Seen = []

    @flow(name="same", on_completion=[_keep(seen)])
    def first() -> None: ...

    @flow(name="same", on_completion=[_keep(seen)])
    def second() -> None: ...

    @flow(name="other", on_completion=[_keep(seen)])
    def third() -> None: ...

    first()
    second()
    third()
    ids = [run.flow_id for _, run, _ in seen]
    assert ids[0] == ids[1] != ids[2]
    assert isinstance(ids[0], UUID)


def test_a_run_record_is_frozen(backend: str) -> None:
    seen: Seen = []

    @flow(on_completion=[_keep(seen)])
    def done() -> None: ...

    done()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        seen[0][1].name = "renamed"


@pytest.mark.anyio
async def test_a_record_is_the_run_as_it_was_when_the_hook_was_called() -> None:
    seen: Seen = []
    attempts: list[int] = []

    @task(retries=1, on_running=[_keep(seen)])
    async def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first")

    @flow
    async def main() -> None:
        await flaky()

    await main()
    first, second = (run for _, run, _ in seen)
    assert (first.run_count, first.state_name, first.end_time) == (1, "Running", None)
    assert (second.run_count, second.state_name) == (2, "Retrying")
    assert first.start_time == second.start_time is not None


@pytest.mark.anyio
async def test_total_run_time_is_a_timedelta_within_the_runs_span() -> None:
    seen: Seen = []
    failed: list[int] = []

    @task(retries=1, on_completion=[_keep(seen)])
    async def flaky() -> None:
        if not failed:
            failed.append(1)
            raise ValueError("first")

    @flow
    async def main() -> None:
        await flaky()

    await main()
    ((_, run, _),) = seen
    assert isinstance(run.total_run_time, timedelta)
    assert timedelta(0) < run.total_run_time <= run.end_time - run.start_time
    assert run.expected_start_time == run.start_time


@pytest.mark.anyio
async def test_retry_condition_fn_gets_a_task_run_record() -> None:
    seen: Seen = []

    def record(definition: Any, run: Any, state: State[Any]) -> bool:
        seen.append((definition, run, state))
        return False

    @task(retries=3, retry_condition_fn=record)
    async def failing() -> None:
        raise ValueError("once")

    @flow
    async def main() -> None:
        await failing()

    with pytest.raises(ValueError, match="once"):
        await main()
    ((definition, run, state),) = seen
    assert definition is failing
    assert type(run) is TaskRun
    # As in Prefect: the run is still in the attempt's Running; the state is the failure.
    assert (run.state_type, run.run_count, state.is_failed()) == (StateType.RUNNING, 1, True)


def test_task_inputs_name_the_upstream_runs(backend: str) -> None:
    seen: Seen = []

    @task
    def one() -> int:
        return 1

    @task(on_completion=[_keep(seen)])
    def plus(x: int) -> int:
        return x + 1

    @flow
    def main() -> UUID:
        upstream = one.submit()
        plus.submit(upstream).wait()
        return upstream.task_run_id

    upstream_id = main()
    assert seen[0][1].task_inputs == {"x": [TaskRunResult(upstream_id)]}


def test_dynamic_key_counts_the_tasks_runs_custom_names_included(backend: str) -> None:
    seen: Seen = []

    @task(on_completion=[_keep(seen)])
    def step() -> None: ...

    @flow
    def main() -> None:
        step()
        step.with_options(task_run_name="special")()
        step()

    main()
    assert [(run.name, run.dynamic_key) for _, run, _ in seen] == [
        ("step-0", "0"), ("special", "1"), ("step-2", "2"),
    ]  # fmt: skip


def test_a_subflow_called_from_a_task_names_that_task_run(backend: str) -> None:
    seen: Seen = []

    @flow(on_completion=[_keep(seen)])
    def inner() -> None: ...

    @task
    def calls_inner() -> UUID:
        inner()
        return UUID(current_task_run.id)  # runtime ids are text

    @flow
    def outer() -> UUID:
        return calls_inner()

    task_run_id = outer()
    assert seen[0][1].parent_task_run_id == task_run_id


def test_no_record_is_made_for_a_run_without_hooks(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(run: Any) -> Any:
        raise AssertionError(f"a record of {run.name} was made")

    monkeypatch.setattr(engine, "run_record", refuse)

    @task(retries=1, retry_delay_seconds=0)
    def plain() -> int:
        return 1

    @flow
    def main() -> int:
        return plain()

    assert main() == 1
