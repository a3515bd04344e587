"""flowkit.testing: the test harness, virtual time, run assertions and the pytest plugin."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import threading
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowkit import flow, task
from flowkit.store import Store, disable, is_enabled
from flowkit.tasks import task_input_hash
from flowkit.testing import (
    VirtualClock,
    assert_run,
    flowkit_test_harness,
    prefect_test_harness,
    virtual_clock,
)
from flowkit.testing.clock import VirtualLoop

# The harness


def test_harness_gives_a_fresh_home_and_restores_the_old_one(flowkit_home: Path) -> None:
    with flowkit_test_harness() as home:
        assert os.environ["FLOWKIT_HOME"] == str(home) != str(flowkit_home)
        assert home.is_dir()
    assert os.environ["FLOWKIT_HOME"] == str(flowkit_home)
    assert not home.exists()  # a temporary home is deleted


def test_harness_keeps_a_home_it_was_given(tmp_path: Path) -> None:
    with flowkit_test_harness(tmp_path / "mine") as home:
        assert home == (tmp_path / "mine").resolve()
        (home / "made-by-a-run").mkdir(parents=True)
    assert home.is_dir()


def test_harnesses_nest(flowkit_home: Path) -> None:
    with flowkit_test_harness() as outer:
        with flowkit_test_harness() as inner:
            assert os.environ["FLOWKIT_HOME"] == str(inner)
        assert os.environ["FLOWKIT_HOME"] == str(outer)
    assert os.environ["FLOWKIT_HOME"] == str(flowkit_home)


def test_harness_restores_an_unset_home(monkeypatch: pytest.MonkeyPatch) -> None:
    with flowkit_test_harness():
        monkeypatch.delenv("FLOWKIT_HOME")  # as if no harness had been open before
        with flowkit_test_harness():
            pass
    assert "FLOWKIT_HOME" in os.environ  # monkeypatch's own restore comes later


def test_harnesses_in_threads_restore_the_home(flowkit_home: Path) -> None:
    barrier = threading.Barrier(4)

    def use() -> None:
        with flowkit_test_harness():
            barrier.wait(5)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert os.environ["FLOWKIT_HOME"] == str(flowkit_home)


@flow
def greet(name: str) -> str:
    return f"hello {name}"


def test_runs_in_the_harness_are_recorded_in_its_home(backend: str) -> None:
    with flowkit_test_harness() as home:
        greet("ada")
        with Store.open(home / "runs.db") as store:
            assert [r.definition for r in store.flow_runs()] == ["greet"]


def test_harness_undoes_store_switches() -> None:
    assert is_enabled()
    with flowkit_test_harness():
        disable()
        assert not is_enabled()
    assert is_enabled()


def test_prefect_test_harness_is_the_same_harness() -> None:
    assert prefect_test_harness is flowkit_test_harness


# Virtual time


@pytest.mark.anyio
async def test_retry_delays_pass_in_virtual_time(
    anyio_backend: str, virtual_clock: VirtualClock
) -> None:
    attempts: list[float] = []

    @task(retries=3, retry_delay_seconds=60)
    async def flaky() -> str:
        attempts.append(anyio.current_time())
        if len(attempts) < 4:
            raise ConnectionError("try again")
        return "done"

    @flow
    async def pipeline() -> str:
        return await flaky()

    assert await pipeline() == "done"
    assert attempts == pytest.approx([0, 60, 120, 180])
    assert virtual_clock.time() == pytest.approx(180)


@pytest.mark.anyio
async def test_async_deadlines_pass_in_virtual_time(
    anyio_backend: str, virtual_clock: VirtualClock
) -> None:
    @task(timeout_seconds=3600)
    async def slow() -> None:
        await anyio.sleep(7200)

    state = await slow(return_state=True)
    assert state.name == "TimedOut"
    assert virtual_clock.time() == pytest.approx(3600)


def test_sync_flows_retry_in_virtual_time(backend: str, virtual_clock: VirtualClock) -> None:
    calls: list[int] = []

    @task(retries=2, retry_delay_seconds=[30, 90])
    def fetch() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("try again")
        return len(calls)

    @flow
    def pipeline() -> int:
        return fetch()

    assert pipeline() == 3
    assert virtual_clock.time() == pytest.approx(120)


def test_a_sync_flow_asking_for_uvloop_runs_on_the_virtual_loop(
    virtual_clock: VirtualClock,
) -> None:
    @task
    async def nap() -> bool:
        await anyio.sleep(600)
        return isinstance(asyncio.get_running_loop(), VirtualLoop)

    @flow(backend="asyncio+uvloop")
    def pipeline() -> bool:
        return nap()

    assert pipeline() is True  # uvloop's time cannot be virtual: the clock's loop runs it
    assert virtual_clock.time() == pytest.approx(600)


def test_cache_expiry_follows_virtual_time(backend: str, virtual_clock: VirtualClock) -> None:
    calls: list[int] = []

    @task(cache_key_fn=task_input_hash, cache_expiration=timedelta(hours=1))
    def fetch(x: int) -> int:
        calls.append(x)
        return x

    @flow
    def pipeline() -> int:
        return fetch(1)

    pipeline()
    virtual_clock.advance(59 * 60)
    pipeline()
    assert calls == [1]
    virtual_clock.advance(60)
    pipeline()
    assert calls == [1, 1]


def test_a_sync_body_keeps_its_deadline_in_real_time(
    backend: str, virtual_clock: VirtualClock
) -> None:
    release = threading.Event()

    @task(timeout_seconds=30)
    def quick() -> int:
        return 1

    @task(timeout_seconds=0.05)
    def stuck() -> None:
        release.wait(10)

    @flow
    def pipeline() -> tuple[str, str]:
        return quick(return_state=True).name, stuck(return_state=True).name

    try:
        assert pipeline() == ("Completed", "TimedOut")
    finally:
        release.set()


def test_advance_refuses_to_go_back() -> None:
    with pytest.raises(ValueError, match="only moves forward"):
        VirtualClock().advance(-1)


@pytest.mark.anyio
async def test_virtual_clock_refuses_a_loop_with_real_time(anyio_backend: str) -> None:
    with pytest.raises(RuntimeError, match="real time"), virtual_clock():
        pass


@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_clock_runs_async_code_outside_pytest_fixtures(loop: str) -> None:
    @task(retries=1, retry_delay_seconds=600)
    async def once() -> float:
        if anyio.current_time() < 600:
            raise ConnectionError("try again")
        return anyio.current_time()

    clock = VirtualClock()
    assert clock.run(once, backend=loop) == pytest.approx(600)  # type: ignore[arg-type]


def test_clock_now_is_its_start_plus_its_time() -> None:
    clock = VirtualClock()
    start = clock.now()
    clock.advance(90)
    assert clock.now() - start == timedelta(seconds=90)


# Assertions on runs


@task(retries=2, retry_delay_seconds=0)
def flaky_fetch(x: int, failures: list[int]) -> int:
    if len(failures) < 2:
        failures.append(x)
        raise ConnectionError("try again")
    return x


@task(cache_key_fn=task_input_hash)
def cached_square(x: int) -> int:
    return x * x


@flow
def tree() -> int:
    failures: list[int] = []
    return flaky_fetch(2, failures) + cached_square(3) + cached_square(3)


def test_assert_run_checks_a_recorded_tree(backend: str) -> None:
    state = tree(return_state=True)
    (
        assert_run(state)
        .completed()
        .has_task_run("flaky_fetch", count=1, state="Completed")
        .retried("flaky_fetch", times=2)
        .has_task_run("cached_square", count=2)
    )
    assert_run("tree").completed()


def test_assert_run_failures_print_the_tree(backend: str) -> None:
    state = tree(return_state=True)
    with pytest.raises(AssertionError) as raised:
        assert_run(state).cached("cached_square")
    message = str(raised.value)
    assert "cached_square-0 ended Completed" in message
    assert "  flaky_fetch-0 (task 'flaky_fetch'): Completed, 3 attempts" in message


def test_assert_run_sees_cached_runs(backend: str) -> None:
    tree()
    with pytest.raises(AssertionError, match="expected 3 run"):
        assert_run(tree(return_state=True)).cached("cached_square").has_task_run(
            "cached_square", count=3
        )


def test_assert_run_says_when_nothing_was_recorded() -> None:
    with pytest.raises(AssertionError, match="no recorded run for 'nowhere'"):
        assert_run("nowhere")


# The pytest plugin, run by pytest itself

EXAMPLE = """
import os
import anyio
import pytest
from flowkit import flow, task
from flowkit.testing import assert_run

@task(retries=3, retry_delay_seconds=60)
async def flaky(attempts):
    attempts.append(anyio.current_time())
    if len(attempts) < 4:
        raise ConnectionError("again")
    return len(attempts)

@flow
async def pipeline():
    return await flaky([])

@flow
def hello():
    return "hello"

@pytest.mark.anyio
@pytest.mark.flowkit_backends
async def test_virtual(virtual_clock, anyio_backend):
    assert await pipeline() == 4
    assert virtual_clock.time() == 180

@pytest.mark.flowkit_backends
def test_sync(flowkit_store, flowkit_backend):
    assert os.environ["FLOWKIT_BACKEND"] == flowkit_backend
    assert hello() == "hello"
    assert [r.definition for r in flowkit_store.flow_runs()] == ["hello"]
    assert_run("hello").completed()

def test_home(flowkit_home):
    assert os.environ["FLOWKIT_HOME"] == str(flowkit_home)
"""


def test_plugin_fixtures_and_marker_work_in_a_real_pytest_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(EXAMPLE)
    result = pytester.runpytest("-p", "anyio", "-W", "error")
    result.assert_outcomes(passed=7)


def test_plugin_names_each_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(EXAMPLE)
    result = pytester.runpytest("-p", "anyio", "-v")
    result.stdout.fnmatch_lines(
        [
            "*test_virtual?asyncio? PASSED*",
            "*test_virtual?trio? PASSED*",
            "*test_virtual?asyncio+uvloop? PASSED*",
            "*test_sync?asyncio? PASSED*",
            "*test_sync?trio? PASSED*",
            "*test_sync?asyncio+uvloop? PASSED*",
        ]
    )


def test_plugin_runs_no_uvloop_variant_without_uvloop(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # not installed
    pytester.makepyfile(EXAMPLE)
    result = pytester.runpytest("-p", "anyio", "-v")
    result.assert_outcomes(passed=5)
    assert "asyncio+uvloop" not in result.stdout.str()


def test_plugin_refuses_a_virtual_clock_on_a_real_loop(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        async def resource():
            yield 1

        @pytest.mark.anyio
        async def test_it(resource, virtual_clock):
            pass
        """
    )
    result = pytester.runpytest("-p", "anyio")
    assert "passed" not in result.parseoutcomes()  # an error or a failure, by backend
    result.stdout.fnmatch_lines(["*RuntimeError: *loop with real time*"])


@given(st.lists(st.floats(min_value=0, max_value=1e6), max_size=20))
def test_clock_time_is_the_sum_of_its_advances(steps: list[float]) -> None:
    clock = VirtualClock()
    start = clock.now()
    for step in steps:
        clock.advance(step)
    assert clock.time() == pytest.approx(math.fsum(steps))
    assert (clock.now() - start).total_seconds() == pytest.approx(math.fsum(steps), abs=1e-5)


def test_harness_works_in_unittest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os
        import unittest

        from flowkit import flow
        from flowkit.store import Store
        from flowkit.testing import flowkit_test_harness

        @flow
        def hello():
            return "hello"

        class HelloTest(unittest.TestCase):
            def setUp(self):
                harness = flowkit_test_harness()
                self.home = harness.__enter__()
                self.addCleanup(harness.__exit__, None, None, None)

            def test_hello(self):
                self.assertEqual(hello(), "hello")
                with Store.open(self.home / "runs.db") as store:
                    self.assertEqual(len(store.flow_runs()), 1)
                self.assertEqual(os.environ["FLOWKIT_HOME"], str(self.home))
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
