"""``flowkit bench`` on small matrices: the JSON document, floors and ratios, failures and
timeouts kept, ``--compare``, bad input. No timing is asserted: figures are only checked
to be there and consistent."""

from __future__ import annotations

import importlib.machinery
import json
import statistics
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

from flowkit.bench import Matrix, MatrixError, compare
from flowkit.bench._harness import schedule
from flowkit.bench._matrix import Cell
from flowkit.bench._measure import phases
from flowkit.bench._workloads import request_sizes
from flowkit.cli import main
from flowkit.store import Store

RECORD_KEYS = {
    "cell", "workload", "system", "floor", "backend", "runner", "limit", "n", "round",
    "status", "error", "wall_s", "throughput", "latencies_s", "phases_s", "flow_run_id",
}  # fmt: skip
CELL_KEYS = {
    "cell", "workload", "system", "floor", "backend", "runner", "limit", "n", "rounds", "ok",
    "failed", "timeout", "median_s", "min_s", "max_s", "spread", "ratio", "floor_cell",
}  # fmt: skip
USER_FLOWS = """
import time
from flowkit import flow, task

@task
def step(i: int) -> int:
    return i

@flow
def quick(size: int = 3) -> int:
    return sum(step.map(range(size)).result())

@flow
def broken() -> None:
    raise RuntimeError("this flow always breaks")

@flow
def sleepy() -> None:
    time.sleep(60)
"""


def check_schema(document: dict[str, Any]) -> None:
    """``document`` is a flowkit-bench/1 document as docs/benchmarking.md describes."""
    assert set(document) == {"format", "started", "argv", "machine", "records", "cells"}
    assert document["format"] == "flowkit-bench/1"
    assert document["started"].endswith("+00:00")
    assert set(document["machine"]) == {
        "cores", "cpu", "python", "platform", "governor", "versions",
    }  # fmt: skip
    assert set(document["machine"]["versions"]) == {
        "flowkit", "anyio", "trio", "uvloop", "distributed",
    }  # fmt: skip
    for record in document["records"]:
        assert set(record) == RECORD_KEYS
        assert record["system"] in ("flowkit", "floor")
        assert record["status"] in ("ok", "failed", "timeout")
        ok = record["status"] == "ok"
        assert (record["error"] is None) == ok
        assert (record["wall_s"] is not None) == ok
        if ok:
            assert record["wall_s"] > 0
            assert record["throughput"] == pytest.approx(record["n"] / record["wall_s"])
            assert len(record["latencies_s"]) <= 2000
        if record["system"] == "floor":
            assert record["phases_s"] is None
            assert record["flow_run_id"] is None
        elif ok:
            assert set(record["phases_s"]) == {"waiting", "running", "recording"}
            assert isinstance(record["flow_run_id"], str)
    for cell in document["cells"]:
        assert set(cell) == CELL_KEYS
        assert cell["ok"] + cell["failed"] + cell["timeout"] == cell["rounds"]


def bench(*args: str) -> tuple[int, dict[str, Any] | None]:
    """Run ``flowkit bench ARGS --json``; its exit code and document."""
    out = Path(args[args.index("--json") + 1]) if "--json" in args else None
    code = main(["bench", *args])
    return code, json.loads(out.read_text()) if out is not None and out.exists() else None


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """cpu on asyncio and trio, threads and processes, with a limit: 8 cells, 2 rounds."""
    scratch = tmp_path_factory.mktemp("bench")
    home = scratch / "home"
    code, document = bench(
        "cpu", "--backend", "asyncio,trio", "--runner", "threads:2,processes:2",
        "--limit", "3", "--n", "20", "--rounds", "2", "--seed", "7",
        "--home", str(home), "--json", str(scratch / "cpu.json"),
    )  # fmt: skip
    assert code == 0
    assert document is not None
    return document, home


# The matrix's 24 processes take 15 to 40 s on a busy 2-core machine: the first test
# using it pays for them.
@pytest.mark.timeout(180)
def test_every_cell_and_its_floor_has_a_record_per_round(
    cpu_run: tuple[dict[str, Any], Path],
) -> None:
    document, _ = cpu_run
    check_schema(document)
    expected = {
        f"cpu|{backend}|{runner}|3|20|{system}"
        for backend in ("asyncio", "trio")
        for runner in ("threads:2", "processes:2")
        for system in ("flowkit", "floor")
    }
    assert {c["cell"] for c in document["cells"]} == expected
    assert sorted((r["cell"], r["round"]) for r in document["records"]) == sorted(
        (cell, r) for cell in expected for r in (0, 1)
    )
    floors = {c["cell"]: c["floor"] for c in document["cells"] if c["system"] == "floor"}
    assert floors == {
        f"cpu|{b}|{r}|3|20|floor": "ThreadPoolExecutor" if r == "threads:2" else
        "ProcessPoolExecutor"
        for b in ("asyncio", "trio") for r in ("threads:2", "processes:2")
    }  # fmt: skip
    assert all(r["status"] == "ok" for r in document["records"])


@pytest.mark.timeout(180)
def test_each_cell_is_summarised_with_its_ratio_to_its_floor(
    cpu_run: tuple[dict[str, Any], Path],
) -> None:
    document, _ = cpu_run
    cells = {c["cell"]: c for c in document["cells"]}
    for cell in cells.values():
        walls = [r["wall_s"] for r in document["records"] if r["cell"] == cell["cell"]]
        assert cell["median_s"] == statistics.median(walls)
        assert (cell["min_s"], cell["max_s"]) == (min(walls), max(walls))
        assert cell["spread"] == pytest.approx((max(walls) - min(walls)) / cell["median_s"])
        if cell["system"] == "floor":
            assert (cell["ratio"], cell["floor_cell"]) == (None, None)
        else:
            floor = cells[cell["floor_cell"]]
            assert floor["system"] == "floor"
            assert cell["ratio"] == pytest.approx(cell["median_s"] / floor["median_s"])


@pytest.mark.timeout(180)
def test_each_flowkit_round_is_a_flow_run_in_the_store(
    cpu_run: tuple[dict[str, Any], Path],
) -> None:
    document, home = cpu_run
    record = next(
        r for r in document["records"]
        if r["cell"] == "cpu|trio|processes:2|3|20|flowkit" and r["round"] == 1
    )  # fmt: skip
    with Store.open(home / "runs.db") as store:
        run = store.get(record["flow_run_id"])
        tasks = [r for r in store.tree(run.id) if r.kind == "task"]
    assert run.name == "bench cpu trio processes:2 limit=3 n=20 round 1"
    assert run.state_type == "COMPLETED"
    assert len(tasks) == 20
    assert all("flowkit-bench" in t.tags for t in tasks)  # the limit's tag
    assert len(record["latencies_s"]) == 20
    assert record["phases_s"]["running"] > 0


def test_an_async_workload_has_an_anyio_task_group_for_floor(tmp_path: Path) -> None:
    code, document = bench(
        "io-async", "--backend", "trio", "--runner", "threads:2", "--n", "20",
        "--rounds", "1", "--json", str(tmp_path / "io.json"),
    )  # fmt: skip
    assert code == 0
    assert document is not None
    check_schema(document)
    assert {(c["cell"], c["floor"]) for c in document["cells"]} == {
        (f"io-async|trio|threads:2|none|20|{s}", "anyio task group") for s in ("flowkit", "floor")
    }
    assert all(c["ratio"] is not None for c in document["cells"] if c["system"] == "flowkit")


def test_the_service_workload_serves_a_flow_run_per_request(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, document = bench(
        "service", "--backend", "trio", "--runner", "threads:2", "--limit", "4", "--n", "50",
        "--rounds", "1", "--home", str(home), "--json", str(tmp_path / "service.json"),
    )  # fmt: skip
    assert code == 0
    assert document is not None
    check_schema(document)
    assert {(c["cell"], c["floor"]) for c in document["cells"]} == {
        (f"service|trio|threads:2|4|50|{s}", "anyio task group") for s in ("flowkit", "floor")
    }
    records = {r["system"]: r for r in document["records"]}
    # 50 tasks are requests of 20, 20 and 10: a latency per request, flowkit's and the floor's.
    assert request_sizes(50) == [20, 20, 10]
    assert [len(r["latencies_s"]) for r in records.values()] == [3, 3]
    flowkit = records["flowkit"]
    with Store.open(home / "runs.db") as store:
        requests = [
            run for run in store.flow_runs(flow="bench-service", limit=None)
            if run.name == "bench service trio threads:2 limit=4 n=50 round 0"
        ]  # fmt: skip
        tasks = [t for run in requests for t in store.tree(run.id) if t.kind == "task"]
        each = [phases(store.tree_states(run.id), run.id, 0)["phases_s"] for run in requests]
    assert len(requests) == 3
    assert flowkit["flow_run_id"] == requests[-1].id  # the first request's (newest first)
    assert len(tasks) == flowkit["n"] == 50
    assert all("flowkit-bench" in t.tags for t in tasks)  # the limit's tag
    # Its phases are every request's task runs' together.
    for phase in ("waiting", "running"):
        assert flowkit["phases_s"][phase] == pytest.approx(sum(p[phase] for p in each))


@pytest.mark.parametrize(
    ("n", "sizes"), [(1, [1]), (20, [20]), (45, [20, 20, 5]), (60, [20, 20, 20])]
)
def test_service_requests_fan_out_20_tasks_and_the_rest(n: int, sizes: list[int]) -> None:
    assert request_sizes(n) == sizes


@pytest.fixture
def user_flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of flows, importable here and in the cell processes; its name."""
    (tmp_path / "bench_user_flows.py").write_text(textwrap.dedent(USER_FLOWS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return "bench_user_flows"


def test_a_failing_user_flow_is_reported_failed_not_dropped(
    user_flows: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = bench(
        f"{user_flows}:broken", "--rounds", "2", "--json", str(tmp_path / "b.json")
    )
    assert code == 1  # written down, and the command says something went wrong
    assert document is not None
    check_schema(document)
    assert [(r["round"], r["status"], r["error"]) for r in document["records"]] == [
        (r, "failed", "RuntimeError: this flow always breaks") for r in (0, 1)
    ]
    [cell] = document["cells"]
    assert cell["cell"] == f"{user_flows}:broken|asyncio|threads:8|none|-|flowkit"
    assert (cell["ok"], cell["failed"], cell["median_s"], cell["ratio"]) == (0, 2, None, None)
    out = capsys.readouterr().out
    assert "failed: RuntimeError: this flow always breaks" in out
    assert "a flow of yours has no floor" in out


def test_a_cell_past_its_timeout_is_killed_and_reported(user_flows: str, tmp_path: Path) -> None:
    code, document = bench(
        f"{user_flows}:sleepy", "--rounds", "1", "--timeout", "1",
        "--json", str(tmp_path / "t.json"),
    )  # fmt: skip
    assert code == 1
    assert document is not None
    [record] = document["records"]
    assert (record["status"], record["error"]) == ("timeout", "killed after 1 s")
    assert document["cells"][0]["timeout"] == 1


def test_a_user_flow_gets_its_params_and_counts_its_task_runs(
    user_flows: str, tmp_path: Path
) -> None:
    code, document = bench(
        f"{user_flows}:quick", "--param", "size=4", "--backend", "trio", "--rounds", "1",
        "--json", str(tmp_path / "q.json"),
    )  # fmt: skip
    assert code == 0
    assert document is not None
    check_schema(document)
    [record] = document["records"]
    assert (record["status"], record["n"], record["floor"]) == ("ok", 4, None)
    assert document["argv"][:5] == [f"{user_flows}:quick", "--backend", "trio", "--rounds", "1"]


def baseline_of(cell: str, median: float, path: Path) -> str:
    path.write_text(json.dumps({
        "format": "flowkit-bench/1", "records": [],
        "cells": [{"cell": cell, "median_s": median}, {"cell": "gone|asyncio", "median_s": 1.0}],
    }))  # fmt: skip
    return str(path)


@pytest.mark.parametrize(("median", "code"), [(1000.0, 0), (1e-9, 1)])
def test_compare_exits_1_when_a_cell_is_slower_than_the_baseline(
    user_flows: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], median: float,
    code: int,
) -> None:  # fmt: skip
    cell = f"{user_flows}:quick|asyncio|threads:8|none|-|flowkit"
    baseline = baseline_of(cell, median, tmp_path / "base.json")
    assert bench(f"{user_flows}:quick", "--rounds", "1", "--compare", baseline)[0] == code
    out = capsys.readouterr().out
    assert "gone|asyncio" in out
    assert "only in the baseline" in out
    assert ("SLOWER" in out) == (code == 1)


def test_compare_matches_cells_by_id_with_a_tolerance() -> None:
    here = [{"cell": "a", "median_s": 1.1}, {"cell": "b", "median_s": 1.2},
            {"cell": "c", "median_s": None}, {"cell": "new", "median_s": 1.0}]  # fmt: skip
    before = [{"cell": "a", "median_s": 1.0}, {"cell": "b", "median_s": 1.0},
              {"cell": "c", "median_s": 1.0}, {"cell": "old", "median_s": 1.0}]  # fmt: skip
    result = compare(here, before, tolerance=0.15)
    assert {c.cell: c.regressed for c in result.changes} == {"a": False, "b": True, "c": True}
    assert (result.only_here, result.only_baseline) == (["new"], ["old"])
    assert result.regressed
    assert not compare(here[:1], before, tolerance=0.15).regressed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cpu", "--runner", "threads:0"], "--runner 'threads:0' is not a runner: give threads:N"),
        (["cpu", "--runner", "fibers:2"], "--runner 'fibers:2' is not a runner"),
        (["cpu", "--limit", "0"], "--limit '0' is not a limit: give none or a whole number"),
        (["cpu", "--n", "10,x"], "--n 'x' is not a task count"),
        (["cpu", "--backend", "curio"], "--backend 'curio' is not a backend"),
        (["cpu", "--backend", "uvloop"], "asks for uvloop, which is not installed"),
        (["cpu", "--rounds", "0"], "--rounds 0 is too few"),
        (["cpu", "--param", "x=1"], "--param is for a flow of yours"),
        (["nope"], "workload 'nope' is neither a built-in (cpu, io-async"),
        (["no_such_module_here:f"], "cannot load the flow no_such_module_here:f"),
        (["cpu", "--html", "x.html"], "--html needs matplotlib: pip install 'flowkit[bench]'"),
    ],
)
def test_bad_matrix_input_is_refused_before_anything_runs(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if the extras were missing.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert main(["bench", *args]) == 2
    assert message in capsys.readouterr().err


def test_a_user_flow_without_n_refuses_n(user_flows: str) -> None:
    with pytest.raises(MatrixError, match="takes no parameter n; leave --n out"):
        Matrix.parse(f"{user_flows}:quick", n="10")


def test_rounds_come_after_one_warm_up_per_cell_each_round_shuffled() -> None:
    cells = [Cell("cpu", "flowkit", None, "asyncio", "threads:1", None, n) for n in range(6)]
    order = schedule(cells, 3, seed=1, warm_up=True)
    assert [t.round for t in order] == [None] * 6 + [0] * 6 + [1] * 6 + [2] * 6
    rounds = [[t.cell for t in order if t.round == r] for r in (None, 0, 1, 2)]
    assert all(sorted(r, key=lambda c: c.n or 0) == cells for r in rounds)
    assert len({tuple(c.n for c in r) for r in rounds}) > 1  # shuffled, not one fixed order
    assert schedule(cells, 3, seed=1, warm_up=True) == order


def test_html_hands_the_json_document_to_the_report_writer(
    user_flows: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[tuple[dict[str, Any], Path]] = []
    report = types.ModuleType("flowkit.bench._html")
    report.__spec__ = importlib.machinery.ModuleSpec("flowkit.bench._html", None)
    report.write_html = lambda document, path: written.append((document, path))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "flowkit.bench._html", report)
    code, document = bench(
        f"{user_flows}:quick", "--rounds", "1", "--json", str(tmp_path / "q.json"),
        "--html", str(tmp_path / "q.html"),
    )  # fmt: skip
    assert code == 0
    [(given, path)] = written
    assert (given, str(path)) == (document, str(tmp_path / "q.html"))


def test_uvloop_is_a_backend_when_installed() -> None:
    matrix = Matrix.parse("io-async", backend="asyncio,uvloop", n="10")
    assert matrix.backends == ("asyncio", "asyncio+uvloop")
