"""The event bus and its sinks: frozen records, contained failures, nothing lost."""

from __future__ import annotations

import ast
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest

import flowkit
from flowkit import flow, get_run_logger, store, task
from flowkit._engine import events, naming
from flowkit._engine.events import LogLine, RunInfo, StateChanged, format_exception
from flowkit.cli import main as flowkit_main
from flowkit.exceptions import ParameterBindError
from flowkit.store import Store

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)

SURROGATE = os.fsdecode(b"\xff")  # a lone surrogate: valid in a str, not in UTF-8


@task
async def add(x: int, y: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x + y


@task
def fail(n: int) -> None:
    raise ValueError(f"run {n} failed")


@pytest.fixture
def seen() -> Iterator[list[events.Event]]:
    """The events of the test, as a sink receives them."""
    got: list[events.Event] = []
    stop = events.subscribe(got.append)
    yield got
    stop()


def _count(sql: str, *args: Any) -> int:
    store.flush()
    with Store.open() as s:
        return int(s._db.execute(sql, args).fetchone()[0])


# The records


def test_events_are_frozen_plain_data(backend: str, seen: list[events.Event]) -> None:
    @flow
    def one() -> int:
        return 1

    one()
    changes = [e for e in seen if isinstance(e, StateChanged)]
    assert [e.state.name for e in changes] == ["Pending", "Running", "Completed"]
    info = changes[0].run
    assert isinstance(info, RunInfo)
    assert all(e.run is info for e in changes)  # made once per run
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        info.name = "other"  # type: ignore[misc]
    assert changes[0].parameters == {}
    assert changes[-1].children == {}


def test_a_task_event_knows_its_flow_and_root(backend: str, seen: list[events.Event]) -> None:
    @task
    def inner() -> None:
        pass

    @flow
    def child() -> None:
        inner()

    @flow
    def parent() -> None:
        child()

    parent()
    infos = {e.run.name: e.run for e in seen if isinstance(e, StateChanged)}
    task_run = infos["inner-0"]
    assert task_run.in_flow is not None
    assert task_run.in_flow.definition == "child"
    assert task_run.parent is task_run.in_flow
    assert task_run.flow_run_id == task_run.in_flow.id
    assert task_run.root_id == task_run.in_flow.root_id != task_run.in_flow.id
    assert task_run.fields["flow_name"] == "child"
    assert task_run.fields["task_name"] == "inner"


def test_a_failed_state_carries_its_traceback_as_text(
    backend: str, seen: list[events.Event]
) -> None:
    @flow
    def failing() -> None:
        fail(3)

    with pytest.raises(ValueError, match="run 3 failed"):
        failing()
    (end,) = [e for e in seen if isinstance(e, StateChanged) and e.run.name == "fail-0"][-1:]
    assert end.error is not None
    assert (end.error.type, end.error.message) == ("ValueError", "run 3 failed")
    assert end.error.traceback is not None
    assert "Traceback (most recent call last)" in end.error.traceback
    assert 'raise ValueError(f"run {n} failed")' in end.error.traceback
    assert "^^^" not in end.error.traceback


def test_log_lines_travel_the_bus(
    backend: str, seen: list[events.Event], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")

    @flow
    def talks() -> None:
        get_run_logger().info("hello %s", "bus")

    talks()
    lines = [e for e in seen if isinstance(e, LogLine)]
    assert "hello bus" in [line.message for line in lines]
    said = next(line for line in lines if line.message == "hello bus")
    assert said.root_id == said.run_id
    assert said.label.startswith("Flow run ")


def test_a_sink_gets_only_the_kinds_of_event_it_takes(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")
    lines: list[events.Event] = []
    everything: list[events.Event] = []
    stop_lines = events.subscribe(lines.append, kinds=(LogLine,))
    stop_all = events.subscribe(everything.append)

    @flow
    def talks() -> None:
        get_run_logger().info("hello")

    try:
        talks()
    finally:
        stop_lines()
        stop_all()
    assert lines == [e for e in everything if isinstance(e, LogLine)]
    assert any(isinstance(e, StateChanged) for e in everything)
    assert lines


def test_a_sink_cannot_take_what_is_not_an_event() -> None:
    with pytest.raises(TypeError, match="kinds must be event classes"):
        events.subscribe(print, kinds=(str,))  # type: ignore[arg-type]


# Nothing is lost


@pytest.mark.anyio
async def test_one_bad_call_among_a_thousand_runs_loses_no_row() -> None:
    store.enable()

    @flow
    async def batch(k: int) -> int:
        total = 0
        for i in range(50):
            if k == 7 and i == 25:
                with pytest.raises(TypeError, match=r"task 'add' cannot be called so"):
                    await add(i)  # type: ignore[call-arg]
            total += await add(i, k)
        return total

    async with anyio.create_task_group() as tg:
        for k in range(20):
            tg.start_soon(batch, k)
    assert _count("SELECT count(*) FROM runs WHERE kind = 'flow'") == 20
    assert _count("SELECT count(*) FROM runs WHERE kind = 'task'") == 1000
    assert _count("SELECT count(*) FROM runs WHERE state_name != 'Completed'") == 0
    assert _count("SELECT count(*) FROM history") == 20 * 3 + 1000 * 3


def test_a_wrong_call_says_which_task_and_how_to_call_it() -> None:
    @task
    def pair(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ParameterBindError) as caught:  # a TypeError, as in Prefect
        pair(1)  # type: ignore[call-arg]
    assert str(caught.value) == (
        "task 'pair' cannot be called so: missing a required argument: 'y'; call it as pair(x, y)"
    )


@pytest.mark.anyio
async def test_strings_utf8_cannot_hold_are_recorded_escaped() -> None:
    store.enable()

    @task
    async def odd(name: str) -> None:
        get_run_logger().info("reading %s", name)
        raise OSError(f"cannot open {name}")

    @flow
    async def files(names: list[str]) -> None:
        for name in names:
            await odd(name, return_state=True)

    async with anyio.create_task_group() as tg:
        for k in range(5):
            tg.start_soon(files, [f"plain-{k}", f"bad-{k}{SURROGATE}"])
    assert _count("SELECT count(*) FROM runs WHERE kind = 'task'") == 10
    assert _count("SELECT count(*) FROM runs WHERE state_name = 'Failed'") == 10
    with Store.open() as s:
        (run,) = [r for r in s.flow_runs(limit=None) if r.parameters["names"][0] == "plain-0"]
        tree = {r.name: r for r in s.tree(run.id)}
        lines = [line.message for line in s.logs(run.id)]
    assert tree["odd-1"].parameters == {"name": f"bad-0{SURROGATE}"}  # JSON escapes it
    assert tree["odd-1"].error == "OSError: cannot open bad-0\\udcff"
    assert "reading bad-0\\udcff" in lines
    assert "reading plain-0" in lines


def test_a_value_that_cannot_be_encoded_gets_a_placeholder(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    @task
    def takes(thing: object) -> int:
        return 1

    @flow
    def hostile() -> int:
        return takes(Hostile()) + takes(2)

    assert hostile() == 2
    with Store.open() as s:
        tree = {r.name: r for r in s.tree(s.flow_runs()[0].id)}
    assert tree["takes-0"].parameters == {
        "thing": "<unrecorded: could not be encoded: RuntimeError: no repr for you>"
    }
    assert tree["takes-1"].parameters == {"thing": 2}
    assert tree["takes-0"].state_name == "Completed"


def test_a_run_records_its_arguments_as_they_were_passed(backend: str) -> None:
    @task
    def grow(items: list[str], extra: dict[str, list[int]]) -> int:
        items.append("grown")
        extra["n"].append(2)
        return len(items)

    @flow
    def growing() -> int:
        return grow(["given"], {"n": [1]}) + grow.submit(["given"], {"n": [1]}).result()

    assert growing() == 4
    with Store.open() as s:
        tree = {r.name: r for r in s.tree(s.flow_runs()[0].id)}
    for name in ("grow-0", "grow-1"):
        assert tree[name].parameters == {"items": ["given"], "extra": {"n": [1]}}


def test_no_flowkit_thread_parses_source(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # traceback's ^^^ markers parse source; on Python 3.11 that is not thread-safe, so
    # neither the engine nor a sink may do it, in any thread.
    parsed: list[str] = []
    real_parse = ast.parse

    def watched(*args: Any, **kwargs: Any) -> Any:
        parsed.append(threading.current_thread().name)
        return real_parse(*args, **kwargs)

    logging.getLogger("flowkit").addHandler(handler := logging.StreamHandler(sys.stderr))
    handler.setFormatter(flowkit.logging.ConsoleFormatter())
    monkeypatch.setattr(ast, "parse", watched)

    @task
    def log_failure() -> None:
        try:
            raise KeyError("inner")
        except KeyError:
            get_run_logger().exception("caught")

    @flow
    def failing() -> None:
        log_failure()
        for n in range(5):
            fail.submit(n)

    try:
        with pytest.raises(ExceptionGroup):
            failing()
        store.flush()
    finally:
        logging.getLogger("flowkit").removeHandler(handler)
    assert parsed == []


def test_tracebacks_formatted_in_threads_while_failures_are_recorded(backend: str) -> None:
    # Users' threads format tracebacks (with ^^^ markers, parsing source) while the store
    # records 1,000 failing runs: no thread may fail, no record may be lost.
    stop = threading.Event()
    errors: list[BaseException] = []

    def format_forever() -> None:
        while not stop.is_set():
            try:
                {}["missing"]
            except KeyError:
                try:
                    traceback.format_exc()
                except BaseException as exc:
                    errors.append(exc)

    @flow
    def failing() -> None:
        for n in range(1000):
            fail(n, return_state=True)

    threads = [threading.Thread(target=format_forever) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        failing()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert _count("SELECT count(*) FROM runs WHERE state_name = 'Failed'") == 1000
    assert _count("SELECT count(*) FROM runs WHERE error LIKE 'ValueError: run % failed'") == 1000


# A sink's failure is its own


def test_a_failing_sink_costs_no_other_sink_and_no_run(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")

    def broken(event: events.Event) -> None:
        raise RuntimeError("sink down")

    @task
    def one() -> int:
        return 1

    @flow
    def fine() -> int:
        return one() + 2

    stop = events.subscribe(broken, tier="first")
    try:
        assert fine() == 3
        assert fine() == 3
    finally:
        stop()
    reports = [r for r in caplog.records if "event sink" in r.getMessage()]
    assert len(reports) == 1
    assert reports[0].levelno == logging.ERROR
    assert "test_a_failing_sink_costs_no_other_sink_and_no_run.<locals>.broken" in (
        reports[0].getMessage()
    )
    assert "RuntimeError: sink down" in reports[0].getMessage()
    assert sum("Finished in state Completed" in r.getMessage() for r in caplog.records) == 4
    assert _count("SELECT count(*) FROM runs WHERE definition = 'fine'") == 2
    assert _count("SELECT count(*) FROM runs WHERE definition = 'one'") == 2


# The console story of a cancelled run


@pytest.mark.anyio
async def test_a_cancelled_flow_is_one_warning_line_that_counts_its_task_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="flowkit")
    started = anyio.Event()

    @task
    async def forever(i: int) -> None:
        if i == 19:
            started.set()
        await anyio.sleep_forever()

    @flow
    async def server() -> None:
        for i in range(20):
            forever.submit(i)
        await anyio.sleep_forever()

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server)
            await started.wait()
            await anyio.sleep(0.01)
            scope.cancel()
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    (line,) = loud
    assert line.levelno == logging.WARNING
    assert line.exc_info is None
    assert line.getMessage() == (
        "Finished in state Cancelled('The run was cancelled.'); 20 task runs cancelled"
    )
    quiet = [r for r in caplog.records if "forever" in getattr(r, "task_name", "")]
    assert all(r.levelno <= logging.INFO and r.exc_info is None for r in quiet)


@pytest.mark.anyio
async def test_a_task_run_cancelled_alone_is_counted_in_its_flows_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")

    @task
    async def slow() -> None:
        await anyio.sleep_forever()

    @flow
    async def goes_on() -> str:
        future = slow.submit()
        await anyio.sleep(0.01)
        future.cancel()
        return "done"

    assert await goes_on() == "done"
    finals = [r.getMessage() for r in caplog.records if "Finished in state" in r.getMessage()]
    assert finals == [
        "Finished in state Completed('1 of 1 task runs did not complete; the flow handled "
        "them.'); 1 task run cancelled"
    ]
    assert all(r.exc_info is None for r in caplog.records)


def test_a_failure_still_shows_its_traceback(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")

    @flow
    def failing() -> None:
        fail(1)

    with pytest.raises(ValueError, match="run 1 failed"):
        failing()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.task_run_name if hasattr(r, "task_run_name") else "flow" for r in errors] == [
        "fail-0", "flow",
    ]  # fmt: skip
    assert all(r.exc_text and "ValueError: run 1 failed" in r.exc_text for r in errors)
    assert "^^^" not in caplog.text


# Names


@pytest.mark.anyio
async def test_two_hundred_concurrent_flows_get_two_hundred_names() -> None:
    store.enable()

    @flow
    async def many() -> str:
        await anyio.sleep(0.01)
        return flowkit.runtime.flow_run.name  # type: ignore[no-any-return]

    names: list[str] = []

    async def one() -> None:
        names.append(await many())

    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(one)
    assert len(set(names)) == 200
    assert _count("SELECT count(DISTINCT name) FROM runs WHERE kind = 'flow'") == 200


def test_a_name_the_store_has_is_not_handed_out_again(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(naming._random, "choice", lambda seq: seq[0])
    monkeypatch.setattr(naming, "_recent", type(naming._recent)())
    monkeypatch.setattr(naming, "_recent_set", set())

    @flow
    def named() -> str:
        return flowkit.runtime.flow_run.name  # type: ignore[no-any-return]

    first = named()
    assert first == "able-albatross"
    # A new process knows only the store: the names it handed out are forgotten.
    monkeypatch.setattr(naming, "_recent", type(naming._recent)())
    monkeypatch.setattr(naming, "_recent_set", set())
    second = named()
    assert second.startswith("able-albatross-")
    assert second != first


def test_an_ambiguous_name_on_the_command_line_lists_the_runs(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    @flow(flow_run_name="nightly")
    def job() -> None:
        pass

    job()
    job()
    with Store.open() as s:
        ids = [r.id[:8] for r in s.flow_runs()]
    capsys.readouterr()
    assert flowkit_main(["runs", "show", "nightly"]) == 2
    err = capsys.readouterr().err
    assert "2 runs are named 'nightly'; give the id of the one you mean:" in err
    assert all(i in err for i in ids)
    assert flowkit_main(["runs", "show", ids[0]]) == 0


# The store's own troubles


def test_a_store_that_cannot_be_opened_is_said_once(
    backend: str, flowkit_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flowkit_home.parent.mkdir(parents=True, exist_ok=True)
    flowkit_home.write_text("a file where the home directory should be")
    store.enable()

    @flow
    def unrecorded() -> int:
        return 1

    assert unrecorded() + unrecorded() == 2
    said = [r for r in caplog.records if r.name == "flowkit.store"]
    assert len(said) == 1
    assert said[0].levelno == logging.WARNING
    assert (
        said[0]
        .getMessage()
        .startswith(f"the run store at {flowkit_home / 'runs.db'} could not be opened: ")
    )
    assert (
        said[0]
        .getMessage()
        .endswith(
            "runs are not being recorded (set FLOWKIT_HOME to another directory, or "
            "FLOWKIT_STORE=off)"
        )
    )


def test_a_damaged_store_is_one_line_and_exit_2(
    backend: str, flowkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    @flow
    def some() -> None:
        for i in range(200):
            fail(i, return_state=True)

    some()
    store.flush()
    path = flowkit_home / "runs.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    data[4096:] = b"\x07" * (len(data) - 4096)  # every page after the first
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert flowkit_main(["runs", "ls"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("Error: ")
    assert str(path) in err[0]


@pytest.mark.parametrize("value", ["maybe", "disabled", "2"])
def test_flowkit_store_takes_only_on_or_off(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_STORE", value)
    with pytest.raises(ValueError, match=f"FLOWKIT_STORE={value!r} is neither 'on' nor 'off'"):
        store.is_enabled()


def test_a_bad_flowkit_store_fails_the_first_run_clearly(flowkit_home: Path) -> None:
    code = "from flowkit import flow\nflow(lambda: 1)()\n"
    env = {**os.environ, "FLOWKIT_STORE": "yes please"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "ValueError: FLOWKIT_STORE='yes please' is neither 'on' nor 'off'; set it to 'off' "
        "to leave runs unrecorded, or unset it to record them"
    )


def test_format_exception_keeps_chains_and_groups() -> None:
    try:
        try:
            raise KeyError("first")
        except KeyError as exc:
            raise ExceptionGroup("two", [ValueError("a"), TypeError("b")]) from exc
    except ExceptionGroup as group:
        text = format_exception(group)
    assert "KeyError: 'first'" in text
    assert "The above exception was the direct cause of the following exception:" in text
    assert "ValueError: a" in text
    assert "TypeError: b" in text
    assert "^" not in text
