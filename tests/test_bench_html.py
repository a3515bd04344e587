"""``flowkit bench --html``: the report of a bench document, one self-contained page."""

from __future__ import annotations

import builtins
import json
import os
import random
import shutil
import sys
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import flowkit.bench
from flowkit.bench._html import write_html
from flowkit.exceptions import FlowkitError, MatplotlibMissingError

USER_FLOW = "myjobs.flows:etl"
BAD_ROUNDS = [
    ("failed", "WorkerCrashedError: worker 4242 died"),
    ("timeout", "the round outlived its 60 s deadline"),
]
FLOORS = {"threads": "ThreadPoolExecutor", "processes": "ProcessPoolExecutor"}


def _cell_id(
    workload: str, backend: str, runner: str, limit: int | None, n: int, system: str
) -> str:
    return f"{workload}|{backend}|{runner}|{'none' if limit is None else limit}|{n}|{system}"


def make_document(
    *,
    workload: str = "cpu",
    backends: Sequence[str] = ("asyncio", "trio"),
    runners: Sequence[str] = ("threads:2", "threads:8"),
    limits: Sequence[int | None] = (None,),
    ns: Sequence[int] = (100, 1000),
    rounds: int = 3,
    user_flow: bool = True,
    seed: int = 23,
) -> dict[str, Any]:
    """A small but realistic ``flowkit-bench/1`` document: ``workload`` by flowkit and by
    its floor on every backend, runner, limit and n; a failed and a timed-out round (the
    first flowkit cell), a cell without latency samples (the last floor), and a user's flow
    without a floor."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    cells: list[dict[str, Any]] = []

    def add(workload: str, system: str, backend: str, runner: str, limit: int | None, n: int,
            floor_cell: str | None) -> str:  # fmt: skip
        kind, _, count = runner.partition(":")
        cell = _cell_id(workload, backend, runner, limit, n, system)
        floor = FLOORS[kind] if floor_cell or system == "floor" else None
        # A CPU-bound body of 4 ms on 2 cores: threads share the GIL, processes do not;
        # flowkit adds its overhead per task to the floor's.
        at_once = min(int(count), limit or int(count), 2) if kind == "processes" else 1
        task = 0.004 + (0.00002 if system == "floor" else 0.0004 if at_once > 1 else 0.00015)
        walls: list[float] = []
        for number in range(rounds):
            wall = (0.02 + task * n / at_once) * rng.uniform(0.97, 1.06)
            status, error = "ok", None
            if not cells and system == "flowkit" and number < 2:  # the first cell's
                status, error = BAD_ROUNDS[number]
            ok = status == "ok"
            if ok:
                walls.append(wall)
            latencies = [task * rng.lognormvariate(0, 0.3) for _ in range(min(n, 200))]
            records.append({
                "cell": cell, "workload": workload, "system": system, "floor": floor,
                "backend": backend, "runner": runner, "limit": limit, "n": n, "round": number,
                "status": status, "error": error,
                "wall_s": wall if ok else None, "throughput": n / wall if ok else None,
                "latencies_s": latencies if ok else [],
                "phases_s": {"waiting": 0.1 * wall * int(count), "running": 0.004 * n,
                             "recording": 0.00004 * n} if ok and system == "flowkit" else None,
                "flow_run_id": f"0193c0de-{len(records):04x}-7000-8000-{rng.getrandbits(48):012x}"
                if system == "flowkit" else None,
            })  # fmt: skip
        median = sorted(walls)[len(walls) // 2] if walls else None
        cells.append({
            "cell": cell, "workload": workload, "system": system, "floor": floor,
            "backend": backend, "runner": runner, "limit": limit, "n": n,
            "rounds": rounds, "ok": len(walls), "failed": rounds - len(walls) and 1,
            "timeout": rounds - len(walls) and 1, "median_s": median,
            "min_s": min(walls, default=None), "max_s": max(walls, default=None),
            "spread": (max(walls) - min(walls)) / median if median else None,
            "ratio": None, "floor_cell": floor_cell,
        })  # fmt: skip
        return cell

    for backend in backends:
        for runner in runners:
            for limit in limits:
                for n in ns:
                    floor = _cell_id(workload, backend, runner, limit, n, "floor")
                    add(workload, "flowkit", backend, runner, limit, n, floor)
                    add(workload, "floor", backend, runner, limit, n, None)
    if user_flow:
        add(USER_FLOW, "flowkit", backends[0], runners[0], None, ns[0], None)
    medians = {c["cell"]: c["median_s"] for c in cells}
    for cell in cells:
        mine, theirs = cell["median_s"], medians.get(cell["floor_cell"])
        cell["ratio"] = mine / theirs if mine and theirs else None
    last_floor = next(c["cell"] for c in reversed(cells) if c["system"] == "floor")
    for record in records:
        if record["cell"] == last_floor:
            record["latencies_s"] = []
    return {
        "format": "flowkit-bench/1",
        "started": "2026-12-02T11:30:00+00:00",
        "argv": ["cpu", "--runner", ",".join(runners), "--json", "bench.json"],
        "machine": {
            "cores": 2,
            "cpu": "AMD EPYC 7B13",
            "python": "3.11.7 (CPython)",
            "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
            "governor": None,
            "versions": {
                "flowkit": "0.1.0",
                "anyio": "4.14.0",
                "trio": "0.27.0",
                "uvloop": None,
                "distributed": "2024.12.1",
            },
        },
        "records": records,
        "cells": cells,
    }


class _Page(HTMLParser):
    """What the tests look at in a page: its tags, rows by cell, sections, and text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.open: list[str] = []
        self.rows: dict[str, list[str]] = {}  # table class -> data-cell of its rows
        self.table = ""
        self.tags: list[str] = []
        self.text: list[str] = []
        self.sections: list[tuple[str, int]] = []  # (h2 text, <svg> count)
        self._h2 = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append(tag)
        if tag == "table":
            self.table = attributes.get("class") or ""
        elif tag == "tr" and "data-cell" in attributes:
            self.rows.setdefault(self.table, []).append(attributes["data-cell"] or "")
        elif tag == "h2":
            self._h2 = True
            self.sections.append(("", 0))
        elif tag == "svg" and self.sections:
            title, count = self.sections[-1]
            self.sections[-1] = (title, count + 1)

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._h2 = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._h2:
            title, count = self.sections[-1]
            self.sections[-1] = (title + data, count)

    def section(self, prefix: str) -> tuple[str, int]:
        return next(s for s in self.sections if s[0].startswith(prefix))


PLOTS = ("1. Throughput", "2. Latency", "3. flowkit's overhead", "4. Where time went")


@pytest.fixture
def document() -> dict[str, Any]:
    return make_document()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, _Page]:
    """``make_document()``, its page's text and the page read: one render for the tests
    that only look at it."""
    document = make_document()
    text, page = _render(document, tmp_path_factory.mktemp("report"))
    return document, text, page


def _render(document: dict[str, Any], tmp_path: Path) -> tuple[str, _Page]:
    path = tmp_path / "report.html"
    write_html(document, path)
    text = path.read_text(encoding="utf-8")
    return text, _Page(text)


def test_every_cell_has_a_row_and_every_flowkit_round_its_flow_run(
    report: tuple[dict[str, Any], str, _Page],
) -> None:
    document, text, page = report
    assert text.startswith("<!doctype html>")
    assert page.rows["cells"] == [c["cell"] for c in document["cells"]]
    flowkit = [c["cell"] for c in document["cells"] if c["system"] == "flowkit"]
    assert page.rows["runs"] == flowkit
    for record in document["records"]:
        if record["system"] == "flowkit":
            assert f"/#/run/{record['flow_run_id']}" in text
    assert "flowkit ui" in text


def test_floors_are_named_and_compared_with(report: tuple[dict[str, Any], str, _Page]) -> None:
    document, _, page = report
    floors = [c["cell"] for c in document["cells"] if c["system"] == "floor"]
    assert floors
    assert set(floors) <= set(page.rows["cells"])
    assert "floor: ThreadPoolExecutor" in page.text
    rated = next(c for c in document["cells"] if c["ratio"] is not None)
    assert f"{rated['ratio']:.2f}×" in page.text
    assert "no floor" in page.text  # the user's flow


def test_failed_and_timed_out_rounds_are_shown_with_their_errors(
    report: tuple[dict[str, Any], str, _Page],
) -> None:
    document, _, page = report
    first = document["cells"][0]["cell"]
    assert page.rows["failures"] == [first, first]
    assert "WorkerCrashedError: worker 4242 died" in page.text
    assert "the round outlived its 60 s deadline" in page.text
    assert "Failed and timed-out rounds (2)" in page.text


def test_the_header_describes_the_command_and_the_machine(
    report: tuple[dict[str, Any], str, _Page],
) -> None:
    _, _, page = report
    text = "".join(page.text)
    assert "flowkit bench cpu --runner threads:2,threads:8 --json bench.json" in text
    assert "2026-12-02 11:30:00 UTC" in text
    for value in ("AMD EPYC 7B13", "3.11.7 (CPython)", "Linux-6.1.0", "2024.12.1"):
        assert value in text
    assert "uvloop" in page.text
    assert "not installed" in page.text


def test_four_plots_each_an_svg(report: tuple[dict[str, Any], str, _Page]) -> None:
    document, _, page = report
    for title in PLOTS:
        assert page.section(title)[1] == 1, title
    # the floor without samples is named rather than drawn empty
    last_floor = next(c["cell"] for c in reversed(document["cells"]) if c["system"] == "floor")
    assert f"Cells without samples: {last_floor}." in "".join(page.text)


def test_one_cell_still_renders_every_section_saying_what_is_not_drawn(tmp_path: Path) -> None:
    document = make_document(backends=["asyncio"], runners=["threads:4"], ns=[1000],
                             user_flow=False)  # fmt: skip
    document["cells"] = document["cells"][1:]  # the floor alone
    document["records"] = [r for r in document["records"] if r["system"] == "floor"]
    _, page = _render(document, tmp_path)
    text = "".join(page.text)
    assert [page.section(title)[1] for title in PLOTS] == [0, 0, 0, 0]
    assert "Every configuration ran at one concurrency only (cpu at n=1,000)" in text
    assert "No cell has latency samples" in text  # that floor is the one without samples
    assert "No flowkit cell has a floor's median" in text
    assert "No flowkit cell finished a round with phase times" in text
    assert "No flowkit cell was run" in text


def test_one_n_omits_the_overhead_plot_with_a_sentence(tmp_path: Path) -> None:
    _, page = _render(make_document(ns=[500]), tmp_path)
    assert page.section("3. flowkit's overhead")[1] == 0
    assert "Only one n was run (500 tasks)" in "".join(page.text)
    for title in ("1. Throughput", "2. Latency", "4. Where time went"):
        assert page.section(title)[1] == 1


def test_limits_are_the_axis_when_only_they_vary(tmp_path: Path) -> None:
    document = make_document(runners=["threads:8"], limits=[2, 4, None], ns=[100])
    text, page = _render(document, tmp_path)
    assert page.section("1. Throughput")[1] == 1
    assert "Concurrency is the limit" in text


HOSTILE = "<script>alert('pwned')</script>$x^2$ & \"friends\""


def test_strings_from_the_document_are_escaped(tmp_path: Path) -> None:
    document = make_document(workload=HOSTILE, ns=[10, 20])
    document["records"][0]["error"] = "<img src=x onerror=alert(1)> --"
    document["argv"].append("<b>")
    text, page = _render(document, tmp_path)
    assert "<script" not in text
    assert "<img" not in text
    assert "<b>" not in text
    assert page.tags.count("svg") == 4
    assert HOSTILE in "".join(page.text)
    assert "<img src=x onerror=alert(1)> --" in page.text


def test_a_document_of_another_format_is_refused(document: dict[str, Any], tmp_path: Path) -> None:
    document["format"] = "flowkit-bench/2"
    with pytest.raises(
        ValueError, match=r"format is 'flowkit-bench/2', expected 'flowkit-bench/1'"
    ):
        write_html(document, tmp_path / "report.html")
    assert list(tmp_path.iterdir()) == []


def test_a_bad_field_is_named(document: dict[str, Any], tmp_path: Path) -> None:
    document["cells"][3]["median_s"] = "fast"
    with pytest.raises(ValueError, match=r"cells\[3\]\['median_s'\] is 'fast', expected int"):
        write_html(document, tmp_path / "report.html")
    del document["records"][5]["status"]
    with pytest.raises(ValueError, match=r"records\[5\] has no 'status'"):
        write_html(document, tmp_path / "report.html")


def test_a_record_of_an_unknown_cell_is_refused(document: dict[str, Any], tmp_path: Path) -> None:
    document["records"][0]["cell"] = "nowhere"
    with pytest.raises(ValueError, match="records\\[0\\] is of cell 'nowhere', which is not in"):
        write_html(document, tmp_path / "report.html")


def test_the_file_is_replaced_whole_and_no_temporary_is_left(
    document: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "report.html"
    path.write_text("an older report")
    write_html(document, path)
    assert path.read_text().startswith("<!doctype html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    document: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "report.html"
    path.write_text("an older report")

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        write_html(document, path)
    assert path.read_text() == "an older report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_without_matplotlib_the_error_says_what_to_install(
    document: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delitem(sys.modules, "flowkit.bench._plots", raising=False)
    monkeypatch.delattr(flowkit.bench, "_plots", raising=False)
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(MatplotlibMissingError) as caught:
        write_html(document, tmp_path / "report.html")
    assert str(caught.value) == (
        "flowkit bench --html needs matplotlib: pip install 'flowkit[bench]'"
    )
    assert isinstance(caught.value, RuntimeError)
    assert isinstance(caught.value, FlowkitError)
    assert list(tmp_path.iterdir()) == []


def test_the_document_survives_a_json_round_trip(
    report: tuple[dict[str, Any], str, _Page], tmp_path: Path
) -> None:
    """The report reads what ``json.load`` gives back, not only what a test built."""
    document, _, page = report
    _, again = _render(json.loads(json.dumps(document)), tmp_path)
    assert again.rows == page.rows
    assert again.sections == page.sections


# The page in a real browser: headless Chromium, as in tests/test_ui_browser.py.

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip


@pytest.fixture
def chromium() -> Iterator[Any]:
    if CHROMIUM is None and os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        pytest.skip("no system Chromium: install it (Debian: apt-get install chromium)")
    assert CHROMIUM is not None, "CI=true: the page tests need the system's Chromium"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


def test_the_page_draws_its_plots_offline_in_a_browser(
    document: dict[str, Any], tmp_path: Path, chromium: Any
) -> None:
    path = tmp_path / "report.html"
    write_html(document, path)
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(path.as_uri())
    sizes = page.eval_on_selector_all(
        "figure svg", "svgs => svgs.map(s => [s.clientWidth, s.clientHeight])"
    )
    overflow = page.evaluate("document.documentElement.scrollWidth")
    context.close()
    assert len(sizes) == 4
    assert all(width > 600 and height > 100 for width, height in sizes), sizes
    assert overflow <= 1200
    assert requests == [path.as_uri()]
    assert errors == []
