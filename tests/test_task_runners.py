"""Task runners: threads (the default), worker processes; the contract stays the same."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from shared_tasks import runtime_seen_on

from flowkit import TaskFuture, flow, task
from flowkit.cache_policies import INPUTS
from flowkit.exceptions import TaskTimeoutError, WorkerCrashedError
from flowkit.logging import get_run_logger
from flowkit.store import Store
from flowkit.task_runners import (
    ConcurrentTaskRunner,
    ProcessPoolTaskRunner,
    TaskRunner,
    ThreadPoolTaskRunner,
)

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)

PROCESSES = ProcessPoolTaskRunner(max_workers=2)


@task
def pid() -> int:
    return os.getpid()


@task
def square(x: int) -> int:
    return x * x


@task
async def async_square(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x * x


@task
def boom(x: int) -> int:
    raise ValueError(f"bad {x}")


def _alive(process_id: int) -> bool:
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return False
    return True


def _gone(process_id: int) -> bool:
    """Whether the process ended (a zombie not yet reaped counts as ended)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not _alive(process_id):
            return True
        try:
            with open(f"/proc/{process_id}/stat") as stat:
                if stat.read().split(") ")[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


# Threads ------------------------------------------------------------------------------


def test_concurrent_task_runner_is_the_thread_pool_runner() -> None:
    assert ConcurrentTaskRunner is ThreadPoolTaskRunner
    assert isinstance(ThreadPoolTaskRunner(), TaskRunner)


def test_thread_pool_max_workers_bounds_sync_bodies_at_once(backend: str) -> None:
    lock = threading.Lock()
    running = [0, 0]  # now, most

    @task
    def busy(_: int) -> None:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def fan_out() -> None:
        busy.map(range(8)).wait()

    fan_out()
    assert running[1] == 2


def test_thread_pool_max_workers_is_the_flow_thread_limit() -> None:
    @flow
    def f() -> None:
        pass

    assert f.with_options(task_runner=ThreadPoolTaskRunner(max_workers=3)).policy.thread_limit == 3
    with pytest.raises(ValueError, match=r"flow 'f': thread_limit=2 and task_runner=.*give only"):
        f.with_options(thread_limit=2, task_runner=ThreadPoolTaskRunner(max_workers=3))


def test_task_runner_must_be_an_instance() -> None:
    with pytest.raises(TypeError, match=r"flow 'f'.*class ThreadPoolTaskRunner; write Thread"):

        @flow(task_runner=ThreadPoolTaskRunner)  # type: ignore[arg-type]
        def f() -> None:
            pass


def test_a_task_takes_no_task_runner() -> None:
    with pytest.raises(TypeError, match="task_runner"):

        @task(task_runner=PROCESSES)  # type: ignore[call-arg]
        def t() -> None:
            pass


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_max_workers_is_checked(bad: object) -> None:
    with pytest.raises((TypeError, ValueError), match="max_workers"):
        ProcessPoolTaskRunner(max_workers=bad)  # type: ignore[arg-type]


# Processes ----------------------------------------------------------------------------


def test_process_pool_runs_submitted_bodies_in_worker_processes(backend: str) -> None:
    @flow(task_runner=PROCESSES)
    def where() -> tuple[list[int], int, int]:
        squares = [f.result() for f in square.map(range(5))]
        return squares, pid.submit().result(), pid()

    squares, submitted, called = where()
    assert squares == [0, 1, 4, 9, 16]
    assert submitted != os.getpid()
    assert called == os.getpid()  # a plain call runs in the flow's process


@pytest.mark.anyio
async def test_process_pool_runs_async_bodies_from_an_async_flow() -> None:
    @flow(task_runner=PROCESSES)
    async def gather() -> list[int]:
        return [await f for f in async_square.map([2, 3])]

    assert await gather() == [4, 9]


def test_a_failure_in_a_worker_fails_the_run_with_its_exception(backend: str) -> None:
    @flow(task_runner=PROCESSES)
    def failing() -> None:
        future = boom.submit(3)
        future.wait()
        state = future.state
        assert state.is_failed()
        with pytest.raises(ValueError, match="bad 3") as caught:
            state.result()
        assert any("worker process" in note for note in caught.value.__notes__)

    failing()


def test_retries_run_again_in_a_worker(backend: str, tmp_path: Path) -> None:
    tries = tmp_path / "tries"

    @task(retries=2)
    def flaky(path: Path) -> int:
        with path.open("a") as f:
            f.write("x")
        if len(path.read_text()) < 3:
            raise RuntimeError("not yet")
        return len(path.read_text())

    @flow(task_runner=PROCESSES)
    def retrying() -> int:
        return flaky.submit(tries).result()

    assert retrying() == 3


@task(timeout_seconds=0.5)
def spin(path: Path) -> None:
    path.write_text(str(os.getpid()))
    while True:  # pure Python: only killing the process stops it
        pass


def test_a_timeout_kills_cpu_bound_work(backend: str, tmp_path: Path) -> None:
    marker = tmp_path / "pid"

    @flow(task_runner=PROCESSES)
    def spinning() -> None:
        assert square.submit(2).result() == 4  # a worker is up: the body starts in time
        future = spin.submit(marker)
        future.wait()
        state = future.state
        assert state.name == "TimedOut"
        with pytest.raises(TaskTimeoutError, match=r"'spin-0' exceeded its timeout of 0.5 s"):
            state.result()

    spinning()  # the body never ends: only stopping its worker lets the flow return
    assert _gone(int(marker.read_text()))


@task(retries=1)
def die_once(path: Path) -> int:
    if not path.exists():
        path.write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)
    return 7


@task
def die(_: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


def test_a_killed_worker_crashes_its_run(backend: str) -> None:
    @flow(task_runner=PROCESSES)
    def crashing() -> None:
        future = die.submit(1)
        future.wait()
        state = future.state
        assert state.is_crashed()
        with pytest.raises(WorkerCrashedError, match=r"'die-0'.*died before it replied"):
            state.result()
        assert square.submit(4).result() == 16  # a new worker takes its place

    crashing()


def test_a_run_whose_worker_died_is_retried(backend: str, tmp_path: Path) -> None:
    @flow(task_runner=PROCESSES)
    def recovering() -> int:
        return die_once.submit(tmp_path / "marker").result()

    assert recovering() == 7


def test_the_store_records_the_worker_process_of_each_attempt(backend: str, tmp_path: Path) -> None:
    @flow(task_runner=PROCESSES)
    def recorded() -> tuple[int, int]:
        died = die_once.submit(tmp_path / "marker")
        return pid.submit().result(), died.result()

    worker_pid, _ = recorded()
    with Store.open() as store:
        (ran,) = [s.worker for s in store.states("pid-0") if s.worker is not None]
        attempts = [(s.name, s.worker) for s in store.states("die_once-0")]
    assert worker_pid != os.getpid()
    assert ran == f"process {worker_pid}"
    ended = [(name, worker) for name, worker in attempts if worker is not None]
    assert [name for name, _ in ended] == ["AwaitingRetry", "Completed"]
    (_, died), (_, retried) = ended
    assert died is not None
    assert retried is not None
    assert died.startswith("process ")  # the crashed worker, named by the pool
    assert retried.startswith("process ")
    assert died != retried  # the retry ran in the worker that replaced it


@task
def sleeper(path: Path) -> None:
    path.write_text(str(os.getpid()))
    time.sleep(60)


@pytest.mark.anyio
async def test_cancelling_the_flow_kills_its_work(tmp_path: Path) -> None:
    marker = tmp_path / "pid"

    @flow(task_runner=PROCESSES)
    async def waiting() -> None:
        await sleeper.submit(marker)

    with anyio.move_on_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiting)
            while not marker.exists():  # noqa: ASYNC110  # written by another process
                await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    assert _gone(int(marker.read_text()))


@task(log_prints=True)
def chatty(x: int) -> int:
    get_run_logger().info("working on %d", x)
    print(f"printed {x}")
    return x


def test_logs_and_prints_from_a_worker_reach_the_flow_tagged_with_their_run(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")

    @flow(task_runner=PROCESSES)
    def talking() -> int:
        return chatty.submit(5).result()

    assert talking() == 5
    found = {r.getMessage(): r for r in caplog.records if r.name == "flowkit.task_runs"}
    for message in ("working on 5", "printed 5"):
        assert getattr(found[message], "task_run_name", None) == "chatty-0"
        assert getattr(found[message], "flow_name", None) == "talking"


def test_an_argument_that_cannot_be_pickled_is_refused_at_submit(backend: str) -> None:
    @flow(task_runner=PROCESSES)
    def sending() -> None:
        with pytest.raises(TypeError, match=r"task 'square': cannot send .* process worker"):
            square.submit(threading.Lock())  # type: ignore[arg-type]

    sending()


def test_a_result_that_cannot_be_pickled_fails_the_run(backend: str) -> None:
    @task
    def lock() -> threading.Lock:
        return threading.Lock()

    @flow(task_runner=PROCESSES)
    def returning() -> None:
        with pytest.raises(TypeError, match=r"'lock-0': its result cannot be sent back"):
            lock.submit().result()

    returning()


def test_cache_keys_are_computed_by_the_flow_across_runners(backend: str) -> None:
    @task(cache_policy=INPUTS, persist_result=True)
    def cached(x: int) -> int:
        return os.getpid() + x

    @flow(task_runner=PROCESSES)
    def in_processes() -> int:
        return cached.submit(1).result()

    @flow
    def in_threads() -> tuple[int, bool]:
        future = cached.submit(1)
        future.wait()
        state = future.state
        return state.result(), state.name == "Cached"

    first = in_processes()
    assert first != os.getpid() + 1
    assert in_threads() == (first, True)


def test_upstream_futures_are_resolved_before_the_body_travels(backend: str) -> None:
    @flow(task_runner=PROCESSES)
    def chained() -> int:
        return square.submit(square.submit(3)).result()

    assert chained() == 81


# Bodies queued on a busy worker --------------------------------------------------------

ONE_WORKER = ProcessPoolTaskRunner(max_workers=1)  # its second body waits on the worker


@task
def hold(directory: Path) -> int:
    (directory / "held").write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not (directory / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


@task
def touch(path: Path) -> int:
    path.write_text("ran")
    return os.getpid()


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def _wait_until_sent(future: TaskFuture[Any]) -> None:
    """Until the run is Running: from there it reaches its worker without a pause."""
    deadline = time.monotonic() + 60
    while not future.state.is_running() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_bodies_queued_on_a_worker_all_run(backend: str) -> None:
    @flow(task_runner=ONE_WORKER)
    def many() -> list[int]:
        return [f.result() for f in square.map(range(20))]

    assert many() == [x * x for x in range(20)]


def test_a_body_queued_behind_one_past_its_deadline_runs_in_a_new_worker(
    backend: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pid"

    @flow(task_runner=ONE_WORKER)
    def queued_behind() -> tuple[int, int]:
        first = pid.submit().result()  # a worker is up: the body starts in time
        spinning = spin.submit(marker)
        _wait_for(marker)
        behind = pid.submit()  # sent to the worker, behind spin
        spinning.wait()
        assert spinning.state.name == "TimedOut"
        return first, behind.result()

    first, behind = queued_behind()
    assert int(marker.read_text()) == first
    assert behind != first
    assert _gone(first)


def test_a_body_queued_behind_a_cancelled_one_runs_in_a_new_worker(
    backend: str, tmp_path: Path
) -> None:
    @flow(task_runner=ONE_WORKER)
    def queued_behind() -> tuple[int, int]:
        held = hold.submit(tmp_path)
        _wait_for(tmp_path / "held")
        behind = pid.submit()  # sent to the worker, behind hold
        _wait_until_sent(behind)
        assert held.cancel()
        held.wait()
        assert held.state.is_cancelled()
        return int((tmp_path / "held").read_text()), behind.result()

    held, behind = queued_behind()
    assert behind != held
    assert _gone(held)


def test_a_cancelled_body_queued_on_a_worker_never_runs(backend: str, tmp_path: Path) -> None:
    touched = tmp_path / "touched"

    @flow(task_runner=ONE_WORKER)
    def cancelling() -> tuple[int, int]:
        held = hold.submit(tmp_path)
        _wait_for(tmp_path / "held")
        queued = touch.submit(touched)  # sent to the worker, behind hold
        _wait_until_sent(queued)
        assert queued.cancel()
        (tmp_path / "release").touch()
        queued.wait()
        assert queued.state.is_cancelled()
        return held.result(), pid.submit().result()

    held, later = cancelling()
    assert not touched.exists()
    assert later == held  # the worker was told in time, and skipped it: it lives on


@pytest.mark.anyio
async def test_cancelling_the_flow_stops_the_bodies_queued_on_its_workers(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "pid"
    touched = tmp_path / "touched"
    queued_up = anyio.Event()

    @flow(task_runner=ONE_WORKER)
    async def waiting() -> None:
        sleeping = sleeper.submit(marker)
        while not marker.exists():  # noqa: ASYNC110  # written by another process
            await anyio.sleep(0.02)
        queued = touch.submit(touched)  # sent to the worker, behind sleeper
        while not queued.state.is_running():  # noqa: ASYNC110  # then it is sent
            await anyio.sleep(0.01)
        queued_up.set()
        await sleeping
        await queued

    with anyio.move_on_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiting)
            await queued_up.wait()
            tg.cancel_scope.cancel()
    assert _gone(int(marker.read_text()))
    assert not touched.exists()  # the flow reaped its workers: nothing runs it now


@task
def die_when_released(directory: Path) -> None:
    (directory / "held").write_text(str(os.getpid()))
    _wait_for(directory / "release")
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_body_queued_behind_one_whose_worker_died_runs_in_a_new_worker(
    backend: str, tmp_path: Path
) -> None:
    @flow(task_runner=ONE_WORKER)
    def queued_behind() -> int:
        dying = die_when_released.submit(tmp_path)
        _wait_for(tmp_path / "held")
        behind = pid.submit()  # sent to the worker, behind the one that dies
        _wait_until_sent(behind)
        (tmp_path / "release").touch()
        dying.wait()
        assert dying.state.is_crashed()
        return behind.result()

    assert queued_behind() != int((tmp_path / "held").read_text())


@task
def size(data: bytes) -> int:
    return len(data)


def test_a_body_cancelled_while_its_arguments_are_sent_never_runs(
    backend: str, tmp_path: Path
) -> None:
    @flow(task_runner=ONE_WORKER)
    def cut_short() -> tuple[int, int]:
        held = hold.submit(tmp_path)
        _wait_for(tmp_path / "held")
        big = size.submit(b"x" * 32_000_000)  # more than the socket holds: it waits
        _wait_until_sent(big)
        assert big.cancel()
        big.wait()
        assert big.state.is_cancelled()
        (tmp_path / "release").touch()
        return held.result(), pid.submit().result()

    held, later = cut_short()
    assert held == int((tmp_path / "held").read_text())  # it ran on, to its end
    assert later != held  # its worker could take no more


def test_a_body_sent_to_a_worker_that_died_idle_runs_in_a_new_worker(backend: str) -> None:
    @flow(task_runner=ONE_WORKER)
    def after_a_death() -> tuple[int, int]:
        first = pid.submit().result()
        os.kill(first, signal.SIGKILL)
        assert _gone(first)
        return first, pid.submit().result()  # never started there: not a crash

    first, second = after_a_death()
    assert second != first


def test_a_worker_body_sees_what_a_thread_body_sees_of_its_run(backend: str) -> None:
    for runner in (None, PROCESSES):
        seen, expected = runtime_seen_on(runner)
        assert seen == expected, runner
