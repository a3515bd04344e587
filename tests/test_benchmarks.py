"""The benchmark runner works (a smoke test: no timing is asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_quick_benchmarks_write_a_record_per_workload_and_system(
    backend: str, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--backend", backend, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(out.read_text())
    assert {(r["workload"], r["system"]) for r in records} == {
        (w, s) for w in ("seq_sync", "seq_async") for s in ("flowkit", "floor")
    }
    for record in records:
        assert record["backend"] == backend
        assert record["n"] > 0
        assert record["wall_s"] > 0
        assert record["per_task_us"] == pytest.approx(record["wall_s"] / record["n"] * 1e6)
    assert "submit_sync missing" in result.stdout
