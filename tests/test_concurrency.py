"""Submit, map and futures; the flow as a structured scope (both backends)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from shared_tasks import adouble, boom, double

import flowkit
from flowkit import allow_failure, flow, quote, runtime, task, unmapped
from flowkit.exceptions import FutureDeadlockError, MissingContextError, UpstreamFailedError
from flowkit.futures import TaskFuture, as_completed_async, wait_async

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)


def test_submit_returns_a_future_at_once(backend: str) -> None:
    release = threading.Event()

    @task
    def blocked() -> int:
        release.wait(5)
        return 1

    @flow
    def main() -> tuple[bool, int]:
        future = blocked.submit()
        was_done = future.done()
        release.set()
        return was_done, future.result()

    assert main() == (False, 1)


def test_submitted_sync_runs_overlap(backend: str) -> None:
    barrier = threading.Barrier(4, timeout=5)

    @task
    def meet(i: int) -> int:
        barrier.wait()  # only returns once all four run at once
        return i

    @flow
    def main() -> list[int]:
        return [f.result() for f in [meet.submit(i) for i in range(4)]]

    assert main() == [0, 1, 2, 3]


@pytest.mark.anyio
async def test_submitted_async_runs_overlap_and_are_awaited() -> None:
    arrived = 0
    everyone = anyio.Event()

    @task
    async def meet(i: int) -> int:
        nonlocal arrived
        arrived += 1
        if arrived == 3:
            everyone.set()
        await everyone.wait()
        return i

    @flow
    async def main() -> list[int]:
        futures = [meet.submit(i) for i in range(3)]
        return [await f for f in futures]

    assert await main() == [0, 1, 2]


def test_submit_inside_a_task(backend: str) -> None:
    @task
    def fan_out(n: int) -> list[int]:
        return [f.result() for f in [double.submit(i) for i in range(n)]]

    @flow
    def main() -> list[int]:
        return fan_out(3)

    assert main() == [0, 2, 4]


def test_submit_outside_a_flow_names_the_task() -> None:
    with pytest.raises(MissingContextError, match=r"task 'double'.*need a running flow"):
        double.submit(1)


def test_future_attributes(backend: str) -> None:
    @flow
    def main() -> tuple[Any, ...]:
        future = double.submit(4)
        value = future.result()
        details = future.state.state_details
        return future.task_run_id, details.task_run_id, future.state.name, value, future.done()

    run_id, same_id, state, value, done = main()
    assert run_id == same_id
    assert (state, value, done) == ("Completed", 8, True)


@pytest.mark.anyio
async def test_wait_async_gives_the_final_state() -> None:
    @flow
    async def main() -> str:
        state = await boom.submit("x").wait_async()
        return state.name

    assert await main() == "Failed"


def test_result_raise_on_failure_false_returns_the_exception(backend: str) -> None:
    @flow
    def main() -> Any:
        return boom.submit("bad").result(raise_on_failure=False)

    assert isinstance(main(), ValueError)


def test_result_timeout_raises_timeout_error(backend: str) -> None:
    release = threading.Event()

    @task
    def blocked() -> None:
        release.wait(5)

    @flow
    def main() -> None:
        future = blocked.submit()
        try:
            with pytest.raises(TimeoutError, match="blocked-0"):
                future.result(timeout=0.01)
        finally:
            release.set()

    main()


@pytest.mark.anyio
async def test_blocking_result_on_the_loop_thread_is_refused() -> None:
    @task
    async def slow() -> int:
        await anyio.sleep(0.05)
        return 1

    @flow
    async def main() -> int:
        future = slow.submit()
        with pytest.raises(FutureDeadlockError, match="await future"):
            future.result()
        return await future

    assert await main() == 1


def test_done_callbacks_run_once_and_their_errors_are_logged(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def bad(future: TaskFuture[int]) -> None:
        raise RuntimeError("callback broke")

    @flow
    def main() -> None:
        future = double.submit(1)
        future.add_done_callback(lambda f: calls.append(f.state.name))
        future.add_done_callback(bad)
        future.result()
        future.add_done_callback(lambda f: calls.append("late"))

    main()
    assert calls == ["Completed", "late"]
    assert any("A done callback of task run 'double-0' raised" in r.message for r in caplog.records)


@pytest.mark.anyio
async def test_cancel_one_future_ends_that_run_cancelled() -> None:
    @task
    async def forever() -> None:
        await anyio.sleep_forever()

    @flow
    async def main() -> tuple[str, int]:
        stuck, fine = forever.submit(), adouble.submit(2)
        await anyio.sleep(0.01)
        assert stuck.cancel()
        state = await stuck.wait_async()
        return state.name, await fine

    assert await main() == ("Cancelled", 4)


# Map, arguments, dependencies


def test_map_submits_one_run_per_element(backend: str) -> None:
    @task
    def add(x: int, y: int) -> int:
        return x + y

    @flow
    def main() -> list[int]:
        return add.map([1, 2, 3], unmapped(10)).result()

    assert main() == [11, 12, 13]


def test_map_refuses_bad_shapes(backend: str) -> None:
    @task
    def add(x: int, y: int) -> int:
        return x + y

    @flow
    def main() -> None:
        with pytest.raises(ValueError, match=r"task 'add'.*different lengths"):
            add.map([1, 2], [1])
        with pytest.raises(ValueError, match=r"task 'add'.*at least one iterable"):
            add.map(1, 2)

    main()


def test_futures_in_arguments_are_resolved(backend: str) -> None:
    @task
    def total(values: list[int], extra: dict[str, int]) -> int:
        return sum(values) + sum(extra.values())

    @flow
    def main() -> int:
        a, b = double.submit(1), double.submit(2)
        return total.submit([a, b], {"c": double.submit(3)}).result()

    assert main() == 12


def test_quote_passes_values_as_they_are(backend: str) -> None:
    @task
    def kind(value: Any) -> str:
        return type(value[0]).__name__

    @flow
    def main() -> str:
        return kind(quote([double.submit(1)]))

    assert main() == "TaskFuture"


def test_wait_for_orders_runs_without_passing_data(backend: str) -> None:
    order: list[str] = []

    @task
    def first() -> None:
        time.sleep(0.02)
        order.append("first")

    @task
    def second() -> None:
        order.append("second")

    @flow
    def main() -> dict[str, list[str]]:
        upstream = first.submit()
        inputs: dict[str, list[str]] = {}

        @task
        def third() -> None:
            inputs.update(runtime.task_run.task_inputs)
            order.append("third")

        second.submit(wait_for=[upstream]).result()
        third.submit(wait_for=[upstream]).result()
        inputs["upstream"] = [str(upstream.task_run_id)]
        return inputs

    inputs = main()
    assert order == ["first", "second", "third"]
    assert inputs["wait_for"] == inputs["upstream"]


def test_failed_upstream_stops_the_downstream_run(backend: str) -> None:
    seen: list[Any] = []

    @flow
    def main() -> None:
        downstream = double.submit(boom.submit("up"))
        downstream.wait()
        seen.append(downstream.state)  # returned, the state would fail the flow

    main()
    [state] = seen
    assert state.name == "NotReady"
    assert isinstance(state.exception, UpstreamFailedError)
    assert "boom-0" in str(state.exception)
    assert isinstance(state.exception.__cause__, ValueError)


def test_allow_failure_runs_the_downstream_with_the_exception(backend: str) -> None:
    @task
    def describe(value: Any) -> str:
        return type(value).__name__

    @flow
    def main() -> str:
        return describe.submit(allow_failure(boom.submit("up"))).result()

    assert main() == "ValueError"


def test_task_inputs_record_upstream_runs_by_parameter(backend: str) -> None:
    @task
    def record(x: int) -> dict[str, list[str]]:
        return runtime.task_run.task_inputs

    @flow
    def main() -> tuple[str, dict[str, list[str]]]:
        upstream = double.submit(1)
        return str(upstream.task_run_id), record.submit(upstream).result()

    upstream_id, inputs = main()
    assert inputs == {"x": [upstream_id]}


# The flow is a structured scope


def test_flow_returns_after_every_submitted_run(backend: str) -> None:
    finished: list[int] = []

    @task
    def slow(i: int) -> None:
        time.sleep(0.02)
        finished.append(i)

    @flow
    def main() -> None:
        for i in range(3):
            slow.submit(i)

    main()
    assert sorted(finished) == [0, 1, 2]


def test_an_unobserved_failure_fails_the_flow(backend: str) -> None:
    @flow
    def main() -> int:
        boom.submit("nobody looked")
        return 1

    with pytest.raises(ValueError, match="nobody looked"):
        main()
    assert main(return_state=True).message.startswith("1 of 1 submitted task runs failed")


def test_several_unobserved_failures_raise_a_group_naming_the_flow(backend: str) -> None:
    @flow
    def several() -> None:
        boom.submit("a")
        boom.submit("b")
        double.submit(1)

    with pytest.raises(ExceptionGroup, match="flow 'several': 2 task runs failed") as raised:
        several()
    assert sorted(str(e) for e in raised.value.exceptions) == ["a", "b"]


def test_allow_failure_marks_a_failure_as_seen(backend: str) -> None:
    @flow
    def main() -> int:
        allow_failure(boom.submit("fine"))
        return 1

    assert main() == 1


@pytest.mark.anyio
async def test_wait_and_as_completed_async_forms() -> None:
    @flow
    async def main() -> list[int]:
        futures = [adouble.submit(i) for i in range(3)]
        await wait_async(futures)
        assert all(f.done() for f in futures)
        return sorted([await f async for f in as_completed_async(futures)])

    assert await main() == [0, 2, 4]


def test_wait_and_as_completed(backend: str) -> None:
    @flow
    def main() -> tuple[int, int, list[int]]:
        futures = [double.submit(i) for i in range(3)]
        done, not_done = flowkit.wait(futures, timeout=5)
        finished = sorted(f.result() for f in flowkit.as_completed(futures, timeout=5))
        return len(done), len(not_done), finished

    assert main() == (3, 0, [0, 2, 4])


# Bounded concurrency


def test_max_concurrency_bounds_runs_in_flight(backend: str) -> None:
    lock = threading.Lock()
    running = peak = 0

    @task
    def tracked(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return i

    @flow(max_concurrency=2)
    def main() -> list[int]:
        return [f.result() for f in [tracked.submit(i) for i in range(8)]]

    assert main() == list(range(8))
    assert 1 <= peak <= 2


@pytest.mark.parametrize("limit", [1, 2])
def test_nested_submit_and_wait_never_deadlocks(backend: str, limit: int) -> None:
    @task
    def leaf(x: int) -> int:
        return x

    @task
    def middle(x: int) -> int:
        return sum(f.result() for f in [leaf.submit(x * 10 + i) for i in range(2)])

    @task
    def top(x: int) -> int:
        return sum(f.result() for f in [middle.submit(x * 10 + i) for i in range(2)])

    @flow(thread_limit=limit)
    def main() -> int:
        return sum(f.result() for f in [top.submit(i) for i in range(2)])

    # middle(m) = 20m + 1; top(x) = 400x + 22
    assert main() == 22 + 422


# Sync runs beyond the threads wait in the flow's backlog, not as tasks


@pytest.mark.anyio
async def test_sync_runs_waiting_for_threads_hold_no_tasks() -> None:
    release = threading.Event()

    @task
    def held(i: int) -> int:
        release.wait(5)
        return i

    @flow(thread_limit=2)
    async def main() -> tuple[int, list[int]]:
        futures = [held.submit(i) for i in range(200)]
        await anyio.sleep(0.05)
        tasks = len(anyio.get_running_tasks())
        release.set()
        return tasks, [await f for f in futures]

    tasks, values = await main()
    assert values == list(range(200))
    assert tasks < 20  # two runs in threads, two waiting for one; not two hundred


def test_runs_from_threads_start_in_submission_order(backend: str) -> None:
    order: list[int] = []

    @task
    def record(i: int) -> int:
        order.append(i)
        return i

    @flow(thread_limit=1)
    def main() -> list[int]:
        return [f.result() for f in record.map(range(50))]

    assert main() == list(range(50))
    assert order == list(range(50))


@pytest.mark.anyio
async def test_cancelling_a_run_in_the_backlog_ends_it_at_once() -> None:
    release = threading.Event()

    @task
    def held(i: int) -> int:
        release.wait(5)
        return i

    @flow(thread_limit=1)
    async def main() -> tuple[str, bool, list[int]]:
        futures = [held.submit(i) for i in range(10)]
        await anyio.sleep(0.05)
        last = futures[-1]
        assert last.cancel()
        state = await last.wait_async()  # it never waits for the runs before it
        was_held = not futures[0].done()
        release.set()
        return state.name, was_held, [await f for f in futures[:-1]]

    assert await main() == ("Cancelled", True, list(range(9)))


def test_chains_through_the_backlog_finish(backend: str) -> None:
    @task
    def step(x: int) -> int:
        return x + 1

    @flow(thread_limit=1)
    def main() -> list[int]:
        firsts = step.map(range(30))
        seconds = step.map(firsts)
        return [f.result() for f in step.map(seconds)]

    assert main() == [i + 3 for i in range(30)]


def test_bad_thread_limit_variable_is_refused(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWKIT_THREAD_LIMIT", "lots")

    @flow
    def main() -> None: ...

    with pytest.raises(ValueError, match="FLOWKIT_THREAD_LIMIT='lots'"):
        main()


def test_ten_thousand_submitted_runs_complete(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWKIT_STORE", "off")
    logger = logging.getLogger("flowkit")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:

        @task
        async def one(i: int) -> int:
            return i

        @flow
        def main() -> int:
            return len(one.map(range(10_000)).result())

        assert main() == 10_000
    finally:
        logger.setLevel(level)


# The reference page's concurrent example, against a local server


def test_page_example_fetches_concurrently(backend: str, local_http: Any) -> None:
    barrier = threading.Barrier(3, timeout=5)

    def respond(path: str) -> bytes:
        barrier.wait()  # answers only once three requests are in at once
        return b'{"page": "%s"}' % path.encode()

    api, seen = local_http(respond)

    @task
    def get_url(url: str, params: dict[str, Any] | None = None) -> Any:
        return httpx.get(url, params=params).json()

    @flow
    def get_open_issues() -> list[Any]:
        pages = [get_url.submit(f"{api}/issues", params={"page": p}) for p in (1, 2, 3)]
        return [p.result() for p in pages]

    results = get_open_issues()
    assert [r["page"] for r in results] == [f"/issues?page={p}" for p in (1, 2, 3)]
    assert len(seen) == 3
