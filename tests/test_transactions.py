"""Transactions: task runs that commit or roll back as one (Prefect's ``transactions``)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import anyio.lowlevel
import pytest

import flowkit
from flowkit import flow, task
from flowkit.cli import main
from flowkit.store import Store, flush
from flowkit.transactions import (
    CommitMode,
    IsolationLevel,
    Transaction,
    TransactionState,
    get_transaction,
    transaction,
)

Log = list[tuple[str, ...]]


def _recording_task(log: Log, name: str = "step") -> Any:
    """A task that logs its runs, with commit and rollback hooks that log too."""

    @task(name=name)
    def step(label: str) -> str:
        log.append(("ran", label))
        return label

    @step.on_commit
    def committed(txn: Transaction) -> None:
        log.append(("commit", txn.get("label", "?")))

    @step.on_rollback
    def rolled_back(txn: Transaction) -> None:
        log.append(("rollback", txn.get("label", "?")))

    return step


@task
def fail() -> None:
    raise ValueError("bad data")


@pytest.mark.usefixtures("backend")
def test_an_exception_leaving_the_block_rolls_back_the_runs_last_first() -> None:
    log: Log = []
    step = _recording_task(log)

    @task
    def labelled(label: str) -> str:
        txn = get_transaction()
        assert txn is not None
        txn.set("label", label)  # the run's own transaction: its hooks read it
        return label

    labelled = labelled.with_options(on_rollback=[lambda t: log.append(("undo", t.get("label")))])

    @flow
    def pipeline() -> None:
        with transaction():
            labelled("a")
            step("b")
            labelled("c")
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        pipeline()
    assert log == [("ran", "b"), ("undo", "c"), ("rollback", "?"), ("undo", "a")]


@pytest.mark.usefixtures("backend")
def test_commit_hooks_run_in_order_when_the_block_ends() -> None:
    log: Log = []
    step = _recording_task(log)

    @flow
    def pipeline() -> None:
        with transaction() as txn:
            txn.set("label", "outer")
            step("a")
            step("b")
            assert log == [("ran", "a"), ("ran", "b")]  # nothing commits before the end

    pipeline()
    assert log == [("ran", "a"), ("ran", "b"), ("commit", "outer"), ("commit", "outer")]


@pytest.mark.anyio
async def test_a_task_failing_inside_rolls_back_the_runs_that_completed() -> None:
    log: Log = []
    step = _recording_task(log)

    @flow
    async def pipeline() -> None:
        with transaction():
            step("a")
            step("b")
            fail()

    with pytest.raises(ValueError, match="bad data"):
        await pipeline()
    assert log == [("ran", "a"), ("ran", "b"), ("rollback", "?"), ("rollback", "?")]


@pytest.mark.usefixtures("backend")
def test_a_failed_task_rolls_back_even_when_its_failure_is_caught() -> None:
    log: Log = []
    step = _recording_task(log)

    @flow
    def pipeline() -> TransactionState:
        with transaction() as txn:
            step("a")
            fail(return_state=True)  # as in Prefect: the run's failure ends the transaction
            step("b")  # runs, but joins a transaction rolled back already
        return txn.state

    assert pipeline() is TransactionState.ROLLED_BACK
    assert log == [("ran", "a"), ("rollback", "?"), ("ran", "b")]


@pytest.mark.usefixtures("backend")
def test_a_task_that_completes_after_a_retry_does_not_roll_back() -> None:
    log: Log = []
    step = _recording_task(log)
    attempts: list[int] = []

    @task(retries=1)
    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("try again")

    @flow
    def pipeline() -> None:
        with transaction():
            step("a")
            flaky()

    pipeline()
    assert log == [("ran", "a"), ("commit", "?")]


@pytest.mark.anyio
async def test_a_submitted_run_joins_the_transaction_it_was_submitted_in() -> None:
    log: Log = []
    step = _recording_task(log)

    @flow
    async def pipeline() -> None:
        with transaction():
            futures = [step.submit("a"), step.submit("b")]
            for future in futures:
                await future
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        await pipeline()
    assert sorted(log) == [("ran", "a"), ("ran", "b"), ("rollback", "?"), ("rollback", "?")]


@pytest.mark.anyio
async def test_a_task_body_sees_the_values_of_the_block() -> None:
    @task
    async def read() -> Any:
        txn = get_transaction()
        assert txn is not None
        return txn.get("region")

    @flow
    async def pipeline() -> Any:
        with transaction() as txn:
            txn.set("region", "eu")
            return await read()

    assert await pipeline() == "eu"


def test_get_returns_a_copy_of_the_value() -> None:
    with transaction() as txn:
        txn.set("rows", [1, 2])
        txn.get("rows").append(3)
        assert txn.get("rows") == [1, 2]


def test_get_of_an_unknown_name_without_default_raises_value_error() -> None:
    with transaction() as txn, pytest.raises(ValueError, match="no value under 'missing'"):
        txn.get("missing")


def test_a_nested_transaction_reads_its_parents_values() -> None:
    with transaction() as outer:
        outer.set("x", 1)
        with transaction() as inner:
            assert inner.get("x") == 1
            assert inner.get_parent() is outer
            assert get_transaction() is inner
        assert get_transaction() is outer
    assert get_transaction() is None


def test_a_nested_transaction_commits_with_its_parent() -> None:
    with transaction() as outer:
        with transaction() as inner:
            pass
        assert inner.commit_mode is CommitMode.LAZY
        assert inner.is_active()  # waits for the parent
    assert outer.is_committed()
    assert inner.is_committed()
    assert outer.children == [inner]


def test_an_eager_nested_transaction_commits_when_its_block_ends() -> None:
    with transaction():
        with transaction(commit_mode=CommitMode.EAGER) as inner:
            pass
        assert inner.is_committed()


def test_a_nested_transaction_takes_its_parents_commit_mode() -> None:
    with transaction(commit_mode=CommitMode.EAGER), transaction() as inner:
        assert inner.commit_mode is CommitMode.EAGER


@pytest.mark.usefixtures("backend")
def test_commit_mode_off_rolls_back_even_without_an_error() -> None:
    log: Log = []
    step = _recording_task(log)

    @flow
    def pipeline() -> None:
        with transaction(commit_mode=CommitMode.OFF):
            step("a")

    pipeline()
    assert log == [("ran", "a"), ("rollback", "?")]


def test_a_rolled_back_nested_transaction_rolls_back_its_parent() -> None:
    with transaction() as outer:
        with pytest.raises(KeyError), transaction() as inner:
            raise KeyError("x")
        assert inner.is_rolled_back()
        assert outer.is_rolled_back()


@pytest.mark.usefixtures("backend")
def test_a_keyed_commit_makes_a_rerun_begin_committed() -> None:
    log: Log = []
    step = _recording_task(log)

    @flow
    def pipeline() -> bool:
        with transaction(key="load-2024-01") as txn:
            if txn.is_committed():
                return False
            step("a")
        return True

    assert pipeline() is True
    assert pipeline() is False
    assert log == [("ran", "a"), ("commit", "?")]


def test_a_rollback_leaves_no_record_of_the_key() -> None:
    with pytest.raises(ValueError, match="no"), transaction(key="k"):
        raise ValueError("no")
    with transaction(key="k") as txn:
        assert not txn.is_committed()


def test_overwrite_begins_uncommitted_despite_a_record() -> None:
    with transaction(key="k"):
        pass
    with transaction(key="k", overwrite=True) as txn:
        assert txn.is_active()
    assert txn.is_committed()


def test_write_on_commit_false_leaves_no_record() -> None:
    with transaction(key="k", write_on_commit=False) as first:
        pass
    assert first.is_committed()
    with transaction(key="k") as second:
        assert not second.is_committed()


def test_the_record_of_a_key_is_kept_under_flowkit_home(flowkit_home: Path) -> None:
    with transaction(key="k"):
        pass
    assert [p.parent.name for p in flowkit_home.glob("transactions/*.json")] == ["transactions"]


@pytest.mark.usefixtures("backend")
def test_a_committed_transaction_neither_commits_nor_rolls_back_again() -> None:
    log: Log = []
    step = _recording_task(log)
    with transaction(key="done"):
        pass

    @flow
    def pipeline() -> None:
        with transaction(key="done"):
            step("a")
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        pipeline()
    assert log == [("ran", "a")]


@pytest.mark.usefixtures("backend")
def test_a_rollback_hook_that_raises_is_logged_and_stops_that_runs_other_hooks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit.transactions")
    log: Log = []
    step = _recording_task(log)

    def broken(txn: Transaction) -> None:
        raise OSError("disk gone")

    breaking = step.with_options(name="breaking", on_rollback=[*step.on_rollback_hooks, broken])

    @flow
    def pipeline() -> None:
        with transaction():
            step("a")
            breaking("b")  # its hooks run last first: broken, then rolled_back (not called)
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        pipeline()
    assert log == [("ran", "a"), ("ran", "b"), ("rollback", "?")]
    assert "Rollback hook 'broken' raised OSError: disk gone" in caplog.text


@pytest.mark.usefixtures("backend")
def test_a_commit_hook_that_raises_rolls_back_its_own_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit.transactions")
    log: Log = []
    step = _recording_task(log)

    def broken(txn: Transaction) -> None:
        raise OSError("no network")

    breaking = step.with_options(name="breaking", on_commit=[broken])

    @flow
    def pipeline() -> bool:
        with transaction() as txn:
            breaking("a")
            step("b")
        return txn.is_committed()

    assert pipeline() is True  # the others commit
    assert log == [("ran", "a"), ("ran", "b"), ("rollback", "?"), ("commit", "?")]
    assert "Commit hook 'broken' raised OSError: no network" in caplog.text
    assert "Committing the transaction of task run 'breaking-0' failed" in caplog.text


@pytest.mark.usefixtures("backend")
def test_a_task_outside_any_transaction_commits_when_it_completes() -> None:
    log: Log = []
    step = _recording_task(log)

    @flow
    def pipeline() -> None:
        step("a")
        log.append(("after",))

    pipeline()
    assert log == [("ran", "a"), ("commit", "?"), ("after",)]


@pytest.mark.usefixtures("backend")
def test_a_cached_run_stages_no_hooks(flowkit_home: Path) -> None:
    log: Log = []
    step = _recording_task(log).with_options(cache_key_fn=lambda *_: "same")

    @flow
    def pipeline() -> None:
        with transaction():
            step("a")
            raise RuntimeError("stop")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            pipeline()
    assert log == [("ran", "a"), ("rollback", "?")]  # the second run was a cache hit


def test_an_async_hook_is_refused() -> None:
    async def hook(txn: Transaction) -> None: ...

    with pytest.raises(TypeError, match=r"task 'step'.*async function"):
        task(name="step")(lambda: None).on_rollback(hook)
    with pytest.raises(TypeError, match=r"task 'step'.*async function"):
        task(name="step", on_commit=[hook])(lambda: None)


def test_hooks_added_by_decorator_survive_with_options() -> None:
    log: Log = []
    step = _recording_task(log).with_options(retries=2)
    assert [h.__name__ for h in step.on_commit_hooks] == ["committed"]
    assert [h.__name__ for h in step.on_rollback_hooks] == ["rolled_back"]


def test_serializable_isolation_is_refused() -> None:
    with (
        pytest.raises(ValueError, match="SERIALIZABLE needs a lock manager"),
        transaction(key="k", isolation_level=IsolationLevel.SERIALIZABLE),
    ):
        pass  # pragma: no cover


def test_a_store_is_refused() -> None:
    with pytest.raises(ValueError, match="takes no store"), transaction(store=object()):  # type: ignore[arg-type]
        pass  # pragma: no cover


def test_a_commit_mode_that_is_not_one_is_refused() -> None:
    with pytest.raises(TypeError, match="commit_mode must be a CommitMode"):
        Transaction(commit_mode="lazy")  # type: ignore[arg-type]


def test_a_transaction_is_entered_once() -> None:
    txn = Transaction()
    with txn:
        pass
    with pytest.raises(RuntimeError, match="entered already"), txn:
        pass  # pragma: no cover


@pytest.mark.anyio
async def test_a_transaction_works_across_awaits_on_the_loop() -> None:
    log: Log = []
    step = _recording_task(log)

    @task
    async def slow(label: str) -> str:
        await anyio.lowlevel.checkpoint()
        return label

    slow = slow.with_options(on_rollback=[lambda t: log.append(("undo slow",))])

    @flow
    async def pipeline() -> None:
        with transaction():
            await slow("a")
            step("b")
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        await pipeline()
    assert log == [("ran", "b"), ("rollback", "?"), ("undo slow",)]


def test_transaction_is_exported_at_the_top_as_in_prefect() -> None:
    assert flowkit.Transaction is Transaction


@pytest.mark.usefixtures("backend")
def test_commits_and_rollbacks_are_recorded_in_the_run_store() -> None:
    log: Log = []
    step = _recording_task(log)

    @flow(name="recorded")
    def pipeline() -> None:
        with transaction(key="first"):
            step("a")
        with contextlib.suppress(KeyError), transaction():
            step("b")
            raise KeyError("x")

    pipeline()
    flush()
    with Store.open() as store:
        root = store.flow_runs(limit=1)[0]
        first, second = store.transactions(root.id)
    assert (first.action, first.key, first.run_id) == ("commit", "first", root.id)
    assert [(h["hook"], h["kind"], h["task_run"]) for h in first.hooks] == [
        ("committed", "commit", "step-0")
    ]
    assert (second.action, second.key) == ("rollback", None)
    assert [(h["hook"], h["task_run"], h["error"]) for h in second.hooks] == [
        ("rolled_back", "step-1", None)
    ]


def test_runs_show_mentions_the_transactions(capsys: pytest.CaptureFixture[str]) -> None:
    def broken(txn: Transaction) -> None:
        raise OSError("disk gone")

    @task(on_rollback=[broken])
    def write() -> None: ...

    @flow(name="shown")
    def pipeline() -> None:
        with contextlib.suppress(KeyError), transaction(key="load"):
            write()
            raise KeyError("x")

    pipeline()
    flush()
    capsys.readouterr()
    assert main(["runs", "show", "shown"]) == 0
    out = capsys.readouterr().out
    assert "Transactions:\n  rolled back 'load' in " in out
    assert "hooks: broken (write-0) failed: OSError: disk gone" in out


@pytest.mark.usefixtures("backend")
def test_hook_lines_go_to_the_logger_given(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.audit")
    step = _recording_task([])

    @flow
    def pipeline() -> None:
        with transaction(logger=logging.getLogger("pipeline.audit")):
            step("a")

    pipeline()
    audit = [r.getMessage() for r in caplog.records if r.name == "pipeline.audit"]
    assert audit == [
        "Running commit hook 'committed'",
        "Commit hook 'committed' finished running successfully",
    ]
