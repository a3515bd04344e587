"""``flowkit.logging.disable_run_logger()``, and where ``log_prints`` records point."""

from __future__ import annotations

import inspect
import logging
import threading

import pytest

from flowkit import flow, get_run_logger, task
from flowkit.exceptions import MissingContextError
from flowkit.logging import disable_run_logger

RUN_LOGGERS = ("flowkit.flow_runs", "flowkit.task_runs")


@pytest.fixture(autouse=True)
def info_level(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="flowkit")
    return caplog


def run_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name in RUN_LOGGERS]


@task
def shout(word: str) -> str:
    get_run_logger().info("shouting %s", word)
    return word.upper()


def test_run_loggers_write_nothing_inside_the_block(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    @flow(log_prints=True)
    def main() -> str:
        get_run_logger().info("from the flow")
        print("printed")
        return shout("hi")

    with disable_run_logger():
        assert main() == "HI"
    assert run_records(caplog) == []


def test_run_loggers_write_again_after_the_block(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    @flow
    def main() -> str:
        return shout("hi")

    with disable_run_logger():
        main()
    main()
    assert "shouting hi" in run_records(caplog)


def test_a_task_function_called_directly_gets_a_silent_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with disable_run_logger():
        assert shout.fn("hi") == "HI"
    assert run_records(caplog) == []
    assert "shouting hi" not in caplog.text


def test_outside_the_block_a_direct_call_still_misses_its_run() -> None:
    with pytest.raises(MissingContextError):
        shout.fn("hi")


def test_blocks_nest() -> None:
    with disable_run_logger():
        with disable_run_logger():
            pass
        assert all(logging.getLogger(name).disabled for name in RUN_LOGGERS)
    assert not any(logging.getLogger(name).disabled for name in RUN_LOGGERS)


def test_a_logger_disabled_before_stays_disabled() -> None:
    logging.getLogger("flowkit.task_runs").disabled = True
    try:
        with disable_run_logger():
            pass
        assert logging.getLogger("flowkit.task_runs").disabled
        assert not logging.getLogger("flowkit.flow_runs").disabled
    finally:
        logging.getLogger("flowkit.task_runs").disabled = False


def test_blocks_in_two_threads_restore_the_loggers_once_both_close() -> None:
    inside, release = threading.Barrier(2, timeout=5), threading.Event()

    def hold() -> None:
        with disable_run_logger():
            inside.wait()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    with disable_run_logger():
        inside.wait()
    still_disabled = logging.getLogger("flowkit.flow_runs").disabled
    release.set()
    thread.join(5)
    assert still_disabled
    assert not logging.getLogger("flowkit.flow_runs").disabled


# log_prints records point at the print call


def test_a_printed_record_points_at_the_print_call(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    lines: list[int] = []

    @flow(log_prints=True)
    def printer() -> None:
        lines.append(inspect.currentframe().f_lineno + 1)  # type: ignore[union-attr]
        print("where am I")

    printer()
    (record,) = [r for r in caplog.records if r.getMessage() == "where am I"]
    assert (record.funcName, record.lineno, record.pathname) == ("printer", lines[0], __file__)
