"""The foundation: tasks and flows called plainly, on asyncio and on trio."""

from __future__ import annotations

import asyncio
import inspect
import logging
import subprocess
import sys
import threading
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest
import sniffio
import trio
from hypothesis import given
from hypothesis import strategies as st

import flowkit
from flowkit import flow, runtime, tags, task
from flowkit._engine import events
from flowkit._engine.definition.signature import bind, plain_parameters
from flowkit.exceptions import MissingContextError
from flowkit.states import Completed, Failed, State

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)


def recorded_states() -> tuple[list[tuple[str, str]], Any]:
    """Subscribe to engine events; return the (run name, state name) list and unsubscribe."""
    seen: list[tuple[str, str]] = []
    stop = events.subscribe(lambda e: seen.append((e.run.name, e.state.name)))
    return seen, stop


@task
def double(x: int) -> int:
    return 2 * x


@task
async def adouble(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return 2 * x


@task
def boom(message: str) -> None:
    raise ValueError(message)


# Calling


def test_sync_task_in_sync_flow_returns_its_value(backend: str) -> None:
    @flow
    def main() -> int:
        return double(3) + double(4)

    assert main() == 14


@pytest.mark.anyio
async def test_async_task_in_async_flow_is_awaited() -> None:
    @flow
    async def main() -> int:
        return await adouble(5)

    assert await main() == 10


def test_task_outside_any_flow_runs_as_its_own_run() -> None:
    seen, stop = recorded_states()
    try:
        assert double(21) == 42
    finally:
        stop()
    assert seen == [("double-0", "Pending"), ("double-0", "Running"), ("double-0", "Completed")]


def test_async_task_outside_any_flow_runs_on_the_callers_loop() -> None:
    assert anyio.run(adouble, 4) == 8
    assert trio.run(adouble, 4) == 8


def test_task_called_from_a_task_records_its_parent(backend: str) -> None:
    parents: list[str | None] = []

    @task
    def inner() -> None:
        parents.append(runtime.task_run.parent_task_run_id)

    @task
    def outer() -> str | None:
        inner()
        return runtime.task_run.id

    @flow
    def main() -> str | None:
        return outer()

    assert parents == [main()]


def test_return_state_gives_the_final_state(backend: str) -> None:
    seen: list[State[Any]] = []

    @flow
    def main() -> None:
        seen.extend([double(2, return_state=True), boom("no", return_state=True)])

    main()
    done, failed = seen
    assert done.is_completed()
    assert done.result() == 4
    assert failed.is_failed()
    assert isinstance(failed.result(raise_on_failure=False), ValueError)
    with pytest.raises(ValueError, match="no"):
        failed.result()


def test_failed_task_raises_its_own_exception_and_fails_the_flow(backend: str) -> None:
    @flow
    def main() -> None:
        boom("broken")

    with pytest.raises(ValueError, match="broken"):
        main()
    state = main(return_state=True)
    assert state.is_failed()
    assert isinstance(state.exception, ValueError)


@pytest.mark.anyio
async def test_failed_async_flow_raises_the_exception_not_a_group() -> None:
    @flow
    async def main() -> None:
        boom("plain")

    with pytest.raises(ValueError, match="plain"):
        await main()


# Methods


class Greeter:
    def __init__(self, name: str) -> None:
        self.name = name

    @task
    def hello(self, greeting: str) -> str:
        return f"{greeting}, {self.name}"

    @task
    async def ahello(self) -> str:
        return f"hi {self.name}"

    @classmethod
    @task
    def kind(cls) -> str:
        return cls.__name__

    @staticmethod
    @task
    def shout(word: str) -> str:
        return word.upper()

    @classmethod
    @task
    async def akind(cls) -> str:
        return cls.__name__


class LoudGreeter(Greeter):
    pass


def test_methods_of_all_kinds_are_tasks(backend: str) -> None:
    @flow
    def main() -> list[str]:
        g = LoudGreeter("Ann")
        return [g.hello("Hello"), Greeter.kind(), LoudGreeter.kind(), g.shout("hey")]

    assert main() == ["Hello, Ann", "Greeter", "LoudGreeter", "HEY"]


@pytest.mark.anyio
async def test_async_methods_are_tasks() -> None:
    @flow
    async def main() -> list[str]:
        return [await LoudGreeter("Bo").ahello(), await LoudGreeter.akind()]

    assert await main() == ["hi Bo", "LoudGreeter"]


def test_method_parameters_leave_out_self(backend: str) -> None:
    seen: list[dict[str, Any]] = []

    class Thing:
        @task
        def act(self, x: int) -> None:
            seen.append(runtime.task_run.parameters)

    Thing().act(3)
    assert seen == [{"x": 3}]


def test_task_above_classmethod_and_staticmethod_binds_the_same(backend: str) -> None:
    class Either:
        @task  # type: ignore[arg-type]  # a classmethod object, as Prefect accepts
        @classmethod
        def kind(cls) -> str:
            return cls.__name__

        @task  # type: ignore[arg-type]
        @staticmethod
        def shout(word: str) -> str:
            return word.upper()

    class Child(Either):
        pass

    @flow
    def main() -> list[str]:
        return [Either.kind(), Child.kind(), Child().kind(), Either.shout("a"), Child().shout("b")]

    assert main() == ["Either", "Child", "Child", "A", "B"]


def test_task_on_something_not_callable_is_refused() -> None:
    with pytest.raises(TypeError, match="@task needs a function or another callable object, got 3"):
        task(3)  # type: ignore[call-overload]


# Flows


@task
async def loop_name() -> str:
    return sniffio.current_async_library()


@task
async def loop_kind() -> str:
    """The running loop's library: ``asyncio``, ``uvloop`` (asyncio's on uvloop) or ``trio``."""
    if sniffio.current_async_library() == "trio":
        return "trio"
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_sync_flow_starts_the_chosen_loop(backend: str) -> None:
    @flow
    def main() -> str:
        # The body runs in the caller's thread; an async task submitted from it runs on
        # the flow's loop.
        return loop_kind.submit().result()

    assert main() == {"asyncio+uvloop": "uvloop"}.get(backend, backend)


def test_backend_option_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_BACKEND", "asyncio")

    @flow(backend="trio")
    def main() -> str:
        return loop_name.submit().result()

    assert main() == "trio"


def test_bad_backend_variable_names_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_BACKEND", "curio")

    @flow
    def main() -> None: ...

    with pytest.raises(ValueError, match=r"FLOWKIT_BACKEND='curio'.*'asyncio', 'trio' or 'uvloop'"):
        main()


@pytest.mark.parametrize("variable", ["uvloop", "asyncio+uvloop"])
def test_flowkit_backend_uvloop_runs_sync_flows_on_uvloop(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv("FLOWKIT_BACKEND", variable)

    @flow
    def main() -> str:
        return loop_kind.submit().result()

    assert main() == "uvloop"


def test_backend_option_runs_a_sync_flow_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_BACKEND", "trio")

    @flow(backend="asyncio+uvloop")
    def main() -> tuple[str, str]:
        return loop_name.submit().result(), loop_kind.submit().result()

    assert main() == ("asyncio", "uvloop")


@pytest.mark.parametrize(
    ("option", "variable", "said"),
    [
        ("asyncio+uvloop", "asyncio", "backend='asyncio\\+uvloop'"),
        (None, "uvloop", "FLOWKIT_BACKEND='uvloop'"),
    ],
)
def test_uvloop_missing_is_said_at_the_call(
    monkeypatch: pytest.MonkeyPatch, option: str | None, variable: str, said: str
) -> None:
    monkeypatch.setenv("FLOWKIT_BACKEND", variable)

    @flow(backend=option)  # type: ignore[call-overload]
    def nightly() -> int:
        return 1

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import raises ModuleNotFoundError
    expected = rf"flow 'nightly': {said} asks for uvloop, which is not installed: pip install"
    with pytest.raises(ModuleNotFoundError, match=expected + r" 'flowkit\[uvloop\]'") as caught:
        nightly()
    assert caught.value.name == "uvloop"


def test_uvloop_on_windows_is_refused_at_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    @task(timeout_seconds=60)
    def nightly() -> int:
        return 1

    monkeypatch.setenv("FLOWKIT_BACKEND", "uvloop")
    monkeypatch.setattr(sys, "platform", "win32")
    expected = "task 'nightly': FLOWKIT_BACKEND='uvloop' asks for uvloop, which does not run on"
    with pytest.raises(ModuleNotFoundError, match=expected + " Windows; use 'asyncio'"):
        nightly()


@task(timeout_seconds=60)  # its deadline needs an event loop
def loop_of_a_timed_task() -> str:
    # The body runs in a worker thread of the run's loop.
    return anyio.from_thread.run(loop_kind.fn)


def test_a_sync_task_outside_flows_starts_the_chosen_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_BACKEND", "uvloop")
    assert loop_of_a_timed_task() == "uvloop"


@pytest.mark.anyio
async def test_a_sync_task_called_from_async_code_gets_a_loop_like_its_callers(
    anyio_backend: object,
) -> None:
    assert loop_of_a_timed_task() == await loop_kind.fn()


@pytest.mark.parametrize("run", [anyio.run, trio.run])
def test_async_flow_runs_under_any_runner(run: Any) -> None:
    @flow
    async def main(x: int) -> int:
        return await adouble(x)

    assert run(main, 3) == 6


@pytest.mark.anyio
async def test_sync_flow_called_inside_a_running_loop_works() -> None:
    @flow
    def main() -> int:
        return double(5)

    assert main() == 10


def test_sync_flow_body_runs_in_the_callers_thread(backend: str) -> None:
    @flow
    def main() -> int:
        return threading.get_ident()

    assert main() == threading.get_ident()


def test_subflows_record_their_parent(backend: str) -> None:
    ids: dict[str, str | None] = {}

    @flow
    def child() -> None:
        ids["child_parent"] = runtime.flow_run.parent_flow_run_id

    @flow
    def parent() -> None:
        ids["parent"] = runtime.flow_run.id
        child()

    parent()
    assert ids["child_parent"] == ids["parent"]


@pytest.mark.anyio
async def test_sync_flow_called_from_an_async_flow_is_a_subflow() -> None:
    @flow
    def child() -> int:
        return double(1)

    @flow
    async def parent() -> int:
        return child()

    assert await parent() == 2


def test_final_state_message_summarises_task_runs(backend: str) -> None:
    @flow
    def fine() -> None:
        double(1)

    @flow
    def handled() -> None:
        double(1)
        boom("x", return_state=True)

    assert fine(return_state=True).message == "All states completed."
    assert handled(return_state=True).message == (
        "1 of 2 task runs did not complete; the flow handled them."
    )


@pytest.mark.anyio
async def test_cancelled_async_flow_ends_cancelled() -> None:
    seen, stop = recorded_states()

    @flow(name="sleeper")
    async def main() -> None:
        await anyio.sleep_forever()

    try:
        with anyio.move_on_after(0.05):
            await main()
    finally:
        stop()
    assert seen[-1][1] == "Cancelled"


def test_keyboard_interrupt_in_a_task_crashes_the_run_and_propagates(backend: str) -> None:
    seen, stop = recorded_states()

    @task
    def interrupted() -> None:
        raise KeyboardInterrupt

    @flow
    def main() -> None:
        interrupted()

    try:
        with pytest.raises(KeyboardInterrupt):
            main()
    finally:
        stop()
    finals = {name: state for name, state in seen}
    assert finals["interrupted-0"] == "Crashed"


def test_engine_error_marks_the_run_crashed(monkeypatch: pytest.MonkeyPatch) -> None:
    seen, stop = recorded_states()

    def broken_logging(enabled: bool) -> Any:
        raise RuntimeError("engine fault")

    monkeypatch.setattr("flowkit._engine.lifecycle.engine.printing_to_log", broken_logging)
    try:
        with pytest.raises(RuntimeError, match="engine fault"):
            double(1)
    finally:
        stop()
    assert seen[-1] == ("double-0", "Crashed")


# Options


def test_defaults_come_from_the_function() -> None:
    @task
    def fetch_rows() -> None:
        """Fetch the rows."""

    @flow
    def nightly_job() -> None: ...

    assert fetch_rows.name == "fetch_rows"
    assert fetch_rows.description == "Fetch the rows."
    assert nightly_job.name == "nightly-job"


def test_with_options_returns_a_changed_copy() -> None:
    changed = double.with_options(name="twice", tags={"math"}, version="2")
    assert (changed.name, changed.tags, changed.version) == ("twice", {"math"}, "2")
    assert (double.name, double.tags, double.version) == ("double", frozenset(), None)
    assert changed(2) == 4


def test_task_run_name_template_and_function(backend: str) -> None:
    names: list[str | None] = []

    @task(task_run_name="fetch-{url}")
    def fetch(url: str) -> None:
        names.append(runtime.task_run.name)

    @task(task_run_name=lambda: f"for-{runtime.task_run.parameters['n']}")
    def count(n: int) -> None:
        names.append(runtime.task_run.name)

    @flow(flow_run_name="daily-{day}")
    def main(day: str) -> str | None:
        fetch("a.io")
        count(3)
        return runtime.flow_run.name

    assert main("mon") == "daily-mon"
    assert names == ["fetch-a.io", "for-3"]


def test_template_naming_a_missing_argument_is_refused() -> None:
    with pytest.raises(ValueError, match=r"task 'fetch'.*'nope'"):

        @task(task_run_name="x-{nope}")
        def fetch(url: str) -> None: ...


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"description": 3}, TypeError),
        ({"tags": "abc"}, TypeError),
        ({"version": 3}, TypeError),
        ({"log_prints": "yes"}, TypeError),
        ({"retries": -1}, ValueError),
        ({"timeout_seconds": 0}, ValueError),
        ({"max_concurrency": 0}, ValueError),
    ],
)
def test_bad_options_name_the_task(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match="task 'f'"):
        task(name="f", **options)(lambda: None)  # type: ignore[call-overload]


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError):
        task(retry_forever=True)(lambda: None)  # type: ignore[call-overload]


def test_task_key_depends_on_name_function_and_tags() -> None:
    def f() -> None: ...

    def g() -> None: ...

    base = task(f)
    assert base.task_key == task(f).task_key
    assert base.task_key != task(g).task_key
    assert base.task_key != base.with_options(name="other").task_key
    assert base.task_key != base.with_options(tags=["x"]).task_key


def test_tags_combine_decorator_and_nested_contexts(backend: str) -> None:
    seen: list[list[str]] = []

    @task(tags=["own"])
    def tagged() -> None:
        seen.append(runtime.task_run.tags)

    @flow
    def main() -> None:
        with tags("outer"):
            with tags("inner"):
                tagged()
            tagged()
        tagged()

    main()
    assert seen == [["inner", "outer", "own"], ["outer", "own"], ["own"]]


# Runtime and names


def test_runtime_views_are_empty_outside_runs() -> None:
    assert runtime.flow_run.id is None
    assert runtime.task_run.name is None
    assert runtime.task_run.parameters == {}
    assert runtime.flow_run.tags == []
    with pytest.raises(AttributeError):
        _ = runtime.task_run.no_such_thing


def test_runtime_views_inside_runs(backend: str) -> None:
    seen: dict[str, Any] = {}

    @task
    def look(x: int) -> None:
        seen.update(
            name=runtime.task_run.name, task=runtime.task_run.task_name,
            params=runtime.task_run.parameters, count=runtime.task_run.run_count,
            flow=runtime.flow_run.flow_name, flow_params=runtime.flow_run.parameters,
        )  # fmt: skip

    @flow
    def watcher(n: int = 2) -> None:
        look(n)

    watcher()
    assert seen == {
        "name": "look-0", "task": "look", "params": {"x": 2}, "count": 1,
        "flow": "watcher", "flow_params": {"n": 2},
    }  # fmt: skip


def test_task_runs_are_numbered_per_task_per_flow_run(backend: str) -> None:
    seen, stop = recorded_states()

    @flow
    def main() -> None:
        double(1)
        double(2)
        adouble_sync = task(lambda: 1, name="other")
        adouble_sync()

    try:
        main()
        main()
    finally:
        stop()
    created = [name for name, state in seen if state == "Pending" and "-" in name]
    tasks = [n for n in created if n.startswith(("double", "other"))]
    assert tasks == ["double-0", "double-1", "other-0"] * 2


def test_flow_runs_get_two_word_names(backend: str) -> None:
    @flow
    def main() -> str | None:
        return runtime.flow_run.name

    name = main()
    assert name is not None
    first, second = name.split("-")
    assert first.isalpha()
    assert second.isalpha()


# Logging


def test_run_logger_records_reach_caplog(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")

    @task
    def noisy() -> None:
        flowkit.get_run_logger().info("rows: %d", 3)

    @flow
    def main() -> None:
        noisy()

    main()
    record = next(r for r in caplog.records if r.getMessage() == "rows: 3")
    assert record.task_run_name == "noisy-0"  # type: ignore[attr-defined]
    assert record.name == "flowkit.task_runs"
    messages = [r.getMessage() for r in caplog.records]
    assert "Created task run 'noisy-0' for task 'noisy'" in messages
    assert "Finished in state Completed()" in messages


def test_get_run_logger_outside_a_run_says_what_to_do() -> None:
    with pytest.raises(MissingContextError, match="needs a flow or task run"):
        flowkit.get_run_logger()


def test_console_format_matches_the_reference() -> None:
    from flowkit.logging import ConsoleFormatter

    record = logging.LogRecord("flowkit.flow_runs", logging.INFO, "x", 0, "hello", (), None)
    record.run_label = "Flow run 'intrepid-coua'"
    line = ConsoleFormatter().format(record)
    assert line.endswith(" | INFO    | Flow run 'intrepid-coua' - hello")
    assert line[2] == ":"
    assert line[8] == "."


def test_log_prints_is_inherited_and_can_be_refused(
    backend: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")

    @task
    def chatty() -> None:
        print("from chatty")

    @task(log_prints=False)
    def quiet() -> None:
        print("from quiet")

    @flow(log_prints=True)
    def main() -> None:
        chatty()
        quiet()

    main()
    print("outside")
    messages = [r.getMessage() for r in caplog.records]
    assert "from chatty" in messages
    assert "from quiet" not in messages
    out = capsys.readouterr().out
    assert "from quiet" in out
    assert "outside" in out
    assert "from chatty" not in out


def test_import_configures_nothing() -> None:
    code = (
        "import logging, threading, flowkit;"
        "print(logging.getLogger('flowkit').handlers, logging.getLogger().handlers,"
        " threading.active_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "[]", "1"]


# States


@pytest.mark.parametrize(
    ("state", "predicate"),
    [
        (flowkit.states.Pending(), "is_pending"),
        (flowkit.states.Running(), "is_running"),
        (flowkit.states.Retrying(), "is_running"),
        (flowkit.states.AwaitingRetry(), "is_scheduled"),
        (flowkit.states.Completed(), "is_completed"),
        (flowkit.states.Cached(), "is_completed"),
        (flowkit.states.Failed(), "is_failed"),
        (flowkit.states.TimedOut(), "is_failed"),
        (flowkit.states.Crashed(), "is_crashed"),
        (flowkit.states.Cancelled(), "is_cancelled"),
    ],
)
def test_each_named_state_has_one_kind(state: State[Any], predicate: str) -> None:
    kinds = [
        "is_scheduled", "is_pending", "is_running", "is_completed", "is_failed",
        "is_crashed", "is_cancelled",
    ]  # fmt: skip
    assert [k for k in kinds if getattr(state, k)()] == [predicate]


def test_state_strings_match_the_reference() -> None:
    assert str(Completed()) == "Completed()"
    assert str(Completed("All states completed.")) == "Completed('All states completed.')"
    assert str(Failed("x")) == "Failed('x')"


def test_result_of_an_unfinished_state_is_an_error() -> None:
    from flowkit.exceptions import UnfinishedRunError

    with pytest.raises(UnfinishedRunError, match="not final"):
        flowkit.states.Running().result()


# The public API


def test_dunder_all_matches_the_exports() -> None:
    exported = {
        name for name in dir(flowkit)
        # pytest rewrites the modules of a package with a plugin: "@py_builtins" and such;
        # submodules that are not exports appear as attributes once imported.
        if name.isidentifier() and not name.startswith("_") and name not in {"annotations",
        "cache_policies", "cli", "context", "demo", "exceptions", "flows", "futures", "logging",
        "states", "tasks", "client", "filesystems", "serializers", "testing", "utilities",
        "artifacts", "ui", "bench", "transactions"}
    }  # fmt: skip
    assert sorted(flowkit.__all__) == flowkit.__all__
    assert set(flowkit.__all__) == exported


# Binding arguments to parameters (the fast path must agree with inspect)


def _sig_a(a: int, b: int = 2, *, c: int = 3) -> None: ...
def _sig_b(x: int, /, y: int) -> None: ...
def _sig_c(*args: int, **kwargs: int) -> None: ...
def _sig_d(a: int, *, k: int) -> None: ...


@given(
    fn=st.sampled_from([_sig_a, _sig_b, _sig_c, _sig_d]),
    args=st.lists(st.integers(), max_size=4),
    kwargs=st.dictionaries(st.sampled_from(["a", "b", "c", "k", "x", "y", "z"]), st.integers()),
)
def test_binding_agrees_with_inspect(fn: Any, args: list[int], kwargs: dict[str, int]) -> None:
    signature = inspect.signature(fn)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        with pytest.raises(TypeError):
            bind(signature, plain_parameters(signature), tuple(args), kwargs)
        return
    bound.apply_defaults()
    assert bind(signature, plain_parameters(signature), tuple(args), kwargs) == dict(
        bound.arguments
    )


def test_run_ids_are_random_uuids_never_shared_with_a_forked_child() -> None:
    import multiprocessing
    import uuid

    from flowkit._engine.ids import new_id

    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert {i.version for i in ids} == {4}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    parent, child = multiprocessing.get_context("fork").Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=lambda: child.send([new_id() for _ in range(10)])
    )
    process.start()
    in_child = parent.recv()
    process.join()
    in_parent = [new_id() for _ in range(10)]
    assert not set(in_child) & set(in_parent)
