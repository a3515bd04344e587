"""``flowkit.runtime``: read-only views of the flow run and task run the code is in."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest
from shared_tasks import double, recorded_states

from flowkit import flow, runtime, tags, task
from flowkit.runtime import flow_run, task_run

FLOW_RUN_EMPTY: dict[str, Any] = {
    "id": None,
    "name": None,
    "flow_name": None,
    "flow_version": None,
    "parameters": {},
    "tags": [],
    "run_count": 0,
    "parent_flow_run_id": None,
    "root_flow_run_id": None,
    "start_time": None,
    "scheduled_start_time": None,
}
TASK_RUN_EMPTY: dict[str, Any] = {
    "id": None,
    "name": None,
    "task_name": None,
    "parameters": {},
    "tags": [],
    "run_count": 0,
    "flow_run_id": None,
    "parent_task_run_id": None,
    "start_time": None,
    "task_inputs": {},
}


def flow_run_view() -> dict[str, Any]:
    return {name: getattr(flow_run, name) for name in FLOW_RUN_EMPTY}


def task_run_view() -> dict[str, Any]:
    return {name: getattr(task_run, name) for name in TASK_RUN_EMPTY}


def is_uuid(value: object) -> bool:
    return isinstance(value, str) and str(uuid.UUID(value)) == value


# Outside any run


def test_flow_run_attributes_are_empty_outside_runs() -> None:
    assert flow_run_view() == FLOW_RUN_EMPTY


def test_task_run_attributes_are_empty_outside_runs() -> None:
    assert task_run_view() == TASK_RUN_EMPTY


def test_empty_parameters_are_a_fresh_dict_each_time() -> None:
    runtime.flow_run.parameters["x"] = 1
    runtime.task_run.parameters["x"] = 1
    assert runtime.flow_run.parameters == {}
    assert runtime.task_run.parameters == {}


def test_empty_tags_are_a_fresh_list_each_time() -> None:
    runtime.task_run.tags.append("leak")
    assert runtime.task_run.tags == []


def test_abandoned_threads_is_zero_without_runs() -> None:
    assert runtime.abandoned_threads() == 0


@pytest.mark.anyio
async def test_attributes_are_empty_in_async_code_outside_runs() -> None:
    assert (flow_run_view(), task_run_view()) == (FLOW_RUN_EMPTY, TASK_RUN_EMPTY)


# Unknown attributes


@pytest.mark.parametrize("view", [flow_run, task_run], ids=["flow_run", "task_run"])
def test_unknown_attribute_raises_attribute_error(view: Any) -> None:
    with pytest.raises(AttributeError, match=r"has no attribute 'colour'; it has .*\bname\b"):
        _ = view.colour


def test_unknown_attribute_is_an_error_inside_a_run_too(backend: str) -> None:
    @flow
    def main() -> None:
        _ = flow_run.colour

    with pytest.raises(AttributeError, match="colour"):
        main()


@pytest.mark.parametrize("view", [flow_run, task_run], ids=["flow_run", "task_run"])
def test_hasattr_is_false_for_unknown_attributes(view: Any) -> None:
    assert not hasattr(view, "colour")
    assert hasattr(view, "name")


# flow_run


def test_flow_run_describes_the_flow_in_its_body(backend: str) -> None:
    @flow(version="1.2", flow_run_name="run-{n}")
    def report(n: int, unit: str = "kg") -> dict[str, Any]:
        return flow_run_view()

    seen = report(3)
    run_id = seen.pop("id")
    assert is_uuid(run_id)
    assert seen.pop("root_flow_run_id") == run_id
    assert isinstance(seen.pop("start_time"), datetime)
    assert isinstance(seen.pop("scheduled_start_time"), datetime)
    assert seen == {
        "name": "run-3",
        "flow_name": "report",
        "flow_version": "1.2",
        "parameters": {"n": 3, "unit": "kg"},
        "tags": [],
        "run_count": 1,
        "parent_flow_run_id": None,
    }


@pytest.mark.anyio
async def test_flow_run_describes_an_async_flow_in_its_body() -> None:
    @flow
    async def report(n: int) -> dict[str, Any]:
        await anyio.lowlevel.checkpoint()
        return flow_run_view()

    seen = await report(n=4)
    assert seen["flow_name"] == "report"
    assert seen["parameters"] == {"n": 4}
    assert seen["run_count"] == 1
    assert re.fullmatch(r"[a-z]+-[a-z]+", seen["name"])


def test_flow_run_in_a_task_describes_the_enclosing_flow(backend: str) -> None:
    @task
    def look() -> tuple[str | None, str | None]:
        return flow_run.id, flow_run.flow_name

    @flow
    def outer() -> tuple[tuple[str | None, str | None], str | None]:
        return look(), flow_run.id

    (id_in_task, name_in_task), id_in_flow = outer()
    assert id_in_task == id_in_flow
    assert name_in_task == "outer"


def test_flow_run_timestamp_is_a_utc_datetime(backend: str) -> None:
    @flow
    def main() -> datetime | None:
        return flow_run.start_time

    start = main()
    assert start is not None
    offset = start.utcoffset()
    assert offset is not None
    assert offset.total_seconds() == 0


def test_flow_run_tags_come_from_enclosing_tags_blocks(backend: str) -> None:
    @flow
    def main() -> list[str]:
        return flow_run.tags

    with tags("nightly", "etl"):
        assert main() == ["etl", "nightly"]


def test_flow_run_parameters_are_a_copy(backend: str) -> None:
    @flow
    def main(x: int) -> dict[str, Any]:
        flow_run.parameters["x"] = 99
        return flow_run.parameters

    assert main(1) == {"x": 1}


def test_flow_run_count_grows_with_retries(backend: str) -> None:
    counts: list[int] = []

    @flow(retries=2)
    def flaky() -> int:
        counts.append(flow_run.run_count)
        if len(counts) < 3:
            raise ValueError("not yet")
        return flow_run.run_count

    assert flaky() == 3
    assert counts == [1, 2, 3]


def test_subflow_run_knows_its_parent_flow_run(backend: str) -> None:
    @flow
    def child() -> str | None:
        return flow_run.parent_flow_run_id

    @flow
    def parent() -> tuple[str | None, str | None]:
        return child(), flow_run.id

    parent_seen_by_child, parent_id = parent()
    assert parent_seen_by_child == parent_id
    assert parent_id is not None


def test_nested_subflows_share_the_root_flow_run_id(backend: str) -> None:
    @flow
    def grandchild() -> tuple[str | None, str | None]:
        return flow_run.root_flow_run_id, flow_run.parent_flow_run_id

    @task
    def middle_task() -> tuple[str | None, str | None]:
        return grandchild()

    @flow
    def child() -> tuple[tuple[str | None, str | None], str | None]:
        return middle_task(), flow_run.id

    @flow
    def root() -> tuple[Any, str | None, str | None]:
        return child(), flow_run.id, flow_run.root_flow_run_id

    ((grandchild_root, grandchild_parent), child_id), root_id, root_root = root()
    assert grandchild_root == root_id == root_root
    assert grandchild_parent == child_id != root_id


def test_scheduled_start_time_is_when_the_run_started(backend: str) -> None:
    @flow
    def main() -> bool:
        return flow_run.scheduled_start_time == flow_run.start_time is not None

    assert main()


@pytest.mark.parametrize(
    ("view", "empty"),
    [(flow_run, FLOW_RUN_EMPTY), (task_run, TASK_RUN_EMPTY)],
    ids=["flow_run", "task_run"],
)
def test_dir_lists_exactly_the_attributes(view: Any, empty: dict[str, Any]) -> None:
    assert dir(view) == sorted(empty) == view.__all__


@pytest.mark.parametrize("view", [flow_run, task_run], ids=["flow_run", "task_run"])
def test_star_import_gives_every_attribute(view: Any) -> None:
    namespace: dict[str, Any] = {}
    exec(f"from {view.__name__} import *", namespace)
    assert sorted(set(namespace) - {"__builtins__"}) == view.__all__


def test_flow_run_attributes_are_empty_again_after_the_run(backend: str) -> None:
    @flow
    def main() -> None:
        pass

    main()
    assert flow_run_view() == FLOW_RUN_EMPTY


# task_run


def test_task_run_describes_the_task_in_its_body(backend: str) -> None:
    @task(tags=["io"])
    def fetch(url: str, retries: int = 0) -> dict[str, Any]:
        return task_run_view()

    @flow
    def main() -> tuple[dict[str, Any], str | None]:
        return fetch("http://x"), flow_run.id

    seen, flow_id = main()
    assert is_uuid(seen.pop("id"))
    assert isinstance(seen.pop("start_time"), datetime)
    assert seen == {
        "name": "fetch-0",
        "task_name": "fetch",
        "parameters": {"url": "http://x", "retries": 0},
        "tags": ["io"],
        "run_count": 1,
        "flow_run_id": flow_id,
        "parent_task_run_id": None,
        "task_inputs": {},
    }


@pytest.mark.anyio
async def test_task_run_describes_an_async_task_in_its_body() -> None:
    @task
    async def fetch(url: str) -> dict[str, Any]:
        await anyio.lowlevel.checkpoint()
        return task_run_view()

    @flow
    async def main() -> tuple[dict[str, Any], str | None]:
        return await fetch("u"), flow_run.id

    seen, flow_id = await main()
    assert (seen["name"], seen["task_name"], seen["parameters"]) == (
        "fetch-0",
        "fetch",
        {"url": "u"},
    )
    assert seen["flow_run_id"] == flow_id
    assert seen["run_count"] == 1


def test_task_run_is_empty_in_a_flow_body(backend: str) -> None:
    @flow
    def main() -> dict[str, Any]:
        return task_run_view()

    assert main() == TASK_RUN_EMPTY


def test_task_run_is_empty_again_after_a_task_returns(backend: str) -> None:
    @task
    def step() -> str | None:
        return task_run.name

    @flow
    def main() -> tuple[str | None, str | None]:
        return step(), task_run.name

    assert main() == ("step-0", None)


def test_task_outside_any_flow_has_no_flow_run(backend: str) -> None:
    @task
    def alone() -> tuple[str | None, str | None, str | None]:
        return task_run.name, task_run.flow_run_id, flow_run.name

    assert alone() == ("alone-0", None, None)


def test_task_called_from_a_task_knows_its_parent(backend: str) -> None:
    @task
    def inner() -> str | None:
        return task_run.parent_task_run_id

    @task
    def outer() -> tuple[str | None, str | None]:
        return inner(), task_run.id

    @flow
    def main() -> tuple[str | None, str | None]:
        return outer()

    parent_seen_by_inner, outer_id = main()
    assert parent_seen_by_inner == outer_id
    assert outer_id is not None


def test_task_run_count_grows_with_retries(backend: str) -> None:
    counts: list[int] = []

    @task(retries=2)
    def flaky() -> None:
        counts.append(task_run.run_count)
        if len(counts) < 3:
            raise ValueError("not yet")

    @flow
    def main() -> None:
        flaky()

    main()
    assert counts == [1, 2, 3]


def test_task_run_parameters_are_a_copy(backend: str) -> None:
    @task
    def step(x: int) -> dict[str, Any]:
        task_run.parameters["x"] = 99
        return task_run.parameters

    @flow
    def main() -> dict[str, Any]:
        return step(1)

    assert main() == {"x": 1}


def test_task_run_tags_join_decorator_and_context(backend: str) -> None:
    @task(tags=["own"])
    def step() -> list[str]:
        return task_run.tags

    @flow
    def main() -> list[str]:
        with tags("ctx"):
            return step()

    assert main() == ["ctx", "own"]


def test_task_run_names_count_per_task_in_a_flow_run(backend: str) -> None:
    @task
    def step() -> str | None:
        return task_run.name

    @task
    def other() -> str | None:
        return task_run.name

    @flow
    def main() -> list[str | None]:
        return [step(), step(), other(), step()]

    assert main() == ["step-0", "step-1", "other-0", "step-2"]


def test_task_inputs_name_the_upstream_runs(backend: str) -> None:
    @task
    def produce() -> int:
        return 1

    @task
    def consume(x: int) -> dict[str, list[str]]:
        return task_run.task_inputs

    @flow
    def main() -> tuple[dict[str, list[str]], str, str]:
        first = produce.submit()
        second = produce.submit()
        # A future where a value goes is resolved at run time; no signature can say so.
        inputs = consume.submit(first, wait_for=[second]).result()  # type: ignore[arg-type, call-arg]
        return inputs, str(first.task_run_id), str(second.task_run_id)

    inputs, first_id, second_id = main()
    assert inputs == {"x": [first_id], "wait_for": [second_id]}


def test_submitted_task_reads_its_own_run(backend: str) -> None:
    @task
    def step(n: int) -> tuple[str | None, dict[str, Any]]:
        return task_run.name, task_run.parameters

    @flow
    def main() -> list[tuple[str | None, dict[str, Any]]]:
        futures = [step.submit(n) for n in range(2)]
        return [f.result() for f in futures]

    assert main() == [("step-0", {"n": 0}), ("step-1", {"n": 1})]


def test_task_in_a_worker_thread_reads_its_own_run(backend: str) -> None:
    # A timeout puts a sync body in a worker thread; the views must follow it there.
    @task(timeout_seconds=30)
    def guarded() -> tuple[str | None, str | None]:
        return task_run.name, flow_run.flow_name

    @flow
    def main() -> tuple[str | None, str | None]:
        return guarded()

    assert main() == ("guarded-0", "main")


@pytest.mark.anyio
async def test_concurrent_async_tasks_each_read_their_own_run() -> None:
    @task
    async def step(n: int) -> tuple[int, str | None]:
        await anyio.lowlevel.checkpoint()
        return task_run.parameters["n"], task_run.name

    @flow
    async def main() -> list[tuple[int, int, str | None]]:
        seen: list[tuple[int, int, str | None]] = []

        async def one(n: int) -> None:
            seen.append((n, *await step(n)))

        async with anyio.create_task_group() as tg:
            for n in range(3):
                tg.start_soon(one, n)
        return seen

    seen = await main()
    assert all(n == read for n, read, _ in seen)
    assert sorted(str(name) for _, _, name in seen) == ["step-0", "step-1", "step-2"]


# Runtime and names


def test_runtime_views_are_empty_outside_runs() -> None:
    assert runtime.flow_run.id is None
    assert runtime.task_run.name is None
    assert runtime.task_run.parameters == {}
    assert runtime.flow_run.tags == []
    with pytest.raises(AttributeError):
        _ = runtime.task_run.no_such_thing


@pytest.mark.every_loop
def test_runtime_views_inside_runs(backend: str) -> None:
    seen: dict[str, Any] = {}

    @task
    def look(x: int) -> None:
        seen.update(
            name=runtime.task_run.name, task=runtime.task_run.task_name,
            params=runtime.task_run.parameters, count=runtime.task_run.run_count,
            flow=runtime.flow_run.flow_name, flow_params=runtime.flow_run.parameters,
        )  # fmt: skip

    @flow
    def watcher(n: int = 2) -> None:
        look(n)

    watcher()
    assert seen == {
        "name": "look-0", "task": "look", "params": {"x": 2}, "count": 1,
        "flow": "watcher", "flow_params": {"n": 2},
    }  # fmt: skip


@pytest.mark.every_loop
def test_task_runs_are_numbered_per_task_per_flow_run(backend: str) -> None:
    seen, stop = recorded_states()

    @flow
    def main() -> None:
        double(1)
        double(2)
        adouble_sync = task(lambda: 1, name="other")
        adouble_sync()

    try:
        main()
        main()
    finally:
        stop()
    created = [name for name, state in seen if state == "Pending" and "-" in name]
    tasks = [n for n in created if n.startswith(("double", "other"))]
    assert tasks == ["double-0", "double-1", "other-0"] * 2


@pytest.mark.every_loop
def test_flow_runs_get_two_word_names(backend: str) -> None:
    @flow
    def main() -> str | None:
        return runtime.flow_run.name

    name = main()
    assert name is not None
    first, second = name.split("-")
    assert first.isalpha()
    assert second.isalpha()
