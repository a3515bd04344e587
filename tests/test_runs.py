"""The run (``_engine/lifecycle/runs.py``): who it is and how it was called, frozen at
creation; where it stands (``Progress``) and the attempt under way (``Attempt``), written
by the lifecycle layer only."""

from __future__ import annotations

from typing import Any

import anyio
import attrs
import pytest

from flowkit import flow, task
from flowkit._engine import events
from flowkit._engine.lifecycle.runs import Attempt, Call, Run, current_run
from flowkit.futures import TaskFuture

pytestmark = pytest.mark.every_loop


def _this_run() -> Run:
    run = current_run.get()
    assert run is not None
    return run


@pytest.mark.anyio
async def test_a_run_cannot_be_changed() -> None:
    @task
    async def rename() -> str:
        run = _this_run()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            run.name = "other"  # type: ignore[misc]
        return run.name

    assert await rename() == "rename-0"


@pytest.mark.anyio
async def test_each_attempt_is_an_attempt_of_its_own() -> None:
    seen: list[Attempt] = []

    @task(retries=2)
    async def flaky() -> int:
        seen.append(_this_run().attempt)
        if len(seen) < 3:
            raise ValueError("not yet")
        return len(seen)

    assert await flaky() == 3
    assert [a.number for a in seen] == [1, 2, 3]
    assert len({id(a) for a in seen}) == 3


@pytest.mark.anyio
async def test_the_children_of_a_failed_attempt_are_not_the_retrys() -> None:
    children: list[int] = []

    @task
    async def child() -> None:
        pass

    @flow(retries=1)
    async def parent() -> None:
        attempt = _this_run().attempt
        child.submit()
        children.append(len(attempt.children))
        if attempt.number == 1:
            raise ValueError("first attempt fails")

    await parent()
    assert children == [1, 1]


@pytest.mark.anyio
async def test_an_attempt_without_a_timeout_has_no_deadline() -> None:
    @task
    async def free() -> float | None:
        return _this_run().attempt.deadline

    assert await free() is None


@pytest.mark.anyio
async def test_a_child_attempt_ends_by_its_parents_deadline() -> None:
    @task(timeout_seconds=3600)
    async def child() -> float | None:
        return _this_run().attempt.deadline

    @flow(timeout_seconds=60)
    async def parent() -> tuple[float | None, float | None]:
        return _this_run().attempt.deadline, await child()

    own, inherited = await parent()
    assert own is not None
    assert inherited == own
    assert own <= anyio.current_time() + 60


@pytest.mark.anyio
async def test_the_body_gets_upstream_values_and_the_run_keeps_the_call_as_made() -> None:
    calls: list[tuple[Any, Any]] = []

    @task
    async def produce() -> int:
        return 7

    @task
    async def consume(x: int) -> int:
        run = _this_run()
        calls.append((run.given.args[0], run.call.args[0]))
        return x

    @flow
    async def pipeline() -> int:
        upstream: Any = produce.submit()
        return await consume.submit(upstream)

    assert await pipeline() == 7
    [(given, called)] = calls
    assert isinstance(given, TaskFuture)
    assert called == 7


def test_a_bound_methods_self_is_an_argument_but_not_a_parameter() -> None:
    class Greeter:
        @task
        def greet(self, name: str) -> str:
            return f"hello {name}"

    definition = Greeter.__dict__["greet"]
    me = Greeter()
    call = Call(definition, 1, (me, "ann"), {})
    assert call.arguments == {"self": me, "name": "ann"}
    assert call.parameters == {"name": "ann"}
    assert call.body() == "hello ann"


def test_the_state_that_ends_an_attempt_says_who_ran_it(backend: str) -> None:
    seen: list[tuple[str, str | None]] = []

    @task(retries=1)
    def work() -> int:
        if _this_run().attempt.number == 1:
            raise ValueError("first attempt fails")
        return 1

    @flow
    def main() -> int:
        return work.submit().result()

    def sink(event: events.Event) -> None:
        if isinstance(event, events.StateChanged) and event.run.name == "work-0":
            seen.append((event.state.name, event.worker))

    stop = events.subscribe(sink)
    try:
        assert main() == 1
    finally:
        stop()
    assert seen == [
        ("Pending", None),
        ("Running", None),
        ("AwaitingRetry", "thread"),
        ("Retrying", None),
        ("Completed", "thread"),
    ]
