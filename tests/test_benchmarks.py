"""The benchmark runner works (a smoke test: no timing is asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


WORKLOADS = (
    "seq_sync", "seq_async", "submit_sync", "async_gather", "io_fanout_async",
    "io_fanout_sync", "cache_hit", "store", "stream",
)  # fmt: skip


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_quick_benchmarks_write_a_record_per_workload_and_system(
    backend: str, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "benchmarks", "--quick", "--backend", backend,
            "--rounds", "1", "--only", ",".join(WORKLOADS), "--json", str(out),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = json.loads(out.read_text())
    assert {(r["workload"], r["system"]) for r in records} == {
        (w, s) for w in WORKLOADS for s in ("flowkit", "floor")
    } | {("io_fanout_sync", "anyio")}
    for record in records:
        assert record["backend"] == backend
        assert record["n"] > 0
        assert record["wall_s"] > 0
        assert record["ratio"] > 0


def test_process_benchmarks_measure_startup_and_memory(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "benchmarks", "--quick", "--rounds", "1",
            "--only", "startup,memory", "--json", str(out),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = {(r["workload"], r["system"]): r for r in json.loads(out.read_text())}
    assert set(records) == {(w, s) for w in ("startup", "memory") for s in ("flowkit", "floor")}
    assert records["startup", "flowkit"]["wall_s"] > 0
    assert records["memory", "flowkit"]["peak_mb"] > 0
    # Each process's own peak, not its parent's size at the fork that made it.
    assert records["memory", "floor"]["peak_mb"] < records["memory", "flowkit"]["peak_mb"]
