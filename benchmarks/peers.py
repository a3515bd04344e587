"""The same workloads on peers: Prefect and Dask, each in a subprocess of its own.

Each peer runs at its defaults, as flowkit does: Prefect with its console logging (on a
pipe drained here) and the temporary server it starts when no API is configured, in a
fresh ``PREFECT_HOME``; Dask with its default scheduler for ``delayed`` (threads). Each
peer script times its workloads after its own start-up, which is measured apart (a
process that imports the peer and runs one task). A peer that is not installed is
reported as such: ``pip install --group benchmarks`` (or the packages listed under
``[dependency-groups] benchmarks`` in ``pyproject.toml``) installs them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

__all__ = ["PEERS", "measure_peers"]

_PREFECT = """
import json, sys, time
n = int(sys.argv[1])
from prefect import flow, task

@task
def work(x):
    return x + 1

@flow
def seq_sync(n):
    for i in range(n):
        work(i)

@flow
def submit_sync(n):
    for f in [work.submit(i) for i in range(n)]:
        f.result()

out = {}
for name, fn in (("seq_sync", seq_sync), ("submit_sync", submit_sync)):
    fn(min(n, 10))
    start = time.perf_counter()
    fn(n)
    out[name] = time.perf_counter() - start
print('RESULT', json.dumps(out))
"""

_PREFECT_STARTUP = """
from prefect import flow, task
@task
def one():
    return 1
@flow
def main():
    return one()
main()
"""

_DASK = """
import json, sys, time
n = int(sys.argv[1])
import dask
from dask import delayed

def work(x):
    return x + 1

out = {}
start = time.perf_counter()
for i in range(n):
    dask.compute(delayed(work)(i), scheduler="threads")
out["seq_sync"] = time.perf_counter() - start
start = time.perf_counter()
dask.compute(*[delayed(work)(i) for i in range(n)], scheduler="threads")
out["submit_sync"] = time.perf_counter() - start

from distributed import Client, LocalCluster
cluster = LocalCluster(n_workers=1, threads_per_worker=4, processes=False)
with cluster, Client(cluster) as client:
    client.submit(work, 0).result()
    start = time.perf_counter()
    for f in [client.submit(work, i, pure=False) for i in range(n)]:
        f.result()
    out["submit_sync_distributed"] = time.perf_counter() - start
print('RESULT', json.dumps(out))
"""

_DASK_STARTUP = """
import dask
from dask import delayed
dask.compute(delayed(lambda: 1)(), scheduler="threads")
"""

PEERS = {
    "prefect": ("prefect", _PREFECT, _PREFECT_STARTUP),
    "dask": ("distributed", _DASK, _DASK_STARTUP),
}


def _run(code: str, *args: str, timeout: float = 600) -> tuple[float, str]:
    """Run ``code`` at the peer's defaults; its wall time, and what it printed after
    ``RESULT`` (its console lines go to pipes, read as a terminal would)."""
    settings = ("PREFECT_", "DASK_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(settings)}
    with tempfile.TemporaryDirectory(prefix="peer-home-") as home:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True,
            env={**env, "PREFECT_HOME": home}, timeout=timeout, check=False,
        )  # fmt: skip
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
    found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return wall, found[-1].removeprefix("RESULT ") if found else ""


def measure_peers(n: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Run each installed peer; return its records and a line for each peer left out."""
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    for peer, (module, code, startup) in PEERS.items():
        if importlib.util.find_spec(module) is None:
            notes.append(f"{peer}: not installed (pip install --group benchmarks)")
            continue
        try:
            started, _ = _run(startup)
            _, line = _run(code, str(n))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            notes.append(f"{peer}: failed: {exc}")
            continue
        records.append(_record("startup", peer, 1, started))
        for workload, wall in json.loads(line).items():
            records.append(_record(workload, peer, n, wall))
    return records, notes


def _record(workload: str, system: str, n: int, wall: float) -> dict[str, Any]:
    return {
        "workload": workload, "system": system, "backend": "-", "n": n, "rounds": 1,
        "wall_s": wall, "min_s": wall, "max_s": wall, "per_task_us": wall / n * 1e6,
        "overhead_us": None, "ratio": None, "goal": "",
    }  # fmt: skip
