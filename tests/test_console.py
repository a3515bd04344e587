"""flowkit's console: lines as the stdlib would format them, written in batches, in order,
none lost (before a flow returns, at once for a warning, within a moment otherwise)."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from flowkit.logging import ConsoleFormatter, ConsoleHandler


def make_record(level: int, message: str, created: float | None = None) -> logging.LogRecord:
    record = logging.LogRecord("flowkit.task_runs", level, "x", 0, message, (), None)
    if created is not None:
        record.created = created
        record.msecs = (created - int(created)) * 1000
    record.run_label = "Task run 'step-0'"
    return record


@given(
    created=st.floats(min_value=0, max_value=4e9),
    level=st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, 5]),
    message=st.text(),
)
def test_console_lines_are_what_the_stdlib_formatter_makes(
    created: float, level: int, message: str
) -> None:
    stdlib = logging.Formatter(
        "%(asctime)s.%(msecs)03d | %(levelname)-7s | %(label)s - %(message)s",
        datefmt="%H:%M:%S",
    )
    record = make_record(level, message, created)
    ours = ConsoleFormatter().format(record)
    assert ours == stdlib.format(record)


def test_a_formatter_says_the_second_of_each_line() -> None:
    formatter = ConsoleFormatter()
    first = formatter.format(make_record(logging.INFO, "a", 1_000_000.5))
    second = formatter.format(make_record(logging.INFO, "b", 1_000_001.25))
    assert first[:8] != second[:8]
    assert second[8:12] == ".250"


def test_lines_wait_for_a_warning_which_writes_them_all_in_order() -> None:
    stream = io.StringIO()
    handler = ConsoleHandler(stream)
    handler.handle(make_record(logging.INFO, "one"))
    handler.handle(make_record(logging.INFO, "two"))
    assert stream.getvalue() == ""
    handler.handle(make_record(logging.WARNING, "three"))
    said = [line.rsplit(" - ", 1)[1] for line in stream.getvalue().splitlines()]
    assert said == ["one", "two", "three"]


def test_gathered_lines_are_written_soon_without_a_flush() -> None:
    stream = io.StringIO()
    handler = ConsoleHandler(stream)
    handler.handle(make_record(logging.INFO, "soon"))
    deadline = time.monotonic() + 30  # no timing asserted: written within a moment
    while "soon" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.getvalue().endswith(" - soon\n")


def test_flush_writes_what_is_gathered() -> None:
    stream = io.StringIO()
    handler = ConsoleHandler(stream)
    handler.handle(make_record(logging.INFO, "kept"))
    handler.flush()
    assert stream.getvalue().endswith(" - kept\n")
    handler.flush()  # nothing gathered: nothing written
    assert stream.getvalue().count("\n") == 1


def run_python(code: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWKIT_LOGGING")}
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
        timeout=60, env=env, check=False,
    )  # fmt: skip


def test_a_flow_lines_are_written_before_it_returns() -> None:
    result = run_python(
        """
        import os
        from flowkit import flow, task

        @task
        def step(i: int) -> int:
            return i

        @flow
        def main() -> None:
            for i in range(50):
                step(i)

        main()
        os.write(2, b"after the flow\\n")  # past any buffer of flowkit's
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1] == "after the flow"
    assert "Finished in state Completed" in lines[-2]
    assert len(lines) == 1 + 2 + 3 * 50
    executing = [line.rsplit("'", 2)[1] for line in lines if "Executing" in line]
    assert executing == [f"step-{i}" for i in range(50)]


def test_a_failing_flow_lines_come_before_its_traceback() -> None:
    result = run_python(
        """
        from flowkit import flow

        @flow
        def main() -> None:
            raise ValueError("boom")

        main()
        """
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    finished = next(i for i, line in enumerate(lines) if "Finished in state Failed" in line)
    uncaught = lines.index("Traceback (most recent call last):", finished + 1)
    assert lines[-1] == "ValueError: boom"
    assert finished < uncaught


def test_lines_made_last_are_written_at_exit() -> None:
    result = run_python(
        """
        import logging
        from flowkit import flow

        @flow
        def main() -> None:
            pass

        main()
        logging.getLogger("flowkit.mine").info("last words")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1].endswith("| INFO    | flowkit.mine - last words")


def test_a_forked_process_does_not_write_the_lines_of_its_parent() -> None:
    result = run_python(
        """
        import logging, os, sys
        from flowkit import flow

        @flow
        def main() -> None:
            pass

        main()
        logging.getLogger("flowkit.mine").info("before the fork")
        if os.fork() == 0:
            sys.exit(0)  # exits as programs do: logging flushes its handlers
        os.wait()
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("before the fork") == 1


STORY = """
import json, logging, sys
from flowkit import flow, task, get_run_logger
from flowkit.store import Store

if sys.argv[1] == "through-records":  # a filter on each run logger: records must be made
    for name in ("flowkit.engine", "flowkit.flow_runs", "flowkit.task_runs"):
        logging.getLogger(name).addFilter(lambda record: True)

@task(retries=1)
def step(i: int) -> int:
    get_run_logger().info("step %d", i)
    if i == 2:
        raise ValueError("two")
    return i

@flow
def main() -> None:
    step(0)
    step.submit(1).result()
    step(2, return_state=True)

main()
with Store.open() as store:
    lines = [(l.run_id is not None, l.level, l.logger, l.label, l.message)
             for l in store.logs(store.flow_runs(limit=1)[0].id)]
print(json.dumps(lines))
"""


def test_story_lines_without_records_are_those_records_would_make(tmp_path: Path) -> None:
    """With only flowkit's own handlers, the engine's lines skip making a record: the
    console and the run store get the same lines as when a filter makes records needed."""

    def story(how: str) -> tuple[list[str], str]:
        home = tmp_path / how
        result = run_python(STORY, how, FLOWKIT_HOME=str(home))
        assert result.returncode == 0, result.stderr
        # Without times, and run names (drawn at random) made the same.
        text = re.sub(r"'[a-z]+-[a-z]+'", "'<flow run>'", result.stderr)
        return [line[13:] for line in text.splitlines()], result.stdout

    direct, direct_stored = story("direct")
    through, through_stored = story("through-records")
    assert len(direct) > 15
    assert direct == through
    assert re.sub(r"'[a-z]+-[a-z]+'", "", direct_stored) == re.sub(
        r"'[a-z]+-[a-z]+'", "", through_stored
    )
