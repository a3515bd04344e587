"""The page's API, endpoint by endpoint, over a store a real flow wrote (httpx against
the app), and the ``flowkit ui`` command around it."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from ui_scenario import crowded, in_a_process, run_scenario, small

from flowkit import flow
from flowkit.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from flowkit.store import flush
from flowkit.store._schema import connect
from flowkit.ui import _app, create_app
from flowkit.ui import _queries as q


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding a small run, then the scenario's run, on asyncio and on trio (made
    once per module: the tests only read it)."""
    home = tmp_path_factory.mktemp("ui-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLOWKIT_HOME", str(home))
        patch.setenv("FLOWKIT_BACKEND", str(request.param))
        small(1)
        run_scenario()
        with pytest.warns(FutureWarning):  # made outside any run
            create_markdown_artifact("# Notes", key="loose-notes")
        flush()
    return home / "runs.db"


class Client:
    """httpx against the app in this process, each request on a loop of its own."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def request(
        self, method: str, path: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
                return await http.request(method, path, params=params)

        return anyio.run(send)

    def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        return self.request("GET", path, params)


@pytest.fixture
def client(store: Path) -> Client:
    return Client(create_app(store))


def _runs(client: Client, **params: str) -> list[dict[str, Any]]:
    response = client.get("/api/runs", params=params)
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["runs"]
    return runs


def _detail(client: Client) -> dict[str, Any]:
    root = _runs(client, flow="scenario")[0]
    detail: dict[str, Any] = client.get(f"/api/runs/{root['id']}").json()
    return detail


def _by_name(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in detail["runs"]}


def test_the_list_shows_root_runs_newest_first_with_task_runs_counted(client: Client) -> None:
    scenario, small_run = _runs(client)
    assert (scenario["flow"], small_run["flow"]) == ("scenario", "small")
    assert scenario["state_name"] == "Failed"
    assert scenario["tags"] == ["nightly"]
    assert scenario["counts"] == {"Completed": 7, "Cached": 1, "TimedOut": 1, "Failed": 1}
    assert scenario["total"] == scenario["finished"] == 10
    assert scenario["duration"] > 0


@pytest.mark.parametrize(
    ("params", "flows"),
    [
        ({"flow": "small"}, ["small"]),
        ({"state": "failed"}, ["scenario"]),
        ({"state": "Completed"}, ["small"]),
        ({"tag": "nightly"}, ["scenario"]),
        ({"tag": "night"}, []),
        ({"flow": "nothing"}, []),
    ],
)
def test_the_list_filters(client: Client, params: dict[str, str], flows: list[str]) -> None:
    assert [r["flow"] for r in _runs(client, **params)] == flows


def test_the_list_searches_run_names_literally(client: Client) -> None:
    name = _runs(client, flow="small")[0]["name"]
    assert [r["name"] for r in _runs(client, q=name[2:-2])] == [name]
    assert _runs(client, q="%") == []
    assert _runs(client, q="_") == []


def test_the_list_filters_by_time(client: Client) -> None:
    hour = timedelta(hours=1)
    assert len(_runs(client, since=(datetime.now() - hour).isoformat())) == 2
    assert _runs(client, since=(datetime.now() + hour).isoformat()) == []
    assert _runs(client, until=(datetime.now() - hour).isoformat()) == []


def test_the_list_refuses_a_bad_filter_with_the_reason(client: Client) -> None:
    for params, said in [
        ({"since": "yesterday"}, "since='yesterday' is not an ISO date"),
        ({"limit": "0"}, "limit='0' is not a whole number from 1 to 200"),
        ({"before": "x~y"}, "before='x~y' is not a page mark"),
    ]:
        response = client.get("/api/runs", params=params)
        assert response.status_code == 400
        assert said in response.json()["error"]


def test_flows_lists_the_names_of_flows_with_runs(client: Client) -> None:
    assert client.get("/api/flows").json() == {"flows": ["scenario", "small"]}


def test_a_run_has_its_tree_with_parents(client: Client) -> None:
    detail = _detail(client)
    runs = _by_name(detail)
    root = runs[detail["runs"][0]["name"]]
    assert root["kind"] == "flow"
    assert root["id"] == detail["root_id"]
    assert {r["parent_id"] for r in detail["runs"][1:]} == {root["id"]}
    assert "<script>alert('pwned')</script>-0" in runs


def test_a_retried_run_has_one_attempt_per_try_with_the_delay_between(client: Client) -> None:
    flaky = _by_name(_detail(client))["flaky-0"]
    first, second = flaky["attempts"]
    assert (first["state_name"], second["state_name"]) == ("AwaitingRetry", "Completed")
    assert "ValueError: ok failed its first attempt" in first["message"]
    assert first["start"] <= first["end"] <= second["start"] <= second["end"]
    delay = [w for w in flaky["waits"] if w["kind"] == "AwaitingRetry"]
    assert len(delay) == 1
    assert delay[0]["start"] == first["end"]
    assert delay[0]["end"] == second["start"]


def test_concurrent_runs_overlap_in_time(client: Client) -> None:
    runs = _by_name(_detail(client))
    spans = [runs[f"slow-{i}"]["attempts"][0] for i in range(3)]
    assert max(s["start"] for s in spans) < min(s["end"] for s in spans)


def test_a_cache_hit_is_an_attempt_of_no_length_with_its_reason(client: Client) -> None:
    runs = _by_name(_detail(client))
    (hit,) = runs["square-1"]["attempts"]
    assert hit["state_name"] == "Cached"
    assert hit["start"] == hit["end"]
    assert runs["square-1"]["cache"].startswith("hit: cached by run")
    assert runs["square-0"]["cache"].startswith("miss")


def test_a_timed_out_run_ends_its_attempt_timed_out(client: Client) -> None:
    hang = _by_name(_detail(client))["hang-0"]
    assert [a["state_name"] for a in hang["attempts"]] == ["TimedOut"]
    assert hang["error"] == "TaskTimeoutError: Task run 'hang-0' exceeded its timeout of 0.05 s"


def test_a_failed_run_has_its_error_and_traceback(client: Client) -> None:
    explode = _by_name(_detail(client))["explode-0"]
    assert explode["error"] == "RuntimeError: explode went off"
    assert 'raise RuntimeError("explode went off")' in explode["traceback"]
    assert explode["traceback"].rstrip().endswith("RuntimeError: explode went off")


def test_a_run_has_states_parameters_and_upstream_links(client: Client) -> None:
    runs = _by_name(_detail(client))
    assert [s["name"] for s in runs["flaky-0"]["states"]] == [
        "Pending", "Running", "AwaitingRetry", "Retrying", "Completed",
    ]  # fmt: skip
    assert runs["flaky-0"]["parameters"] == {"name": "ok"}
    assert runs["add-0"]["task_inputs"] == {
        name: [runs[f"slow-{i}"]["id"]] for i, name in enumerate("abc")
    }


def test_a_completed_run_has_a_short_repr_of_its_result(client: Client) -> None:
    runs = _by_name(_detail(client))
    assert runs["flaky-0"]["result"] == "'ok'"
    assert runs["add-0"]["result"] == "3"
    assert runs["square-1"]["result"] == "9"  # a cache hit: the value it found
    assert runs["explode-0"]["result"] is None  # failed: no result
    assert runs["hang-0"]["result"] is None


def test_results_are_short_and_safe_and_a_kept_result_shows_its_place(
    flowkit_home: Path, backend: str
) -> None:
    assert crowded() == 10
    flush()
    c = Client(create_app(flowkit_home / "runs.db"))
    runs = _by_name(c.get(f"/api/runs/{_runs(c)[0]['id']}").json())
    assert runs["nap-0"]["result"].startswith("{'i': 0, 'rows': [0, 1, 2, 3, 4, 5, ...]")
    assert len(runs["nap-0"]["result"]) <= 200
    assert runs["awkward-0"]["result"].startswith("<Unrepresentable instance at 0x")
    kept = runs["kept-0"]
    assert kept["result"] is None  # not kept in memory: its place instead
    assert kept["result_location"] == str((flowkit_home / "results" / "kept-7.json").resolve())
    assert runs[_runs(c)[0]["name"]]["result"] == "10"


def test_the_wait_for_a_worker_thread_starts_its_attempt(flowkit_home: Path, backend: str) -> None:
    crowded()
    flush()
    c = Client(create_app(flowkit_home / "runs.db"))
    runs = _by_name(c.get(f"/api/runs/{_runs(c)[0]['id']}").json())
    attempts = [runs[f"nap-{i}"]["attempts"] for i in range(3)]
    assert all(len(a) == 1 for a in attempts)
    waits = sorted(a[0]["thread_wait"] for a in attempts)
    # One thread: the first starts at once, the others wait for one nap, then two.
    assert waits[0] < 0.05
    assert 0.05 < waits[1] < waits[2]
    for (attempt,) in attempts:
        assert attempt["start"] + attempt["thread_wait"] <= attempt["end"]
    ending = [s for s in runs["nap-0"]["states"] if s["thread_wait"] is not None]
    assert [s["name"] for s in ending] == ["Completed"]  # the state that ends the attempt
    assert runs["awkward-0"]["attempts"][0]["thread_wait"] is None  # it ran inline


def test_each_attempt_says_who_ran_its_body(client: Client) -> None:
    detail = _detail(client)
    runs = _by_name(detail)
    flaky = runs["flaky-0"]
    assert [a["worker"] for a in flaky["attempts"]] == ["thread", "thread"]
    assert [(s["name"], s["worker"]) for s in flaky["states"] if s["worker"]] == [
        ("AwaitingRetry", "thread"), ("Completed", "thread"),
    ]  # fmt: skip
    assert flaky["worker"] == "thread"
    assert runs["hang-0"]["worker"] == "thread"  # timed out in its thread
    assert runs["add-0"]["worker"] is None  # called plainly: it ran inline, in the flow's body
    assert runs["add-0"]["attempts"][0]["worker"] is None
    assert runs["square-1"]["worker"] is None  # a cache hit ran nothing
    assert detail["runs"][0]["worker"] is None  # the flow run's body ran in the caller's thread


def test_a_task_run_in_a_worker_process_names_the_process(flowkit_home: Path) -> None:
    pid = in_a_process()
    flush()
    c = Client(create_app(flowkit_home / "runs.db"))
    run = _by_name(c.get(f"/api/runs/{_runs(c)[0]['id']}").json())["whose-0"]
    assert pid != os.getpid()
    assert run["worker"] == f"process {pid}"
    assert [a["worker"] for a in run["attempts"]] == [f"process {pid}"]
    assert [s["worker"] for s in run["states"]] == [None, None, f"process {pid}"]


def test_a_run_has_its_log_lines_in_order(client: Client) -> None:
    logs = _detail(client)["logs"]
    assert [line["timestamp"] for line in logs] == sorted(line["timestamp"] for line in logs)
    assert any("Finished in state TimedOut" in line["message"] for line in logs)


def test_a_run_has_its_artifacts_rendered_safely(client: Client) -> None:
    markdown, table, link, _ = _detail(client)["artifacts"]
    assert markdown["key"] == "report"
    assert "<script>" not in markdown["html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown["html"]
    assert '<a href="https://example.org" rel="noopener noreferrer">docs</a>' in markdown["html"]
    assert table["table"] == {"columns": ["file", "rows"], "rows": [["a.csv", 3], ["b.csv", 5]]}
    assert link["link"] == {"link": "https://example.org/run", "link_text": "the dashboard"}


def test_a_markdown_artifact_has_its_pipe_table_rendered(client: Client) -> None:
    html = _detail(client)["artifacts"][0]["html"]
    assert '<th class="align-left">file</th><th class="align-right">rows</th>' in html
    assert '<td class="align-left">&lt;b&gt;b.csv&lt;/b&gt;</td>' in html


def test_a_progress_artifact_gives_its_last_update(client: Client) -> None:
    progress = _detail(client)["artifacts"][3]
    assert (progress["type"], progress["key"], progress["progress"]) == ("progress", "load", 62.5)
    assert progress["updated"] > progress["created"]
    assert progress["description_html"] == "<p>files loaded</p>"


def test_artifacts_made_outside_runs_are_listed(client: Client) -> None:
    (loose,) = client.get("/api/artifacts").json()["artifacts"]
    assert (loose["run_id"], loose["key"]) == (None, "loose-notes")
    assert loose["html"] == "<h1>Notes</h1>"


def test_updating_a_progress_artifact_moves_the_runs_change_mark(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLOWKIT_HOME", str(tmp_path))

        @flow
        def counting() -> UUID:
            return create_progress_artifact(1)

        progress_id = counting()
        flush()
        db = connect(tmp_path / "runs.db", create=False)
        root = db.execute("SELECT root_id FROM artifacts").fetchone()[0]
        before = q.change_mark(db, root)
        update_progress_artifact(progress_id, 2)  # outside the run: written at once
        assert q.change_mark(db, root) != before
        db.close()


def test_any_run_of_a_tree_gives_the_whole_tree(client: Client) -> None:
    detail = _detail(client)
    child = detail["runs"][3]["id"]
    assert client.get(f"/api/runs/{child}").json()["root_id"] == detail["root_id"]


def test_an_unknown_run_is_404_with_its_id(client: Client) -> None:
    response = client.get("/api/runs/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "no run has the id 'nope'"}


def test_the_page_and_its_assets_are_served_with_a_strict_policy(client: Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "/static/app.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset, kind in [("app.js", "javascript"), ("app.css", "text/css")]:
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200
        assert kind in response.headers["content-type"]


@pytest.mark.parametrize(
    "path", ["/static/../_app.py", "/static/%2e%2e/_app.py", "/static/..%2f..%2fstore/__init__.py",
             "/runs.db", "/api/../runs.db"],
)  # fmt: skip
def test_no_file_outside_the_page_is_served(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "import" not in response.text
    assert "SQLite" not in response.text


def _stamps(store: Path) -> list[tuple[int, int]]:
    # os.stat, never open(): closing a descriptor of the database would drop the SQLite
    # locks this process's writer holds on it.
    files = [store, store.with_name("runs.db-wal")]
    return [(f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.exists()]


def test_nothing_writes(client: Client, store: Path) -> None:
    before = _stamps(store)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert client.request(method, "/api/runs").status_code == 405
    for path in ("/api/runs", "/api/flows", "/"):
        assert client.get(path).status_code == 200
    assert _stamps(store) == before


def test_an_empty_home_serves_empty_lists(tmp_path: Path) -> None:
    c = Client(create_app(tmp_path / "none" / "runs.db"))
    assert c.get("/api/runs").json() == {"runs": [], "next": None}
    assert c.get("/api/flows").json() == {"flows": []}
    assert c.get("/api/runs/x").status_code == 404
    assert not (tmp_path / "none").exists()


def test_pages_follow_each_other_without_gaps_or_repeats(flowkit_home: Path) -> None:
    path = flowkit_home / "runs.db"
    db = connect(path, create=True)
    rows = [
        (str(uuid.UUID(int=i)), "flow", f"run-{i}", "f", None, None, str(uuid.UUID(int=i)), "[]",
         "{}", "{}", "COMPLETED", "Completed", None, None, 1, 1000.0 + i // 3, None, None, 1, "h")
        for i in range(100_000)
    ]  # fmt: skip
    db.execute("BEGIN")
    columns = "id, kind, name, definition, parent_id, flow_run_id, root_id, tags, parameters, "
    columns += "task_inputs, state_type, state_name, state_message, error, run_count, created, "
    columns += "start_time, end_time, pid, host"
    db.executemany(f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' * 20)})", rows)
    db.execute("COMMIT")
    seen: list[str] = []
    plans: list[str] = []
    reader = q.open_readonly(path)
    assert reader is not None
    reader.set_trace_callback(plans.append)
    page = q.runs_page(reader, limit=200)
    seen += [r["name"] for r in page["runs"]]
    for _ in range(4):
        page = q.runs_page(reader, before=page["next"], limit=200)
        seen += [r["name"] for r in page["runs"]]
    assert len(seen) == len(set(seen)) == 1000
    assert seen[0] == "run-99999"
    assert seen[-1] == "run-99000"
    # The page query walks the index of root runs by time, never the whole table.
    page_query = plans[-2]  # the last page's; the last statement counts its task runs
    plan = " ".join(str(row[3]) for row in reader.execute("EXPLAIN QUERY PLAN " + page_query))
    assert "roots_by_created" in plan, plan
    reader.close()
    db.close()


def test_the_events_stream_says_when_the_store_changes() -> None:
    marks = iter([(1, 0, 0), (1, 0, 0), (2, 0, 0)])

    async def first_two() -> list[str]:
        got: list[str] = []
        stream = _app._changes(lambda: next(marks))
        async for event in stream:
            got.append(event)
            if len(got) == 2:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        return got

    hello, change = anyio.run(first_two)
    assert hello == "event: hello\ndata: [1, 0, 0]\n\n"
    assert change == "event: change\ndata: [2, 0, 0]\n\n"


def _start_ui(*args: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "flowkit", "ui", "--port", "0", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    lines = []
    while not (line := process.stdout.readline()).startswith("flowkit ui:"):
        assert line, "".join(lines)
        lines.append(line)
    return process, "".join(lines) + line


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(10)
    assert process.stdout is not None
    process.stdout.close()


def test_flowkit_ui_serves_the_store_and_streams_its_changes(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWKIT_HOME", str(store.parent))
    env = dict(os.environ)
    process, said = _start_ui(env=env)
    try:
        url = said.split(" at ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert "Warning" not in said
        with httpx.Client(base_url=url, timeout=10) as http:
            before = len(http.get("/api/runs").json()["runs"])
            with http.stream("GET", "/api/events") as events:
                lines = events.iter_lines()
                assert next(lines) == "event: hello"
                assert next(lines).startswith("data: [")
                small(2)  # written by this process while the server reads
                flush()
                assert next(line for line in lines if line) == "event: change"
            assert len(http.get("/api/runs").json()["runs"]) == before + 1
    finally:
        _stop(process)


def test_flowkit_ui_warns_when_it_serves_beyond_this_machine() -> None:
    env = dict(os.environ)
    process, said = _start_ui("--host", "0.0.0.0", env=env)
    _stop(process)
    assert (
        "Warning: serving on 0.0.0.0, beyond this machine; the page has no authentication" in said
    )


def test_flowkit_ui_says_when_the_port_is_taken() -> None:
    from flowkit.ui._serve import bind

    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "flowkit", "ui", "--port", str(port)],
            capture_output=True,
            text=True, timeout=30,
        )  # fmt: skip
    finally:
        taken.close()
    assert result.returncode == 2
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
    assert "pick another with --port" in result.stderr


def test_flowkit_ui_says_how_to_install_the_extra_when_it_is_missing(tmp_path: Path) -> None:
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nclass Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('starlette', 'uvicorn'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    result = subprocess.run(
        [sys.executable, "-m", "flowkit", "ui"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "flowkit ui needs the ui extra" in result.stderr
    assert "pip install 'flowkit[ui]'" in result.stderr


def test_import_flowkit_imports_no_part_of_the_web_page() -> None:
    code = (
        "import sys, flowkit, flowkit.artifacts, flowkit.cli, flowkit.store\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('starlette', 'uvicorn', 'httpx', 'playwright') or m.startswith('flowkit.ui')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_an_older_store_is_brought_up_to_date_before_it_is_served(flowkit_home: Path) -> None:
    path = flowkit_home / "runs.db"
    db = connect(path, create=True)
    db.execute("DROP VIEW history")  # migrations 9 and 10
    db.execute("DROP INDEX states_by_root")
    db.execute("ALTER TABLE states DROP COLUMN root_id")
    db.execute("CREATE INDEX states_by_run ON states (run_id)")
    for table in ("artifacts", "limits", "limit_leases", "transactions"):  # 5, 6 and 11
        db.execute(f"DROP TABLE {table}")
    db.execute("ALTER TABLE runs DROP COLUMN result_repr")  # and 7
    db.execute("ALTER TABLE states DROP COLUMN thread_wait")
    db.execute("ALTER TABLE states DROP COLUMN worker")  # 8
    db.execute("PRAGMA user_version = 4")
    db.close()
    with pytest.raises(sqlite3.DatabaseError, match="has schema 4, this flowkit reads"):
        q.open_readonly(path)
    from flowkit.ui._serve import _upgrade

    _upgrade(path)
    reader = q.open_readonly(path)
    assert reader is not None
    assert reader.execute("SELECT count(*) FROM artifacts").fetchone()[0] == 0
    assert reader.execute("SELECT count(*) FROM transactions").fetchone()[0] == 0
    reader.close()


def test_a_tree_change_mark_moves_when_a_task_run_starts(flowkit_home: Path) -> None:
    """A task run's start is its row's start_time, not a state row: the page must still
    see it, or a long task would show as pending until it ends."""
    from flowkit import flow, task

    @task
    def step() -> int:
        return 1

    @flow
    def main() -> int:
        return step()

    main()
    flush()
    db = connect(flowkit_home / "runs.db", create=False)
    (root,) = db.execute("SELECT id FROM runs WHERE kind = 'flow'").fetchone()
    db.execute("UPDATE runs SET start_time = NULL WHERE kind = 'task'")  # not started yet
    before = q.change_mark(db, root)
    db.execute("UPDATE runs SET start_time = created WHERE kind = 'task'")  # now it is
    assert q.change_mark(db, root) != before
    db.close()


def test_a_run_has_its_transactions_with_the_hooks_they_ran(flowkit_home: Path) -> None:
    from flowkit import flow, task
    from flowkit.transactions import transaction

    def undo(txn: object) -> None:
        raise OSError("disk gone")

    @task(on_rollback=[undo])
    def write() -> None: ...

    @flow(name="transactional")
    def main() -> None:
        with transaction(key="load-1"):
            write()
        with contextlib.suppress(KeyError), transaction():
            write()
            raise KeyError("x")

    main()
    flush()
    client = Client(create_app(flowkit_home / "runs.db"))
    root = _runs(client, flow="transactional")[0]
    detail = client.get(f"/api/runs/{root['id']}").json()
    committed, rolled_back = detail["transactions"]
    assert (committed["action"], committed["key"], committed["hooks"]) == ("commit", "load-1", [])
    assert committed["run_id"] == root["id"]
    assert rolled_back["action"] == "rollback"
    assert rolled_back["hooks"] == [
        {"hook": "undo", "kind": "rollback", "task_run": "write-1", "error": "OSError: disk gone"}
    ]
