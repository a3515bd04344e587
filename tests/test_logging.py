"""Run logging: ``get_run_logger()``, the engine's console story, ``log_prints`` and setup."""

from __future__ import annotations

import builtins
import logging
import os
import re
import subprocess
import sys
import textwrap

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest

import flowkit
from flowkit import flow, get_run_logger, runtime, task
from flowkit.exceptions import MissingContextError
from flowkit.logging import ConsoleFormatter

TIME = r"\d\d:\d\d:\d\d\.\d{3}"
RUN_NAME = r"[a-z]+-[a-z]+"


@pytest.fixture(autouse=True)
def info_level(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture flowkit's INFO records, whatever an earlier test set."""
    caplog.set_level(logging.INFO, logger="flowkit")
    return caplog


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def record_of(caplog: pytest.LogCaptureFixture, message: str) -> logging.LogRecord:
    found = [r for r in caplog.records if r.getMessage() == message]
    assert len(found) == 1, messages(caplog)
    return found[0]


def story(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The records of flowkit's loggers, as console lines without their time."""
    formatter = ConsoleFormatter()
    return [
        formatter.format(r).split(" | ", 1)[1]
        for r in caplog.records
        if r.name.startswith("flowkit")
    ]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter, so that flowkit's one-time setup runs again."""
    environ = {k: v for k, v in os.environ.items() if k != "FLOWKIT_LOGGING_LEVEL"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **env},
    )


ONE_TASK_FLOW = textwrap.dedent(
    """
    import logging, sys
    from flowkit import flow, task, get_run_logger

    @task
    def step():
        get_run_logger().info("task info")
        get_run_logger().warning("task warning")

    @flow
    def main():
        step()
    """
)


# get_run_logger()


def test_flow_logger_records_reach_caplog(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    @flow
    def main() -> str | None:
        get_run_logger().info("in the flow")
        return runtime.flow_run.name

    name = main()
    record = record_of(caplog, "in the flow")
    assert record.name == "flowkit.flow_runs"
    assert record.levelno == logging.INFO
    assert record.flow_run_name == name  # type: ignore[attr-defined]
    assert record.flow_name == "main"  # type: ignore[attr-defined]
    assert record.run_label == f"Flow run {name!r}"  # type: ignore[attr-defined]


def test_task_logger_records_carry_task_and_flow_names(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    @task
    def step() -> tuple[str | None, str | None]:
        get_run_logger().info("in the task")
        return runtime.task_run.id, runtime.flow_run.id

    @flow
    def main() -> tuple[str | None, str | None]:
        return step()

    task_run_id, flow_run_id = main()
    record = record_of(caplog, "in the task")
    assert record.name == "flowkit.task_runs"
    assert record.task_run_name == "step-0"  # type: ignore[attr-defined]
    assert record.task_name == "step"  # type: ignore[attr-defined]
    assert record.task_run_id == task_run_id  # type: ignore[attr-defined]
    assert record.flow_run_id == flow_run_id  # type: ignore[attr-defined]
    assert record.flow_name == "main"  # type: ignore[attr-defined]
    assert record.run_label == "Task run 'step-0'"  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_async_task_logger_records_reach_caplog(caplog: pytest.LogCaptureFixture) -> None:
    @task
    async def step() -> None:
        await anyio.lowlevel.checkpoint()
        get_run_logger().info("async task")

    @flow
    async def main() -> None:
        await step()
        get_run_logger().info("async flow")

    await main()
    assert record_of(caplog, "async task").task_run_name == "step-0"  # type: ignore[attr-defined]
    assert record_of(caplog, "async flow").name == "flowkit.flow_runs"


def test_task_outside_a_flow_can_log(caplog: pytest.LogCaptureFixture) -> None:
    @task
    def alone() -> None:
        get_run_logger().info("alone")

    alone()
    record = record_of(caplog, "alone")
    assert record.run_label == "Task run 'alone-0'"  # type: ignore[attr-defined]
    assert not hasattr(record, "flow_run_id")


def test_logger_arguments_are_formatted_lazily(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    @flow
    def main() -> None:
        get_run_logger().info("rows: %d of %s", 3, "table")

    main()
    record = record_of(caplog, "rows: 3 of table")
    assert record.msg == "rows: %d of %s"
    assert record.args == (3, "table")


def test_logger_keywords_become_record_attributes(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    @flow
    def main() -> None:
        get_run_logger().info("fetched", rows=12)

    main()
    assert record_of(caplog, "fetched").rows == 12  # type: ignore[attr-defined]


def test_logger_exception_keeps_the_traceback(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    @flow
    def main() -> None:
        try:
            raise KeyError("gone")
        except KeyError:
            get_run_logger().exception("lookup failed")

    main()
    record = record_of(caplog, "lookup failed")
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[0] is KeyError


def test_run_logger_records_point_at_the_calling_line(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    @task
    def noisy() -> None:
        get_run_logger().info("where am I")

    @flow
    def main() -> None:
        noisy()

    main()
    record = record_of(caplog, "where am I")
    assert (record.filename, record.funcName) == ("test_logging.py", "noisy")


def test_run_logger_respects_the_flowkit_level(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    @flow
    def main() -> None:
        get_run_logger().debug("hidden")
        get_run_logger().info("shown")

    main()
    assert "hidden" not in messages(caplog)
    assert "shown" in messages(caplog)


def test_run_logger_debug_is_kept_at_debug_level(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flowkit")

    @flow
    def main() -> None:
        get_run_logger().debug("detail")

    main()
    assert record_of(caplog, "detail").levelno == logging.DEBUG


def test_get_run_logger_outside_a_run_says_what_to_do() -> None:
    with pytest.raises(MissingContextError, match=r"needs a flow or task run.*logging\.getLogger"):
        get_run_logger()


def test_missing_context_error_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError):
        flowkit.get_run_logger()


@pytest.mark.anyio
async def test_get_run_logger_outside_a_run_fails_in_async_code_too() -> None:
    with pytest.raises(MissingContextError):
        get_run_logger()


# The console line


def test_console_line_shape() -> None:
    record = logging.LogRecord(
        "flowkit.flow_runs", logging.INFO, "x", 0, "hello %s", ("you",), None
    )
    record.run_label = "Flow run 'intrepid-coua'"
    line = ConsoleFormatter().format(record)
    assert re.fullmatch(rf"{TIME} \| INFO    \| Flow run 'intrepid-coua' - hello you", line)


@pytest.mark.parametrize(
    ("level", "shown"),
    [(logging.WARNING, "WARNING"), (logging.ERROR, "ERROR  "), (logging.DEBUG, "DEBUG  ")],
)
def test_console_level_is_padded_to_seven(level: int, shown: str) -> None:
    record = logging.LogRecord("flowkit.task_runs", level, "x", 0, "m", (), None)
    record.run_label = "Task run 'a-0'"
    assert f" | {shown} | Task run 'a-0' - m" in ConsoleFormatter().format(record)


def test_console_line_without_a_run_shows_the_logger_name() -> None:
    record = logging.LogRecord("flowkit.engine", logging.INFO, "x", 0, "started", (), None)
    line = ConsoleFormatter().format(record)
    assert re.fullmatch(rf"{TIME} \| INFO    \| flowkit\.engine - started", line)


def test_console_line_of_a_real_record(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    @flow
    def main() -> None:
        get_run_logger().info("hello")

    main()
    line = ConsoleFormatter().format(record_of(caplog, "hello"))
    assert re.fullmatch(rf"{TIME} \| INFO    \| Flow run '{RUN_NAME}' - hello", line)


# The engine's story of a run


def test_story_of_a_flow_with_one_task(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    @task
    def step() -> None:
        pass

    @flow
    def main() -> str | None:
        step()
        return runtime.flow_run.name

    name = main()
    assert story(caplog) == [
        f"INFO    | flowkit.engine - Created flow run '{name}' for flow 'main'",
        f"INFO    | Flow run '{name}' - Created task run 'step-0' for task 'step'",
        f"INFO    | Flow run '{name}' - Executing 'step-0' immediately...",
        "INFO    | Task run 'step-0' - Finished in state Completed()",
        f"INFO    | Flow run '{name}' - Finished in state Completed('All states completed.')",
    ]


def test_created_task_run_line_names_run_and_task(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    @task(name="get_url")
    def fetch() -> None:
        pass

    @flow
    def main() -> None:
        fetch()
        fetch()

    main()
    assert "Created task run 'get_url-0' for task 'get_url'" in messages(caplog)
    assert "Created task run 'get_url-1' for task 'get_url'" in messages(caplog)


def test_engine_lines_carry_the_run_context(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    @task
    def step() -> str | None:
        return runtime.task_run.id

    @flow
    def main() -> str | None:
        return step()

    task_run_id = main()
    finished = [r for r in caplog.records if r.name == "flowkit.task_runs"]
    assert [r.getMessage() for r in finished] == ["Finished in state Completed()"]
    assert finished[0].task_run_id == task_run_id  # type: ignore[attr-defined]


def test_submitted_task_run_is_announced(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    @task
    def step() -> None:
        pass

    @flow
    def main() -> None:
        step.submit().wait()

    main()
    assert "Submitted task run 'step-0' for execution." in messages(caplog)
    assert "Executing 'step-0' immediately..." not in messages(caplog)


def test_failed_task_run_is_logged_as_an_error_with_its_traceback(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    @task
    def broken() -> None:
        raise ValueError("nope")

    @flow
    def main() -> None:
        broken(return_state=True)

    main()
    record = record_of(
        caplog, "Finished in state Failed('Task run encountered an exception: ValueError: nope')"
    )
    assert record.levelno == logging.ERROR
    assert record.name == "flowkit.task_runs"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


def test_retry_is_announced_as_a_warning(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    attempts: list[int] = []

    @task(retries=1)
    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first")

    @flow
    def main() -> None:
        flaky()

    main()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("Attempt 1 ended Failed(")
    assert warnings[0].run_label == "Task run 'flaky-0'"  # type: ignore[attr-defined]


def test_subflow_run_is_announced_by_its_parent(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    @flow
    def child() -> str | None:
        return runtime.flow_run.name

    @flow
    def parent() -> tuple[str | None, str | None]:
        return child(), runtime.flow_run.name

    child_name, parent_name = parent()
    record = record_of(caplog, f"Created subflow run '{child_name}' for flow 'child'")
    assert record.run_label == f"Flow run '{parent_name}'"  # type: ignore[attr-defined]


def test_no_engine_records_below_their_level(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit")

    @flow
    def main() -> None:
        pass

    main()
    assert story(caplog) == []


# log_prints


def test_log_prints_turns_a_flow_print_into_an_info_record(
    backend: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    @flow(log_prints=True)
    def main() -> str | None:
        print("hello from the flow")
        return runtime.flow_run.name

    name = main()
    record = record_of(caplog, "hello from the flow")
    assert record.levelno == logging.INFO
    assert record.name == "flowkit.flow_runs"
    assert record.run_label == f"Flow run {name!r}"  # type: ignore[attr-defined]
    assert "hello from the flow" not in capsys.readouterr().out


def test_log_prints_reaches_tasks_of_the_flow(
    backend: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    @task
    def step() -> None:
        print("hello from the task")

    @flow(log_prints=True)
    def main() -> None:
        step()

    main()
    record = record_of(caplog, "hello from the task")
    assert record.run_label == "Task run 'step-0'"  # type: ignore[attr-defined]
    assert "hello from the task" not in capsys.readouterr().out


@pytest.mark.anyio
async def test_log_prints_in_async_code(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    @task
    async def step() -> None:
        await anyio.lowlevel.checkpoint()
        print("async task print")

    @flow(log_prints=True)
    async def main() -> None:
        await step()

    await main()
    assert "async task print" in messages(caplog)
    assert "async task print" not in capsys.readouterr().out


def test_log_prints_joins_values_with_sep(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    @flow(log_prints=True)
    def main() -> None:
        print("a", 1, None, sep="|")
        print("b", 2)

    main()
    assert "a|1|None" in messages(caplog)
    assert "b 2" in messages(caplog)


def test_log_prints_leaves_prints_to_other_files_alone(
    backend: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    @flow(log_prints=True)
    def main() -> None:
        print("to stderr", file=sys.stderr)

    main()
    assert "to stderr" not in messages(caplog)
    assert "to stderr" in capsys.readouterr().err


def test_prints_without_log_prints_go_to_stdout(
    backend: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    @flow
    def main() -> None:
        print("plain print")

    main()
    assert "plain print" not in messages(caplog)
    assert "plain print" in capsys.readouterr().out


def test_prints_outside_runs_are_untouched(
    backend: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    @flow(log_prints=True)
    def main() -> None:
        print("inside")

    print("before")
    main()
    print("after")
    assert capsys.readouterr().out == "before\nafter\n"
    assert "before" not in messages(caplog)
    assert "after" not in messages(caplog)


def test_print_is_restored_after_a_log_prints_run(backend: str) -> None:
    original = builtins.print

    @flow(log_prints=True)
    def main() -> bool:
        return builtins.print is original

    assert main() is False
    assert builtins.print is original


def test_print_is_restored_after_a_failed_log_prints_run(backend: str) -> None:
    original = builtins.print

    @flow(log_prints=True)
    def main() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        main()
    assert builtins.print is original


# Setup: nothing at import, the level and a console handler at the first run


def test_import_configures_no_handlers_and_starts_no_threads() -> None:
    result = run_python(
        """
        import logging, threading, flowkit
        print(logging.getLogger('flowkit').handlers, logging.getLogger().handlers,
              threading.active_count())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "[]", "1"]


def test_import_sets_no_level() -> None:
    result = run_python("import logging, flowkit; print(logging.getLogger('flowkit').level)")
    assert result.stdout.strip() == str(logging.NOTSET)


def test_first_run_prints_the_console_story_to_stderr() -> None:
    result = run_python(ONE_TASK_FLOW + "\nmain()\n")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert re.fullmatch(
        rf"{TIME} \| INFO    \| flowkit\.engine - Created flow run '{RUN_NAME}' for flow 'main'",
        lines[0],
    )
    assert re.fullmatch(rf"{TIME} \| INFO    \| Task run 'step-0' - task info", lines[3])
    assert re.fullmatch(rf"{TIME} \| WARNING \| Task run 'step-0' - task warning", lines[4])
    assert result.stdout == ""


def test_logging_level_variable_is_respected() -> None:
    result = run_python(ONE_TASK_FLOW + "\nmain()\n", FLOWKIT_LOGGING_LEVEL="WARNING")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].endswith("| WARNING | Task run 'step-0' - task warning")


def test_logging_level_variable_is_case_insensitive() -> None:
    code = ONE_TASK_FLOW + "\nmain()\nprint(logging.getLogger('flowkit').level)\n"
    result = run_python(code, FLOWKIT_LOGGING_LEVEL="debug")
    assert result.stdout.strip() == str(logging.DEBUG)


def test_bad_logging_level_variable_names_the_value_and_the_choices() -> None:
    result = run_python(ONE_TASK_FLOW + "\nmain()\n", FLOWKIT_LOGGING_LEVEL="LOUD")
    assert result.returncode != 0
    assert "FLOWKIT_LOGGING_LEVEL='LOUD' is not a logging level" in result.stderr
    assert "use DEBUG, INFO, WARNING, ERROR or CRITICAL" in result.stderr


def test_level_set_by_the_program_wins_over_the_variable() -> None:
    code = (
        ONE_TASK_FLOW
        + "\nlogging.getLogger('flowkit').setLevel(logging.ERROR)"
        + "\nmain()\nprint(logging.getLogger('flowkit').level)\n"
    )
    result = run_python(code, FLOWKIT_LOGGING_LEVEL="DEBUG")
    assert result.stdout.strip() == str(logging.ERROR)
    assert result.stderr == ""


def test_program_logging_config_gets_records_once_and_no_console_handler() -> None:
    code = (
        ONE_TASK_FLOW
        + "\nlogging.basicConfig(stream=sys.stdout, format='%(name)s: %(message)s')"
        + "\nmain()\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.count("flowkit.task_runs: task info\n") == 1


# Logging


@pytest.mark.every_loop
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


def test_console_format_matches_the_reference() -> None:
    from flowkit.logging import ConsoleFormatter

    record = logging.LogRecord("flowkit.flow_runs", logging.INFO, "x", 0, "hello", (), None)
    record.run_label = "Flow run 'intrepid-coua'"
    line = ConsoleFormatter().format(record)
    assert line.endswith(" | INFO    | Flow run 'intrepid-coua' - hello")
    assert line[2] == ":"
    assert line[8] == "."


@pytest.mark.every_loop
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
