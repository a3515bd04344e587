"""DaskTaskRunner on a real LocalCluster of 2 worker processes on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from flowkit.exceptions import WorkerCrashedError

if not os.environ.get("CI"):
    pytest.importorskip("distributed")

import dask
from distributed import LocalCluster
from shared_tasks import runtime_seen_on

from flowkit import flow, task
from flowkit.exceptions import TaskTimeoutError
from flowkit.logging import get_run_logger
from flowkit.store import Store
from flowkit.task_runners import dask as flowkit_dask
from flowkit.task_runners.dask import DaskTaskRunner, get_dask_client


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as started:  # fmt: skip
        yield started


@pytest.fixture
def runner(cluster: LocalCluster) -> DaskTaskRunner:
    return DaskTaskRunner(address=cluster.scheduler_address)


@task
def square(x: int) -> int:
    return x * x


@task
def where() -> int:
    return os.getpid()


def test_submitted_runs_run_on_the_cluster(backend: str, runner: DaskTaskRunner) -> None:
    @flow(task_runner=runner)
    def on_dask() -> tuple[list[int], set[int]]:
        pids = {f.result() for f in [where.submit() for _ in range(6)]}
        return [f.result() for f in square.map(range(5))], pids

    squares, pids = on_dask()
    assert squares == [0, 1, 4, 9, 16]
    assert os.getpid() not in pids


def test_the_store_records_the_dask_worker_of_a_run(
    backend: str, cluster: LocalCluster, runner: DaskTaskRunner
) -> None:
    @flow(task_runner=runner)
    def on_dask() -> int:
        return square.submit(3).result()

    assert on_dask() == 9
    with Store.open() as store:
        (worker,) = [s.worker for s in store.states("square-0") if s.worker is not None]
    addresses = cluster.scheduler_info["workers"]
    assert worker.startswith("dask ")
    assert worker.removeprefix("dask ") in addresses


@pytest.mark.anyio
async def test_an_async_flow_awaits_runs_on_the_cluster(runner: DaskTaskRunner) -> None:
    @flow(task_runner=runner)
    async def on_dask() -> list[int]:
        return [await f for f in square.map([2, 3])]

    assert await on_dask() == [4, 9]


def test_failures_and_retries_behave_as_with_threads(
    backend: str, runner: DaskTaskRunner, tmp_path: Path
) -> None:
    @task(retries=1)
    def flaky(path: Path) -> str:
        if not path.exists():
            path.write_text("once")
            raise RuntimeError("first try fails")
        return path.read_text()

    @task
    def broken() -> None:
        raise KeyError("missing")

    @flow(task_runner=runner)
    def mixed() -> str:
        future = broken.submit()
        future.wait()
        assert future.state.is_failed()
        with pytest.raises(KeyError, match="missing"):
            future.result()
        return flaky.submit(tmp_path / "marker").result()

    assert mixed() == "once"


@task(timeout_seconds=0.5)
def slow(finished: Path) -> None:
    time.sleep(5)
    finished.write_text("the body ran to its end")


def test_a_timeout_ends_the_run_at_its_deadline(
    backend: str, runner: DaskTaskRunner, tmp_path: Path
) -> None:
    finished = tmp_path / "finished"

    @flow(task_runner=runner)
    def timing_out() -> None:
        future = slow.submit(finished)
        future.wait()
        assert future.state.name == "TimedOut"
        with pytest.raises(TaskTimeoutError):
            future.result()

    timing_out()
    assert not finished.exists()  # the run ended at its deadline, not with the body


@task
def logging_task(x: int) -> int:
    get_run_logger().info("on dask %d", x)
    return x


def test_logs_from_a_dask_worker_reach_the_flow(
    backend: str, runner: DaskTaskRunner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")

    @flow(task_runner=runner)
    def talking() -> int:
        return logging_task.submit(3).result()

    assert talking() == 3
    (record,) = [r for r in caplog.records if r.getMessage() == "on dask 3"]
    assert getattr(record, "task_run_name", None) == "logging_task-0"


@task
def nested(n: int) -> int:
    with get_dask_client() as client:
        return sum(client.gather(client.map(lambda x: x + 1, range(n))))


def test_get_dask_client_gives_a_task_the_cluster(backend: str, runner: DaskTaskRunner) -> None:
    @flow(task_runner=runner)
    def nesting() -> int:
        return nested.submit(4).result()

    assert nesting() == 10


def test_get_dask_client_outside_a_dask_task_says_so() -> None:
    with pytest.raises(ValueError, match="inside a task run on a DaskTaskRunner"):  # noqa: SIM117
        with get_dask_client():
            pass


def test_an_unreachable_scheduler_fails_the_flow_clearly(backend: str) -> None:
    runner = DaskTaskRunner(address="tcp://127.0.0.1:9", client_kwargs={"timeout": "1s"})

    @flow(task_runner=runner)
    def unreachable() -> None:
        pass

    with pytest.raises(OSError, match=r"flow 'unreachable': DaskTaskRunner cannot reach .*:9"):
        unreachable()


def test_a_temporary_local_cluster_by_default(backend: str) -> None:
    runner = DaskTaskRunner(
        cluster_kwargs={"n_workers": 1, "processes": False, "dashboard_address": None}
    )

    @flow(task_runner=runner)
    def local() -> int:
        return square.submit(6).result()

    assert local() == 36


def test_address_and_cluster_options_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="leave out cluster_class"):
        DaskTaskRunner(address="tcp://127.0.0.1:8786", cluster_kwargs={"n_workers": 2})


@pytest.mark.anyio
async def test_cancelling_the_flow_cancels_its_dask_work(
    runner: DaskTaskRunner, tmp_path: Path
) -> None:
    finished = tmp_path / "finished"

    @flow(task_runner=runner)
    async def waiting() -> None:
        await slow.with_options(timeout_seconds=60).submit(finished)

    with anyio.move_on_after(1):
        await waiting()
    assert not finished.exists()  # the flow stopped waiting for it when cancelled


def test_a_thousand_runs_each_get_their_own_reply(backend: str, runner: DaskTaskRunner) -> None:
    # Replies come back in batches, by key: none lost, none given to another run.
    @flow(task_runner=runner)
    def many() -> list[int]:
        return [f.result() for f in square.map(range(1000))]

    assert many() == [x * x for x in range(1000)]


@task
def pause(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_replies_that_come_fast_go_to_their_runs_together(
    backend: str, runner: DaskTaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reply that comes alone goes to its run at once, even within LINGER of the last
    # hand-over; replies that come while more bodies are out wait for it and go together.
    monkeypatch.setattr(flowkit_dask, "LINGER", 1.0)
    handed: list[int] = []
    deliver = flowkit_dask._Dask._deliver

    def counting(self: flowkit_dask._Dask, replies: list[tuple[str, object]]) -> None:
        handed.append(len(replies))
        deliver(self, replies)  # type: ignore[arg-type]

    monkeypatch.setattr(flowkit_dask._Dask, "_deliver", counting)

    @flow(task_runner=runner)
    def alone_then_many() -> tuple[list[float], float, list[float]]:
        started = time.monotonic()
        # The second reply comes 0.1 s after the first, the last one out.
        pair = [f.result() for f in pause.map([0.0, 0.1])]
        alone = time.monotonic() - started
        return pair, alone, [f.result() for f in pause.map([0.05] * 20)]

    pair, alone, paused = alone_then_many()
    assert (pair, paused) == ([0.0, 0.1], [0.05] * 20)
    assert alone < 0.9  # the second did not wait out LINGER: nothing else was out
    assert sum(handed) == 22
    assert len(handed) <= 4  # 20 replies within a second: one or two hand-overs


@task
def outlive_a_kill(marker: Path) -> int:
    """Tells the test its pid and waits to be killed, the first time; returns the next."""
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(30)
    return os.getpid()


def _kill_when_started(marker: Path) -> int:
    deadline = time.monotonic() + 20
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.02)
    pid = int(marker.read_text())
    os.kill(pid, 9)
    return pid


def _own_cluster(**config: object) -> LocalCluster:
    with dask.config.set(config):
        return LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=":0",
        )  # fmt: skip


def test_a_dask_worker_killed_mid_task_has_dask_run_it_again(backend: str, tmp_path: Path) -> None:
    # Dask's own resilience: the scheduler gives a lost task to another worker, and the
    # run, one attempt as far as flowkit can tell, completes.
    marker = tmp_path / "pid"
    with _own_cluster() as cluster:

        @flow(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
        def surviving() -> tuple[int, int]:
            future = outlive_a_kill.submit(marker)
            return _kill_when_started(marker), future.result()

        killed, finished_in = surviving()
    assert finished_in != killed


def test_a_run_the_cluster_gives_up_on_is_crashed_then_retried(
    backend: str, tmp_path: Path
) -> None:
    # With no failures allowed, the scheduler gives up on the task (KilledWorker): the
    # run is Crashed, named in the error, and its retry runs it again.
    marker = tmp_path / "pid"
    with _own_cluster(**{"distributed.scheduler.allowed-failures": 0}) as cluster:

        @flow(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
        def losing() -> tuple[str, str]:
            once = outlive_a_kill.submit(marker)
            _kill_when_started(marker)
            once.wait()
            with pytest.raises(WorkerCrashedError, match=r"task run 'outlive_a_kill-0'.*Dask"):
                once.result()
            marker.unlink()
            again = outlive_a_kill.with_options(retries=1).submit(marker)
            _kill_when_started(marker)
            again.wait()
            return once.state.name, again.state.name

        assert losing() == ("Crashed", "Completed")


def test_the_runner_benchmark_runs_every_system(tmp_path: Path) -> None:
    out = tmp_path / "runners.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.runners", "--tasks", "8", "--rounds", "1",
         "--json", str(out)],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "goal <= 1.3" in result.stdout
    assert "goal >= 1.7" in result.stdout
    assert set(json.loads(out.read_text())["seconds"]) == {
        "sequential", "flowkit processes", "dask client.map", "flowkit dask",
    }  # fmt: skip


def test_a_dask_body_sees_what_a_thread_body_sees_of_its_run(
    backend: str, runner: DaskTaskRunner
) -> None:
    seen, expected = runtime_seen_on(runner)
    assert seen == expected
