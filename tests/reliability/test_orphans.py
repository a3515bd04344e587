"""Process workers never outlive what started them (issue 31, items 4 and 5): a program
killed with SIGKILL, or its fork server killed alone, leaves no worker running a body."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux: /proc")

PROGRAM = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from flowkit import flow, task
    from flowkit.task_runners import ProcessPoolTaskRunner

    @task
    def linger(marker: str) -> None:
        Path(marker).write_text(str(os.getpid()))
        time.sleep(60)  # a body nobody would wait for if its program were gone

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def main(marker: str) -> str:
        future = linger.submit(marker)
        future.wait()
        return future.state.name

    print(main(sys.argv[1]), flush=True)
    """
)


def _started(tmp_path: Path, backend: str) -> tuple[subprocess.Popen[str], int]:
    marker = tmp_path / "worker.pid"
    env = {**os.environ, "FLOWKIT_HOME": str(tmp_path / "home"), "FLOWKIT_BACKEND": backend}
    program = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, str(marker)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text()):
        if program.poll() is not None or time.monotonic() > deadline:
            program.kill()
            _, err = program.communicate()
            pytest.fail(f"the worker never started its body: {err[-2000:]}")
        time.sleep(0.02)
    return program, int(marker.read_text())


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _gone_within(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` ends (or is a zombie) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_program_killed_with_sigkill_leaves_no_worker(
    backend: str, tmp_path: Path, burners: None
) -> None:
    program, worker = _started(tmp_path, backend)
    server = _parent_of(worker)
    program.kill()  # no flush, no goodbye
    program.communicate()
    try:
        assert _gone_within(server, 10), "the fork server outlived its program"
        assert _gone_within(worker, 10), "the worker outlived its program"
    finally:
        for pid in (worker, server):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_killed_fork_server_takes_its_workers_and_the_run_ends(
    backend: str, tmp_path: Path, burners: None
) -> None:
    program, worker = _started(tmp_path, backend)
    server = _parent_of(worker)
    try:
        os.kill(server, signal.SIGKILL)
        assert _gone_within(worker, 10), "the worker outlived its fork server"
        out, err = program.communicate(timeout=60)  # the run ends: its body cannot finish
        assert program.returncode == 0, err[-2000:]
        assert out.strip() == "Crashed"
    finally:
        program.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)
