"""Limits in the run store hold across processes, and a killed holder leaks no slot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowkit import concurrency
from flowkit.concurrency import sync as sconc

TAGGED_RUNS = textwrap.dedent(
    """
    import json, sys, time
    import anyio
    from flowkit import flow, task

    spans = []

    @task(tags=["shared"])
    async def work(i: int) -> int:
        start = time.time()
        await anyio.sleep(0.001)
        spans.append((start, time.time()))
        return i

    @flow
    async def many() -> list[int]:
        return [await f for f in work.map(range(200))]

    assert anyio.run(many, backend=sys.argv[2]) == list(range(200))
    with open(sys.argv[1], "w") as out:
        json.dump(spans, out)
    """
)

HOLDER = textwrap.dedent(
    """
    import sys, time
    from flowkit.concurrency.sync import concurrency

    with concurrency("one", lease_duration=60):
        print("holding", flush=True)
        time.sleep(600)
    """
)


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    marks = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in marks:
        now += step
        most = max(most, now)
    return most


def test_four_processes_never_hold_more_than_the_limit(tmp_path: Path) -> None:
    concurrency.define("tag:shared", limit=3)
    env = {**os.environ, "FLOWKIT_STORE": "off"}  # limits hold with recording off
    outs = [tmp_path / f"spans-{i}.json" for i in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TAGGED_RUNS, str(out), ("asyncio", "trio")[i % 2]], env=env
        )
        for i, out in enumerate(outs)
    ]
    for proc in procs:
        assert proc.wait(timeout=50) == 0
    spans = [tuple(span) for out in outs for span in json.loads(out.read_text())]
    assert len(spans) == 800
    assert _most_at_once(spans) == 3  # measured: the limit was reached, never passed
    info = concurrency.inspect("tag:shared")
    assert (info.active_slots, info.leases) == (0, ())


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_holder_killed_with_sigkill_leaks_no_slot() -> None:
    concurrency.define("one", limit=1)
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "holding\n"
            with pytest.raises(TimeoutError):  # noqa: SIM117
                with sconc.concurrency("one", timeout_seconds=0.1):
                    pass
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()  # reaped: a zombie's pid would still look alive
    # The lease would expire in 60 s, long after this wait of 5 s would fail: its dead
    # process gives it back at the next look.
    with sconc.concurrency("one", timeout_seconds=5):
        assert concurrency.inspect("one").leases[0].pid == os.getpid()
