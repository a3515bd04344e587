"""Ctrl-C on a sync flow: the body runs in the caller's thread, so a real SIGINT lands in
it, the runs end Crashed, the caller gets its KeyboardInterrupt, and the console says so
in one WARNING line, without a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from flowkit import flow, task
    from flowkit._engine import events

    finals = []
    events.subscribe(
        lambda e: finals.append(f"{e.run.name.split('-')[0]}:{e.state.name}")
        if isinstance(e, events.StateChanged) and e.state.is_final() else None
    )

    @task
    def slow():
        print("ready", flush=True)
        time.sleep(30)

    @flow(flow_run_name="interrupted")
    def main():
        slow()

    try:
        main()
    except KeyboardInterrupt:
        print("caller got KeyboardInterrupt", *finals, flush=True)
        sys.exit(3)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_interrupts_a_sync_flow_and_crashes_its_runs(backend: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "FLOWKIT_BACKEND": backend},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 3, err
    assert out.split() == [
        "caller",
        "got",
        "KeyboardInterrupt",
        "slow:Crashed",
        "interrupted:Crashed",
    ]
    (finished,) = [line for line in err.splitlines() if "Finished in state" in line]
    assert "| WARNING | Flow run 'interrupted' - Finished in state Crashed('Execution was " in (
        finished
    )
    assert finished.endswith("interrupted by KeyboardInterrupt'); 1 task run crashed")
    assert "Traceback" not in err
    assert "ExceptionGroup" not in err
    assert "ERROR" not in err
