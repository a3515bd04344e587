"""The page in a real browser: headless Chromium (the system's, driven by Playwright)
looking at runs a real flow made, as a person would."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ui_scenario import crowded, in_a_process, run_scenario

from flowkit.artifacts import create_markdown_artifact
from flowkit.store import flush

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
if CHROMIUM is None and not ON_CI:
    pytest.skip(
        "no system Chromium: install it (Debian: apt-get install chromium) to run the page "
        "tests; under CI=true they always run",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright  # noqa: E402

LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store with the scenario run on trio, then on asyncio."""
    home = tmp_path_factory.mktemp("ui-browser-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLOWKIT_HOME", str(home))
        for backend in ("trio", "asyncio"):
            patch.setenv("FLOWKIT_BACKEND", backend)
            run_scenario()
        flush()
        yield home


@pytest.fixture(scope="module")
def url(home: Path) -> Iterator[str]:
    """``flowkit ui`` serving that store, from a process of its own."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flowkit", "ui", "--port", "0"],
        env={**os.environ, "FLOWKIT_HOME": str(home)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    try:
        yield line.split(" at ", 1)[1].split()[0]
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None, "CI=true: the page tests need the system's Chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page; what it showed last is saved as a screenshot in the test's directory,
    and any script error on it fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    page.screenshot(path=str(tmp_path / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert errors == []
    assert dialogs == []  # no user string ever ran as script


def _run_id(url: str, flow: str, index: int = 0) -> str:
    runs: list[dict[str, Any]] = httpx.get(f"{url}api/runs", params={"flow": flow}).json()["runs"]
    return str(runs[index]["id"])


def _open_run(page: Page, url: str, run_id: str) -> None:
    page.goto(f"{url}#/run/{run_id}")
    expect(page.locator("svg.gantt")).to_be_visible()


def test_the_list_shows_the_runs_and_filters_them(page: Page, url: str) -> None:
    page.goto(url)
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first.locator(".state")).to_have_text("Failed")
    # The second run found both squares cached by the first.
    expect(rows.first.locator(".counts span")).to_have_text(
        ["2 Cached", "6 Completed", "1 Failed", "1 TimedOut"]
    )
    expect(rows.first.locator(".tag")).to_have_text("nightly")
    page.select_option("select[name=state]", "Completed")
    page.click("button[type=submit]")
    expect(rows).to_have_text(["No runs match."])
    page.click("text=Clear")
    expect(rows).to_have_count(2)
    name = rows.first.locator("a").inner_text()
    page.fill("input[name=q]", name)
    page.click("button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("a")).to_have_text(name)
    page.fill("input[name=q]", "")
    page.fill("input[name=tag]", "weekly")
    page.click("button[type=submit]")
    expect(rows).to_have_text(["No runs match."])


@pytest.mark.parametrize("index", [0, 1], ids=["asyncio", "trio"])
def test_the_run_page_shows_the_tree(page: Page, url: str, index: int) -> None:
    _open_run(page, url, _run_id(url, "scenario", index))
    tree = page.locator("ul.tree li")
    names = [
        "flaky-0", "slow-0", "slow-1", "slow-2", "add-0", "<script>alert('pwned')</script>-0",
        "square-0", "square-1", "hang-0", "explode-0",
    ]  # fmt: skip
    for name in names:
        expect(page.locator(f'ul.tree ul li[data-run="{name}"]')).to_have_count(1)
    expect(tree).to_have_count(len(names) + 1)
    expect(page.locator("h1 .state")).to_have_text("Failed")
    # The hostile name is text: the only script on the page is the page's own.
    hostile = page.locator("ul.tree ul li button", has_text="<script>")
    expect(hostile).to_have_text("<script>alert('pwned')</script>-0")
    expect(hostile).to_be_visible()
    assert page.locator("script").count() == 1


def _bars(page: Page, run: str) -> list[dict[str, float]]:
    boxes = []
    for bar in page.locator(f'svg.gantt g.row[data-run="{run}"] rect.bar').all():
        box = bar.bounding_box()
        assert box is not None
        boxes.append({"x": box["x"], "end": box["x"] + box["width"],
                      "attempt": float(bar.get_attribute("data-attempt") or 0)})  # fmt: skip
    return boxes


@pytest.mark.parametrize("index", [0, 1], ids=["asyncio", "trio"])
def test_the_timeline_has_a_bar_per_attempt_in_order_and_overlap(
    page: Page, url: str, index: int
) -> None:
    _open_run(page, url, _run_id(url, "scenario", index))
    first, second = _bars(page, "flaky-0")
    assert (first["attempt"], second["attempt"]) == (1, 2)
    assert first["end"] <= second["x"]  # the retry comes after the attempt it retries
    slow = [_bars(page, f"slow-{i}")[0] for i in range(3)]
    assert max(b["x"] for b in slow) < min(b["end"] for b in slow)  # they ran at once
    gantt = page.locator("svg.gantt")
    expect(gantt.locator('g[data-run="hang-0"] rect.bar')).to_have_attribute(
        "data-outcome", "TimedOut"
    )
    expect(gantt.locator('g[data-run="square-1"] rect.bar')).to_have_attribute(
        "data-outcome", "Cached"
    )
    expect(gantt.locator('g[data-run="explode-0"] rect.bar')).to_have_attribute(
        "data-outcome", "Failed"
    )
    expect(gantt.locator('g[data-run="flaky-0"] line.wait-AwaitingRetry')).to_have_count(1)
    expect(page.locator('svg.graph path.edge[data-to="add-0"]')).to_have_count(3)


def test_a_failed_task_run_shows_its_error_and_traceback(page: Page, url: str) -> None:
    _open_run(page, url, _run_id(url, "scenario"))
    page.click('ul.tree li[data-run="explode-0"] > button')
    detail = page.locator("section.detail")
    expect(detail.locator("h2").first).to_have_text("Task run explode-0")
    expect(detail.locator("p.error")).to_have_text("RuntimeError: explode went off")
    expect(detail.locator("pre.traceback")).to_contain_text(
        'raise RuntimeError("explode went off")'
    )
    expect(detail.locator("table.states")).to_contain_text("Failed")


def test_the_logs_filter_by_level(page: Page, url: str) -> None:
    _open_run(page, url, _run_id(url, "scenario"))
    lines = page.locator("table.logs tr")
    everything = lines.count()
    assert everything > 10
    page.select_option("select.level", "40")
    expect(lines).to_have_count(3)  # hang-0's timeout, explode-0's failure, the flow's
    for level in lines.locator("td:nth-child(2)").all_inner_texts():
        assert level == "ERROR"
    page.select_option("select.level", "0")
    expect(lines).to_have_count(everything)


def test_artifacts_show_markdown_as_markup_and_user_html_as_text(page: Page, url: str) -> None:
    _open_run(page, url, _run_id(url, "scenario"))
    markdown = page.locator('.artifact[data-type="markdown"] .md')
    expect(markdown.locator("h1")).to_have_text("Report <script>alert(1)</script>")
    expect(markdown.locator("strong")).to_have_text("bold")
    expect(markdown.locator("a")).to_have_attribute("href", "https://example.org")
    table = page.locator('.artifact[data-type="table"] table')
    expect(table.locator("th")).to_have_text(["file", "rows"])
    expect(table.locator("tbody tr")).to_have_count(2)
    link = page.locator('.artifact[data-type="link"] a')
    expect(link).to_have_text("the dashboard")
    expect(link).to_have_attribute("href", "https://example.org/run")


def test_a_progress_artifact_is_a_bar_and_a_markdown_table_a_table(page: Page, url: str) -> None:
    _open_run(page, url, _run_id(url, "scenario"))
    bar = page.locator('.artifact[data-type="progress"] [role="progressbar"]')
    expect(bar).to_have_attribute("aria-valuenow", "62.5")
    expect(page.locator('.artifact[data-type="progress"]')).to_contain_text("62.5%")
    width = bar.evaluate(
        "b => b.firstElementChild.getBoundingClientRect().width / b.getBoundingClientRect().width"
    )
    assert 0.6 < width < 0.65
    table = page.locator('.artifact[data-type="markdown"] .md table')
    expect(table.locator("th")).to_have_text(["file", "rows"])
    expect(table.locator("tbody td").nth(2)).to_have_text("<b>b.csv</b>")
    align = table.locator("td.align-right").first.evaluate("c => getComputedStyle(c).textAlign")
    assert align == "right"


def test_artifacts_made_outside_runs_have_a_page(page: Page, url: str, home: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLOWKIT_HOME", str(home))
        with pytest.warns(FutureWarning):
            create_markdown_artifact("# Loose\n\n| k | v |\n|---|---|\n| a | 1 |", key="loose")
    page.goto(url)
    page.click("header a.nav")
    card = page.locator('.artifact[data-type="markdown"]')
    expect(card.locator(".note").first).to_contain_text("loose · no run")
    expect(card.locator(".md h1")).to_have_text("Loose")
    expect(card.locator(".md td")).to_have_text(["a", "1"])


def test_a_running_flow_in_another_process_updates_live(
    page: Page, url: str, home: Path, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    process = subprocess.Popen(
        [sys.executable, str(HERE / "ui_live_flow.py"), str(release)],
        env={**os.environ, "FLOWKIT_HOME": str(home)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            runs = httpx.get(f"{url}api/runs", params={"flow": "live"}).json()["runs"]
            if runs and runs[0]["total"] >= 2:
                break
            assert time.monotonic() < deadline, "the live flow never showed up"
            time.sleep(0.1)
        page.goto(url)
        row = page.locator(f'table.runs tr[data-run="{runs[0]["id"]}"]')
        expect(row.locator(".state")).to_have_text("Running")
        expect(row.locator(".progress")).to_be_visible()
        expect(row).to_contain_text("1/2")
        page.goto(f"{url}#/run/{runs[0]['id']}")
        expect(page.locator("#live")).to_be_visible()
        expect(page.locator("h1 .state")).to_have_text("Running")
        expect(page.locator('ul.tree li[data-run="wait_for_release-0"] .state')).to_have_text(
            "Running"
        )
        release.touch()
        # No reload: the page hears of the new rows from the server and redraws itself.
        expect(page.locator("h1 .state")).to_have_text("Completed", timeout=15_000)
        expect(page.locator('ul.tree li[data-run="after-0"] .state')).to_have_text("Completed")
        expect(page.locator('svg.gantt g[data-run="after-0"] rect.bar')).to_have_count(1)
    finally:
        release.touch()
        process.wait(20)


def _result(page: Page, run: str) -> Locator:
    page.click(f'ul.tree li[data-run="{run}"] > button')
    detail = page.locator("section.detail")
    expect(detail.locator("h2").first).to_have_text(f"Task run {run}")
    return detail.locator("tr", has=page.locator("th", has_text="Result"))


def test_the_timeline_shows_waits_for_a_worker_thread_and_the_page_results(
    page: Page, url: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run last: the list tests above count the runs of this store.
    monkeypatch.setenv("FLOWKIT_HOME", str(home))
    crowded()
    flush()
    _open_run(page, url, _run_id(url, "crowded"))
    gantt = page.locator("svg.gantt")
    # One thread for three naps: the first runs at once, the others wait their turn.
    waits = gantt.locator("line.wait-thread")
    expect(waits).to_have_count(2)
    for wait in waits.all():
        row = wait.locator("xpath=..")
        line, bar = wait.bounding_box(), row.locator("rect.bar").bounding_box()
        assert line is not None
        assert bar is not None
        assert line["width"] >= 20  # a tenth of a second or more, of about 0.3 s
        assert abs(line["x"] + line["width"] - bar["x"]) < 1.5  # the body starts after it
    expect(page.locator(".legend")).to_contain_text("for a worker thread")
    expect(_result(page, "nap-0").locator("code")).to_contain_text("{'i': 0, 'rows': [0, 1, 2")
    # Shown as text, as every user string is.
    expect(_result(page, "awkward-0").locator("code")).to_contain_text(
        "<Unrepresentable instance at 0x"
    )
    kept = _result(page, "kept-0")
    expect(kept.locator("th")).to_have_text("Result (not kept in memory)")
    expect(kept.locator("code")).to_have_text(str((home / "results" / "kept-7.json").resolve()))


def test_a_task_run_in_a_worker_process_shows_the_process(
    page: Page, url: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run last, as the test above.
    monkeypatch.setenv("FLOWKIT_HOME", str(home))
    pid = in_a_process()
    flush()
    _open_run(page, url, _run_id(url, "in-a-process"))
    ran_in = f"ran in process {pid}"
    expect(page.locator('ul.tree li[data-run="whose-0"] .worker')).to_have_text(f" · {ran_in}")
    expect(page.locator('svg.gantt g[data-run="whose-0"] rect.bar title')).to_contain_text(ran_in)
    page.click('ul.tree li[data-run="whose-0"] > button')
    detail = page.locator("section.detail")
    expect(
        detail.locator("tr", has=page.locator("th", has_text="Ran in")).locator("td")
    ).to_have_text(f"process {pid}")
    expect(detail.locator("table.states tr").last).to_contain_text(ran_in)


def test_the_run_page_shows_commits_and_rollbacks_with_their_hooks(
    page: Page, url: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowkit import flow, task
    from flowkit.transactions import transaction

    @task
    def write() -> None: ...

    @write.on_rollback
    def undo_write(txn: object) -> None: ...

    @flow(name="transactional")
    def main() -> None:
        with transaction(key="nightly"):
            write()
        with contextlib.suppress(KeyError), transaction():
            write()
            raise KeyError("x")

    monkeypatch.setenv("FLOWKIT_HOME", str(home))
    main()
    flush()
    _open_run(page, url, _run_id(url, "transactional"))
    rows = page.locator("table.transactions tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-action", "commit")
    expect(rows.nth(0)).to_contain_text("committed key nightly")
    expect(rows.nth(1)).to_have_attribute("data-action", "rollback")
    expect(rows.nth(1).locator(".hooks li")).to_have_text("rollback hook undo_write (write-1)")
