"""The run store and the `flowkit runs` command."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import flowkit
from flowkit import flow, get_run_logger, store, task
from flowkit.cli import main as flowkit_main
from flowkit.store import SCHEMA_VERSION, Store, StoreError
from flowkit.store._writer import RESULT_REPR_CHARS, Writer, recover, short_repr


@task
def double(x: int) -> int:
    return 2 * x


@task
def boom() -> None:
    raise ValueError("it broke")


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


@task
def takes(thing: Any, tag: str) -> None:
    get_run_logger().info("took %s", tag)


@flow(log_prints=True)
def recorded(n: int) -> int:
    with flowkit.tags("nightly"):
        total = sum(double(i) for i in range(n))
    takes(Opaque(), "x")
    upstream = double.submit(5)
    double.submit(upstream).result()
    print(f"total {total}")
    return total


def test_a_flow_is_fully_recorded_when_it_returns(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")
    recorded(2)
    with Store.open() as s:
        (run,) = s.flow_runs()
        tree = s.tree(run.id)
        lines = [line.message for line in s.logs(run.id)]
        states = [st.name for st in s.states(run.id)]
    assert (run.name, run.definition, run.state_name, run.parameters) == (
        run.name, "recorded", "Completed", {"n": 2},
    )  # fmt: skip
    assert states == ["Pending", "Running", "Completed"]
    by_name = {r.name: r for r in tree}
    assert set(by_name) == {run.name, "double-0", "double-1", "takes-0", "double-2", "double-3"}
    assert by_name["double-0"].tags == ["nightly"]
    assert by_name["double-0"].parent_id == run.id
    assert by_name["takes-0"].parameters == {"thing": "<Opaque thing>", "tag": "x"}
    assert by_name["double-3"].task_inputs == {"x": [by_name["double-2"].id]}
    assert by_name["double-3"].parameters == {"x": 10}
    assert by_name["double-0"].duration is not None
    assert "took x" in lines
    assert "total 2" in lines
    assert f"Created flow run {run.name!r} for flow 'recorded'" in lines


@pytest.mark.anyio
async def test_async_flows_are_recorded_with_errors() -> None:
    @flow
    async def failing() -> None:
        boom()

    with pytest.raises(ValueError, match="it broke"):
        await failing()
    with Store.open() as s:
        tree = s.tree("failing")
    assert [(r.name, r.state_name, r.error) for r in tree] == [
        (tree[0].name, "Failed", "ValueError: it broke"),
        ("boom-0", "Failed", "ValueError: it broke"),
    ]


def test_retries_are_recorded(backend: str) -> None:
    attempts: list[int] = []

    @task(retries=1)
    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError

    @flow
    def retrying() -> None:
        flaky()

    retrying()
    with Store.open() as s:
        run = s.get("flaky-0")
        states = [st.name for st in s.states(run.id)]
    assert run.run_count == 2
    assert states == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]


@pytest.mark.parametrize("seconds", [0, 0.2])  # within one batch of the writer; across
def test_a_run_row_holds_its_whole_story(backend: str, seconds: float) -> None:
    @task
    def nap(x: int) -> int:
        time.sleep(seconds)
        return x

    @flow
    def napping() -> int:
        return nap.submit(nap.submit(1)).result()

    napping()
    with Store.open() as s:
        first, second = s.get("nap-0"), s.get("nap-1")
    for run in (first, second):
        assert (run.state_name, run.run_count, run.error) == ("Completed", 1, None)
        assert run.start_time is not None
        assert run.end_time is not None
        assert run.created <= run.start_time <= run.end_time
    assert second.parameters == {"x": 1}  # the value it got, not the future it was given
    assert second.task_inputs == {"x": [first.id]}


def test_the_states_of_a_whole_tree_in_one_read(backend: str) -> None:
    @flow
    def pair() -> int:
        return double(1) + double.submit(2).result()

    pair()
    with Store.open() as s:
        tree = s.tree("pair")
        by_run = s.tree_states(tree[1].id)
        assert by_run == {r.id: s.states(r.id) for r in tree}
    assert [st.name for st in by_run[tree[1].id]] == ["Pending", "Running", "Completed"]


def test_a_not_ready_run_is_recorded_ended_and_never_marked_crashed(backend: str) -> None:
    @flow
    def chain() -> None:
        double.submit(boom.submit())

    assert chain(return_state=True).is_failed()
    with Store.open() as s:
        run = s.get("double-0")
        assert [st.name for st in s.states(run.id)] == ["Pending", "NotReady"]
    assert (run.state_type, run.state_name, run.run_count) == ("PENDING", "NotReady", 0)
    assert run.end_time is not None
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    db = sqlite3.connect(store.default_path(), isolation_level=None)
    try:
        db.execute("UPDATE runs SET pid = ?", (gone.pid,))
        assert recover(db) == 0  # every run of that process had ended
    finally:
        db.close()


def test_tasks_outside_flows_are_recorded() -> None:
    double(1)
    store.flush()
    with Store.open() as s:
        assert [r.name for r in s.flow_runs()] == ["double-0"]


def test_turning_the_store_off(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_STORE", "off")
    recorded(1)
    monkeypatch.delenv("FLOWKIT_STORE")
    store.disable()
    try:
        recorded(1)
    finally:
        store.enable()
        store._writer._forced = None
    with pytest.raises(StoreError, match="no run store"):
        Store.open()


def test_flowkit_home_picks_the_database(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for home in ("one", "two"):
        monkeypatch.setenv("FLOWKIT_HOME", str(tmp_path / home))
        recorded(1)
    for home in ("one", "two"):
        with Store.open(tmp_path / home / "runs.db") as s:
            assert len(s.flow_runs()) == 1


def test_get_by_id_prefix_and_name(backend: str) -> None:
    recorded(1)
    recorded(1)
    with Store.open() as s:
        newest, oldest = s.flow_runs()
        assert s.get(newest.id).id == newest.id
        assert s.get(oldest.id[:12]).id == oldest.id
        assert s.get(oldest.name).id == oldest.id
        assert s.get("recorded").id == newest.id
        with pytest.raises(KeyError, match="no run has the id or name 'zzz'"):
            s.get("zzz")
        with pytest.raises(KeyError, match="several runs"):
            s.get("")


def test_flow_run_filters(backend: str) -> None:
    @flow
    def other() -> None:
        boom()

    recorded(1)
    with pytest.raises(ValueError, match="it broke"):
        other()
    with Store.open() as s:
        assert [r.definition for r in s.flow_runs(flow="other")] == ["other"]
        assert [r.definition for r in s.flow_runs(state="failed")] == ["other"]
        assert len(s.flow_runs(since=datetime.now(UTC) - timedelta(minutes=5))) == 2
        assert s.flow_runs(since=datetime.now(UTC) + timedelta(minutes=5)) == []
        assert len(s.flow_runs(limit=1)) == 1


def test_export_is_json(backend: str) -> None:
    recorded(1)
    with Store.open() as s:
        data = s.export("recorded")
    text = json.dumps(data)
    assert json.loads(text)["runs"][0]["states"][0]["name"] == "Pending"
    assert data["schema"] == SCHEMA_VERSION


SCRIPT = """
import sys, time
from flowkit import flow, task
@task
def step(i: int) -> int:
    return i
@flow
def writer(label: str) -> None:
    for i in range(200):
        step(i)
    if label == "hang":
        print("started", flush=True)
        time.sleep(60)
writer(sys.argv[1])
"""


def test_two_processes_record_at_once(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(SCRIPT)
    procs = [
        subprocess.Popen([sys.executable, str(script), label], env=os.environ.copy())
        for label in ("a", "b")
    ]
    assert [p.wait(60) for p in procs] == [0, 0]
    with Store.open() as s:
        runs = s.flow_runs()
        assert sorted(r.parameters["label"] for r in runs) == ["a", "b"]
        assert all(len(s.tree(r.id)) == 201 for r in runs)


def _until_recorded(path: Path) -> None:
    """Wait until a flow run is committed in the store at ``path`` (its group commit)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error):
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                if db.execute("SELECT count(*) FROM runs WHERE kind = 'flow'").fetchone()[0]:
                    return
            finally:
                db.close()
        time.sleep(0.01)
    pytest.fail("the flow run was never committed")


def test_a_killed_process_leaves_a_sound_store_and_crashed_runs(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), "hang"], stdout=subprocess.PIPE, text=True,
        env=os.environ.copy(),
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    _until_recorded(store.default_path())  # looked at from outside: the program is not told
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    path = store.default_path()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    with Store.open() as s:
        (run,) = s.flow_runs()
        assert run.state_name == "Crashed"
        assert "ended before the run did" in (run.state_message or "")
        assert s.states(run.id)[-1].name == "Crashed"
        assert s.tree_states(run.id)[run.id][-1].name == "Crashed"


def test_a_newer_schema_is_refused_and_left_alone(flowkit_home: Path) -> None:
    path = flowkit_home / "runs.db"
    flowkit_home.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA application_id = {0x666B6974}")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer flowkit"):
        Store.open()
    assert path.read_bytes() == before


def test_foreign_and_broken_files_are_refused(flowkit_home: Path) -> None:
    flowkit_home.mkdir(parents=True)
    path = flowkit_home / "runs.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER)")
    db.close()
    with pytest.raises(StoreError, match="not a flowkit run store"):
        Store.open()
    path.write_bytes(b"this is not a database, just text" * 100)
    with pytest.raises(StoreError, match="not a flowkit run store"):
        Store.open()


# The command


def test_runs_ls_table_and_json(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    recorded(1)
    assert flowkit_main(["runs", "ls"]) == 0
    table = capsys.readouterr().out
    assert "recorded" in table
    assert "Completed" in table
    assert flowkit_main(["runs", "ls", "--json", "--flow", "recorded", "--since", "1h"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["state"] == "Completed"
    assert flowkit_main(["runs", "ls", "--since", "yesterday-ish"]) == 2


def test_runs_show_logs_and_export(
    backend: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")

    @flow
    def tree() -> None:
        double(1)
        boom(return_state=True)

    tree()
    capsys.readouterr()
    assert flowkit_main(["runs", "show", "tree"]) == 0
    shown = capsys.readouterr().out
    assert "├── double-0 [task 'double'] Completed" in shown
    assert "└── boom-0 [task 'boom'] Failed" in shown
    assert "ValueError: it broke" in shown
    assert flowkit_main(["runs", "logs", "tree"]) == 0
    logs = capsys.readouterr().out.splitlines()
    assert "| INFO    | Flow run" in logs[1]
    assert logs[-1].endswith("Finished in state Completed('1 of 2 task runs did not complete; "
                              "the flow handled them.')")  # fmt: skip
    assert flowkit_main(["runs", "export", "tree"]) == 0
    assert len(json.loads(capsys.readouterr().out)["runs"]) == 3


def test_unknown_runs_and_missing_stores_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert flowkit_main(["runs", "ls"]) == 2
    assert capsys.readouterr().err.strip().startswith("Error: no run store at")
    recorded(1)
    assert flowkit_main(["runs", "show", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"Error: no run has the id or name 'nope', nor is it a flow's name, in "
                   f"{store.default_path()}"]  # fmt: skip


def test_console_script_runs(flowkit_home: Path) -> None:
    recorded(1)
    done = subprocess.run(
        [sys.executable, "-m", "flowkit", "runs", "ls"], capture_output=True, text=True,
        env=os.environ.copy(), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "recorded" in done.stdout


# Keeping it small


def _age_runs(name: str, days: float) -> None:
    """Make the tree of the flow run ``name`` look ``days`` old."""
    with Store.open() as s:
        root = s.get(name).root_id
        s._db.execute(
            "UPDATE runs SET created = created - ? WHERE root_id = ?", (days * 86400, root)
        )


def test_runs_prune_deletes_old_finished_trees_only(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded(1)
    recorded(2)
    old, new = sorted(store.Store.open().flow_runs(), key=lambda r: r.parameters["n"])
    _age_runs(old.id, 40)
    with Store.open() as s:  # an old run still going (its process is this one, alive)
        s._db.execute(
            "UPDATE runs SET state_type = 'RUNNING', created = created - 4000000 WHERE id = ?",
            (new.id,),
        )
    assert flowkit_main(["runs", "prune", "--older-than", "30d"]) == 0
    assert capsys.readouterr().out.startswith("Deleted 1 run created before ")
    with Store.open() as s:
        assert [r.id for r in s.flow_runs()] == [new.id]
        left = {r[0] for r in s._db.execute("SELECT DISTINCT root_id FROM runs")}
        states = s._db.execute("SELECT count(*) FROM states WHERE root_id = ?", (old.id,))
        logs = s._db.execute("SELECT count(*) FROM logs WHERE root_id = ?", (old.id,))
        assert (left, states.fetchone()[0], logs.fetchone()[0]) == ({new.id}, 0, 0)
    assert flowkit_main(["runs", "prune", "--older-than", "soon"]) == 2
    assert flowkit_main(["runs", "prune"]) == 2


def test_retention_prunes_when_the_store_opens(
    flowkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded(1)
    _age_runs("recorded", 3)
    store._writer._close_all()  # the next run opens the store afresh
    store._writer._writers.clear()
    monkeypatch.setenv("FLOWKIT_STORE_RETENTION", "2d")
    recorded(5)
    with Store.open() as s:
        assert [r.parameters for r in s.flow_runs()] == [{"n": 5}]


@pytest.mark.parametrize("value", ["30", "thirty days", "0d", "-1d", "99999999d", "1y"])
def test_a_bad_retention_fails_the_first_run_clearly(value: str) -> None:
    code = "from flowkit import flow\nflow(lambda: 1)()\n"
    env = {**os.environ, "FLOWKIT_STORE_RETENTION": value}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ValueError: FLOWKIT_STORE_RETENTION: {value!r} is ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("30d", timedelta(days=30)), (" 2W ", timedelta(weeks=2))],
)
def test_ages(text: str, expected: timedelta) -> None:
    assert store.parse_age(text) == expected


def test_runs_ls_refuses_an_unknown_state_naming_the_valid_ones(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded(1)
    assert flowkit_main(["runs", "ls", "--state", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "'nonsense' is not a state" in err
    assert "Completed, Crashed, Failed" in err
    for known in ("failed", "TimedOut", "COMPLETED"):
        assert flowkit_main(["runs", "ls", "--state", known]) == 0


def test_a_custom_state_name_the_store_recorded_is_a_valid_filter(backend: str) -> None:
    recorded(1)
    with Store.open() as s:  # as a run ending in Completed(name="Skipped") is recorded
        s._db.execute("UPDATE runs SET state_name = 'Skipped' WHERE parent_id IS NULL")
        assert [r.state_name for r in s.flow_runs(state="skipped")] == ["Skipped"]


@pytest.mark.parametrize("seconds", [0, 0.2])  # within one batch of the writer; across
def test_a_completed_run_records_a_short_repr_of_its_result(backend: str, seconds: float) -> None:
    @task
    def nap(text: str) -> str:
        time.sleep(seconds)
        return text

    @flow
    def napping() -> list[str]:
        return [nap.submit("x" * 1000).result(), nap("<short>")]

    napping()
    with Store.open() as s:
        long, short, flow_run = s.get("nap-0"), s.get("nap-1"), s.flow_runs()[0]
    assert long.result_repr is not None
    assert len(long.result_repr) <= RESULT_REPR_CHARS
    assert long.result_repr.startswith("'xxx")
    assert "..." in long.result_repr
    assert short.result_repr == "'<short>'"
    assert flow_run.result_repr is not None
    assert flow_run.result_repr.startswith("['xxxx")


def test_a_failed_run_records_no_result(backend: str) -> None:
    @flow
    def failing() -> None:
        boom()

    assert failing(return_state=True).is_failed()
    with Store.open() as s:
        assert [r.result_repr for r in s.tree(s.flow_runs()[0].id)] == [None, None]


def test_each_attempt_records_its_wait_for_a_worker_thread(backend: str) -> None:
    tries: list[int] = []

    @task
    def hold() -> None:
        time.sleep(0.2)

    @task(retries=1)
    def flaky() -> None:
        tries.append(1)
        if len(tries) == 1:
            raise ValueError("first try")

    @flow(thread_limit=1)
    def crowded() -> None:
        held = hold.submit()
        flaky.submit().wait()
        held.wait()

    crowded()
    with Store.open() as s:
        states = [(st.name, st.thread_wait) for st in s.states("flaky-0")]
    names = [name for name, _ in states]
    assert names == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    waits = dict(states)
    assert waits["Pending"] is waits["Running"] is waits["Retrying"] is None
    first, second = waits["AwaitingRetry"], waits["Completed"]
    assert first is not None
    assert second is not None
    assert first >= 0.1  # behind hold's nap for the one thread
    assert 0 <= second < first  # the thread was free by the retry


def test_each_attempt_records_who_ran_its_body(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    @task
    async def on_loop() -> int:
        return 1

    @flow
    def mixed() -> None:
        double.submit(1).wait()
        on_loop.submit().wait()

    mixed()
    with Store.open() as s:
        threaded = [(st.name, st.worker) for st in s.states("double-0")]
        looped = [st.worker for st in s.states("on_loop-0")]
    assert threaded == [("Pending", None), ("Running", None), ("Completed", "thread")]
    assert looped == [None, None, None]  # an async body runs on the event loop
    capsys.readouterr()
    assert flowkit_main(["runs", "show", "mixed"]) == 0
    shown = capsys.readouterr().out
    assert "double-0 [task 'double'] Completed (" in shown
    assert "; ran in thread)" in shown
    assert "on_loop-0" in shown
    assert shown.count("ran in") == 1


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner) | st.tuples(inner),
        max_leaves=200,
    )
)
def test_short_repr_is_short_and_the_repr_when_that_is(value: object) -> None:
    text = short_repr(value)
    assert len(text) <= RESULT_REPR_CHARS
    if len(repr(value)) <= RESULT_REPR_CHARS and not isinstance(value, list | dict | tuple):
        assert text == repr(value)


def test_short_repr_never_raises() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    assert short_repr(Broken()).startswith("<Broken instance at 0x")
    assert short_repr([1, Broken()]).startswith("[1, <Broken instance at 0x")
    assert short_repr(10**5000) == "<unrepresentable int: ValueError>"


def test_none_binds_as_null_through_the_store_adapter_and_a_program_adapter_stays(
    tmp_path: Path,
) -> None:
    from flowkit.store._schema import connect

    key = (type(None), sqlite3.PrepareProtocol)
    before = sqlite3.adapters.pop(key, None)
    try:
        db = connect(tmp_path / "runs.db", create=True)
        assert db.execute("SELECT ? IS NULL", (None,)).fetchone() == (1,)
        db.close()
        own = sqlite3.adapters[key] = lambda _: "mine"
        connect(tmp_path / "runs.db", create=False).close()
        assert sqlite3.adapters[key] is own
    finally:
        sqlite3.adapters.pop(key, None)
        if before is not None:
            sqlite3.adapters[key] = before


def test_a_task_run_history_is_whole_with_one_state_row_per_attempt_end() -> None:
    calls: list[int] = []

    @task(retries=1, retry_delay_seconds=0)
    def flaky() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first")
        return 7

    @flow
    def main() -> int:
        return flaky()

    assert main() == 7
    with Store.open() as s:
        (run,) = [r for r in s.tree(s.flow_runs(limit=1)[0].id) if r.kind == "task"]
        names = [state.name for state in s.states(run.id)]
        stored = s._db.execute("SELECT name FROM states WHERE run_id = ?", (run.id,))
        stored_names = [r[0] for r in stored]
    assert names == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    assert stored_names == ["AwaitingRetry", "Retrying", "Completed"]


def test_migration_9_drops_the_rows_the_history_view_makes(flowkit_home: Path) -> None:
    @task
    def one() -> int:
        return 1

    @flow
    def main() -> int:
        return one()

    main()
    path = flowkit_home / "runs.db"
    db = sqlite3.connect(path, isolation_level=None)
    (task_id, created, start) = db.execute(
        "SELECT id, created, start_time FROM runs WHERE kind = 'task'"
    ).fetchone()
    # As flowkit before migration 9 wrote them: a row for the Pending and the Running.
    db.execute("DROP VIEW history")
    db.execute("DROP INDEX states_by_root")  # and migration 10
    db.execute("ALTER TABLE states DROP COLUMN root_id")
    db.execute("CREATE INDEX states_by_run ON states (run_id)")
    db.execute("DROP TABLE transactions")  # and migration 11
    db.executemany(
        "INSERT INTO states VALUES (?, ?, ?, NULL, ?, NULL, NULL)",
        [(task_id, "PENDING", "Pending", created), (task_id, "RUNNING", "Running", start)],
    )
    db.execute("PRAGMA user_version = 8")
    db.close()
    with Store.open() as s:
        assert [state.name for state in s.states(task_id)] == ["Pending", "Running", "Completed"]


@pytest.mark.anyio
async def test_an_async_flow_waits_for_its_records_without_holding_its_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The store commits only once a coroutine on the flow's own loop lets it: the flow's
    # call can return with its records committed only if its wait leaves the loop free.
    gate = threading.Event()
    body_done = anyio.Event()
    write = Writer._write

    def gated_write(self: Writer, items: list[Any]) -> None:
        gate.wait(30)
        write(self, items)

    monkeypatch.setattr(Writer, "_write", gated_write)

    @flow
    async def quick() -> str | None:
        body_done.set()
        return flowkit.runtime.flow_run.id

    async def open_gate_after_the_body() -> None:
        await body_done.wait()
        gate.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(open_gate_after_the_body)
        run_id = await quick()
        with Store.open() as s:
            recorded = [r.state_name for r in s.flow_runs() if r.id == run_id]
    assert recorded == ["Completed"]
