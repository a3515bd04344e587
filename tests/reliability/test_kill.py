"""kill -9 loses nothing that finished (issue 31, item 3): what a task run did is in the
run store within a group commit of its end, whenever the program is killed, and with no
flush or pause before the kill."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flowkit import store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

# How long after a body's end its run must be on disk: the group commit (50 ms), and the
# time the writer thread may wait for a core beside two CPU burners.
MARGIN = 0.3

PROGRAM = textwrap.dedent(
    """
    import os, sys, time
    from flowkit import flow, runtime, task

    side = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    @task
    def step(i: int) -> int:
        time.sleep(0.001)
        # The body's last act: the run's id and the time, for the test to compare.
        os.write(side, f"{runtime.task_run.id} {time.time()}\\n".encode())
        return i

    @flow
    def busy(n: int) -> None:  # one long flow: runs end steadily, the flow never does
        for i in range(n):
            step.submit(i).wait()

    busy(1_000_000)
    """
)


def _finished(side: Path) -> list[tuple[str, float]]:
    lines = side.read_text().splitlines() if side.exists() else []
    return [(run, float(at)) for run, at in (line.split() for line in lines if " " in line)]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_kill_9_loses_no_task_run_that_finished(
    backend: str, tmp_path: Path, burners: None
) -> None:
    side = tmp_path / "finished.txt"
    env = {**os.environ, "FLOWKIT_BACKEND": backend, "FLOWKIT_LOGGING_LEVEL": "WARNING"}
    program = subprocess.Popen([sys.executable, "-c", PROGRAM, str(side)], env=env)
    deadline = time.monotonic() + 60
    while not _finished(side):  # the first body has finished: the store is in use
        if program.poll() is not None or time.monotonic() > deadline:
            program.kill()
            pytest.fail(f"no body finished ({program.returncode})")
        time.sleep(0.005)
    time.sleep(random.uniform(2 * MARGIN, 2.0))  # then a random moment of the run
    killed = time.time()
    program.send_signal(signal.SIGKILL)  # no flush, no pause: as an operator's kill -9
    program.wait(10)
    finished = [run for run, at in _finished(side) if at <= killed - MARGIN]
    assert finished, "no body finished long enough before the kill to be judged"
    db = sqlite3.connect(store.default_path())
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        completed = {
            row[0]
            for row in db.execute(
                "SELECT id FROM runs WHERE kind = 'task' AND state_type = 'COMPLETED'"
            )
        }
    finally:
        db.close()
    lost = [run for run in finished if run not in completed]
    assert not lost, f"{len(lost)} of {len(finished)} finished task runs were lost"
