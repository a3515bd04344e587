"""The benchmark runner works (a smoke test: no timing is asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.run import CONFIGURATIONS, SERVICE_QUICK, SERVICE_SYSTEMS, STARTUP_FLOWKIT, goals

ROOT = Path(__file__).resolve().parent.parent


WORKLOADS = (
    "seq_sync", "seq_async", "submit_sync", "async_gather", "io_fanout_async",
    "io_fanout_sync", "cache_hit", "stream",
)  # fmt: skip


def run_benchmarks(tmp_path: Path, *args: str) -> dict[str, Any]:
    return run_benchmarks_with_output(tmp_path, *args)[0]


def run_benchmarks_with_output(tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    """Run ``python -m benchmarks --quick --rounds 1 ARGS``; its JSON report and stdout."""
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--rounds", "1", *args, "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "goals, in the default configuration" in result.stdout
    report: dict[str, Any] = json.loads(out.read_text())
    return report, result.stdout


# Each run is a process of its own: 33 of them, 15 to 60 s on a busy 2-core machine.
@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_quick_benchmarks_write_a_record_per_workload_and_system(
    backend: str, tmp_path: Path
) -> None:
    report = run_benchmarks(tmp_path, "--backend", backend, "--only", ",".join(WORKLOADS))
    records = report["records"]
    assert {(r["workload"], r["system"]) for r in records} == {
        (w, s) for w in WORKLOADS for s in (*CONFIGURATIONS, "floor")
    } | {("io_fanout_sync", "anyio")}
    for record in records:
        assert record["backend"] == backend
        assert record["n"] > 0
        assert record["wall_s"] > 0
        assert record["ratio"] > 0


# Five processes (flowkit in three configurations, plain asyncio, plain trio): seconds.
@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_quick_service_benchmark_reports_request_latency_per_system(
    backend: str, tmp_path: Path
) -> None:
    report, _ = run_benchmarks_with_output(tmp_path, "--backend", backend, "--only", "service")
    records = {r["system"]: r for r in report["records"]}
    assert set(records) == set(SERVICE_SYSTEMS)
    for system, r in records.items():
        assert r["workload"] == "service"
        assert r["backend"] == (system if system in ("asyncio", "trio") else backend)
        assert (r["requests"], r["concurrency"], r["fanout"]) == (
            SERVICE_QUICK.requests, SERVICE_QUICK.concurrency, SERVICE_QUICK.fanout,
        )  # fmt: skip
        assert r["n"] == SERVICE_QUICK.requests * SERVICE_QUICK.fanout
        # Every request sleeps 5 ms at least; its p99 is no lower than its p50.
        assert 5 <= r["p50_ms"] <= r["p99_ms"]
        assert r["cpu_us"] > 0
    assert records[backend]["ratio"] == 1  # the plain loop the goal compares with
    assert records["flowkit"]["ratio"] == pytest.approx(
        records["flowkit"]["p50_ms"] / records[backend]["p50_ms"]
    )


@pytest.mark.timeout(120)
def test_the_service_has_its_own_table_and_its_goal_is_judged(tmp_path: Path) -> None:
    _, out = run_benchmarks_with_output(tmp_path, "--only", "service")
    assert "us/task" not in out.split("service: ")[0]  # no empty per-task table before it
    assert "p50 ms   p99 ms" in out
    [goal] = [line for line in out.splitlines() if line.startswith("service ")]
    assert "p50 <= 2x plain asyncio" in goal
    assert goal.endswith(("met", "MISSED"))


# The start-up benchmark's program (one task in a flow, as a user writes it), then a look
# at the configuration it left.
PLAIN_IMPORT = (
    STARTUP_FLOWKIT
    + "import json\nfrom benchmarks.run import describe_configuration\n"
    + "print(json.dumps(describe_configuration()))\n"
)


def test_the_default_configuration_is_what_a_plain_import_gives(tmp_path: Path) -> None:
    report = run_benchmarks(tmp_path, "--only", "seq_sync")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWKIT_")}
    plain = subprocess.run(
        [sys.executable, "-c", PLAIN_IMPORT], cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=True, env={**env, "FLOWKIT_HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert report["configuration"] == json.loads(plain.stdout)
    assert report["configuration"]["flowkit level"] == "INFO"
    assert report["configuration"]["store"] is True
    assert any("ConsoleHandler" in h for h in report["configuration"]["flowkit handlers"])


def test_every_console_line_of_the_default_runs_reaches_the_pipe(tmp_path: Path) -> None:
    report = run_benchmarks(tmp_path, "--only", "seq_sync")
    # A seq_sync flow of n tasks tells 3 lines a task and 2 of its own (created,
    # finished): the first run (n=1), the warm-up (n=50) and one round (n=100) of the
    # default configuration; quiet and bare runs tell none at INFO.
    assert report["console"]["lines"] == sum(3 * n + 2 for n in (1, 50, 100))


def test_process_benchmarks_measure_startup_import_and_memory(tmp_path: Path) -> None:
    report = run_benchmarks(tmp_path, "--only", "startup,memory")
    records = {(r["workload"], r["system"]): r for r in report["records"]}
    everyone = (*CONFIGURATIONS, "floor")
    assert set(records) == {(w, s) for w in ("startup", "memory") for s in everyone} | {
        ("import", "flowkit"),
        ("import", "floor"),
    }
    assert records["startup", "flowkit"]["wall_s"] > 0
    assert 0 < records["import", "flowkit"]["wall_s"] < records["startup", "flowkit"]["wall_s"]
    assert records["memory", "flowkit"]["peak_mb"] > 0
    # Each process's own peak, not its parent's size at the fork that made it.
    assert records["memory", "floor"]["peak_mb"] < records["memory", "flowkit"]["peak_mb"]


def record(
    workload: str, system: str, wall_s: float, floor_s: float, **more: Any
) -> dict[str, Any]:
    return {
        "workload": workload, "system": system, "wall_s": wall_s, "ratio": wall_s / floor_s,
        "overhead_us": (wall_s - floor_s) / 1000 * 1e6, **more,
    }  # fmt: skip


def test_goals_are_judged_on_the_default_configuration() -> None:
    records = [
        record("seq_sync", "flowkit", 0.14, 0.1),
        record("seq_sync", "bare", 0.1, 0.1),
        record("seq_sync", "floor", 0.1, 0.1),
        record("seq_async", "flowkit", 0.3, 0.1),
        record("seq_async", "bare", 0.1, 0.1),
        record("io_fanout_async", "flowkit", 0.07, 0.06),
        record("cache_hit", "flowkit", 0.03, 0.0001),
        record("stream", "flowkit", 0.3, 0.2),
        record("memory", "flowkit", 0, 1, peak_mb=61.0),
        record("submit_sync", "prefect", 10.0, 1, ratio=120.0),
        record("submit_sync", "dask", 0.1, 1, ratio=0.8),
    ]
    judged = {
        (w, g.split(" ")[0] if "bare" not in g else "bare"): met for w, g, _, met in goals(records)
    }
    assert judged == {
        ("seq_sync", "<="): True,  # 1.4x the floor
        ("seq_async", "<="): False,  # 3x
        ("io_fanout_async", "<="): True,  # 70 ms of an ideal 50 ms
        ("cache_hit", "<="): False,  # 29.9 us added
        ("seq_sync", "bare"): False,  # 1.4x bare
        ("seq_async", "bare"): False,
        ("memory", "<="): False,
        ("stream", ">="): True,  # 2/3 the rate
        ("submit_sync", ">="): True,  # Prefect 120x
        ("submit_sync", "faster"): False,  # Dask faster
    }


def service_record(system: str, backend: str, ratio: float) -> dict[str, Any]:
    return {"workload": "service", "system": system, "backend": backend, "ratio": ratio}


@pytest.mark.parametrize(("ratio", "met"), [(1.9, True), (2.1, False)])
def test_the_service_goal_is_p50_within_2x_plain_on_the_flows_loop(ratio: float, met: bool) -> None:
    records = [
        service_record("flowkit", "trio", ratio),
        service_record("bare", "trio", 1.0),
        service_record("asyncio", "asyncio", 0.8),
        service_record("trio", "trio", 1.0),
    ]
    assert goals(records) == [("service", "p50 <= 2x plain trio", f"{ratio:.2f}x", met)]
