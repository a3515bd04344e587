"""The fork server that starts ``ProcessPoolTaskRunner``'s workers: each worker sees the
program as it is when the worker starts, the server outlives flow runs and is replaced
when it dies, and nothing leaks under load."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from flowkit import flow, task
from flowkit._engine.execution import forkserver
from flowkit.exceptions import WorkerCrashedError
from flowkit.task_runners import ProcessPoolTaskRunner

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX fork")

PROCESSES = ProcessPoolTaskRunner(max_workers=2)


@task
def surroundings() -> tuple[str, str | None, list[str], int]:
    return os.getcwd(), os.environ.get("FLOWKIT_TEST_MARK"), sys.path, os.getppid()


@flow(task_runner=PROCESSES)
def look_around() -> tuple[str, str | None, list[str], int]:
    return surroundings.submit().result()


def test_a_worker_sees_the_program_as_it_is_when_the_worker_starts(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    look_around()  # the server runs from here on, started where the test started
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLOWKIT_TEST_MARK", "set later")
    monkeypatch.syspath_prepend(str(tmp_path / "on-the-path"))
    cwd, mark, path, parent = look_around()
    assert Path(cwd) == tmp_path
    assert mark == "set later"
    assert path[0] == str(tmp_path / "on-the-path")
    assert forkserver._server is not None
    assert parent == forkserver._server.process.pid  # a fork of the server, not of us


@task
def shout(text: str) -> None:
    print(text, flush=True)
    print(text.upper(), file=sys.stderr, flush=True)


def test_a_worker_writes_to_the_programs_streams_of_the_moment(
    backend: str, capfd: pytest.CaptureFixture[str]
) -> None:
    # capfd points fds 1 and 2 elsewhere for this test only: a worker forked now writes
    # there, not to the streams the server inherited when it started.
    @flow(task_runner=PROCESSES)
    def shouting() -> None:
        shout.submit("from a worker").result()

    shouting()
    out, err = capfd.readouterr()
    assert "from a worker" in out
    assert "FROM A WORKER" in err


@task
def die(_: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


def test_a_dead_server_is_replaced_at_the_next_pool(backend: str) -> None:
    look_around()
    server = forkserver._server
    assert server is not None
    server.process.kill()
    server.process.wait()
    new_parent = look_around()[3]
    assert forkserver._server is not None
    assert new_parent == forkserver._server.process.pid != server.process.pid


def test_a_worker_killed_by_a_signal_reports_it(backend: str) -> None:
    @flow(task_runner=PROCESSES)
    def crashing() -> None:
        with pytest.raises(WorkerCrashedError, match=r"exit code -9"):
            die.submit(1).result()

    crashing()


def test_forked_workers_exit_with_their_code_and_are_reaped() -> None:
    left, right = socket.socketpair()
    with left, right:
        worker = forkserver.spawn(right.fileno())
        assert worker.pid not in (os.getpid(), os.getppid())
        with pytest.raises(subprocess.TimeoutExpired):
            worker.wait(0.05)  # it waits for its first frame
        left.close()  # no frame at all: it returns at once
        assert worker.wait(10) == 0
        assert worker.wait(0) == 0  # asked again, the same answer
        worker.kill()  # over: nothing to kill, and no error
        worker.close()


@task
def double(x: int) -> int:
    return 2 * x


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts fds in /proc")
def test_many_pools_at_once_leak_no_process_and_no_file_descriptor(backend: str) -> None:
    @flow(task_runner=ProcessPoolTaskRunner(max_workers=3))
    def doubling(n: int) -> list[int]:
        return [f.result() for f in double.map(range(n))]

    doubling(3)  # the server and the store are up before counting
    before = _open_fds()
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def one_flow(n: int) -> None:
        try:
            results.append(doubling(n))
        except BaseException as exc:  # reported below, with the rest
            errors.append(exc)

    threads = [threading.Thread(target=one_flow, args=(40 + i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert sorted(map(len, results)) == [40 + i for i in range(16)]
    assert all(r == [2 * x for x in range(len(r))] for r in results)
    assert _open_fds() == before
    server = forkserver._server
    assert server is not None
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    if children.exists():  # every worker reaped by the server
        assert children.read_text().split() == []


FORKING = textwrap.dedent(
    """
    import os, sys
    from flowkit import flow, task
    from flowkit._engine.execution import forkserver
    from flowkit.task_runners import ProcessPoolTaskRunner

    @task
    def parent_pid() -> int:
        return os.getppid()

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def ask() -> int:
        return parent_pid.submit().result()

    first = ask()
    child = os.fork()
    if child == 0:
        code = 0 if ask() not in (first, os.getpid()) else 1
        os._exit(code)
    _, status = os.waitpid(child, 0)
    print(first == ask(), os.waitstatus_to_exitcode(status))
    """
)


def test_a_fork_of_the_program_starts_a_server_of_its_own() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FORKING], capture_output=True, text=True, timeout=60,
        env={**os.environ, "FLOWKIT_STORE": "off"}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "0"]


def test_a_server_that_cannot_start_fails_the_run_clearly(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    forkserver._stop()
    monkeypatch.setattr(forkserver.sys, "executable", shutil.which("false"))  # exits at once

    @flow(task_runner=PROCESSES)
    def unstartable() -> None:
        double.submit(1).result()

    try:
        with pytest.raises(OSError, match=r"fork server, which starts the worker processes"):
            unstartable()
    finally:
        monkeypatch.undo()
        forkserver._stop()
    assert look_around()[0]  # a good server starts again afterwards


def test_a_worker_waited_for_in_one_thread_can_be_killed_from_another() -> None:
    left, right = socket.socketpair()
    with left, right:
        worker = forkserver.spawn(right.fileno())
        codes: list[int | None] = []
        waiter = threading.Thread(target=lambda: codes.append(worker.wait(30)))
        waiter.start()
        worker.kill()
        waiter.join(30)
        assert codes == [-signal.SIGKILL]
        assert worker.wait(0) == -signal.SIGKILL
        worker.close()
