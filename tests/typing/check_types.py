"""Never executed: ``tests/test_typing.py`` runs ``mypy --strict`` and pyright over this file.

Each ``assert_type`` states what a type checker must infer for a use of the public API:
``Task[P, R]`` and ``Flow[P, R]`` keep the decorated function's signature and return type.
"""

# pyright: reportUnusedVariable=false
# (the annotated assignments below are checks that the types fit, never read again)

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, assert_type

from flowkit import Flow, State, Task, TaskFuture, flow, task
from flowkit.futures import TaskFutureList


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task(retries=2, tags=["io"])
async def fetch(url: str) -> bytes:
    return url.encode()


@flow
def pipeline(n: int) -> str:
    return str(n)


@flow(log_prints=True)
async def apipeline(names: list[str]) -> int:
    return len(names)


def sync_uses() -> None:
    keeps_signature: Task[[int, int], int] = add
    assert_type(add(1), int)
    assert_type(add(1, y=2), int)
    assert_type(add(1, return_state=True), State[int])
    assert_type(add(1, return_state=True).result(), int)
    assert_type(add.submit(1), TaskFuture[int])
    assert_type(add.submit(1).result(), int)
    assert_type(add.submit(1, return_state=True), State[int])
    assert_type(add.map([1, 2]), TaskFutureList[int])
    assert_type(add.map([1, 2]).result(), list[int])
    assert_type(add.map([1, 2], return_state=True), list[State[int]])
    assert_type(pipeline(3, wait_for=[add.submit(1)]), str)
    renamed: Task[[int, int], int] = add.with_options(name="other")
    assert_type(add.with_options(retries=3)(4), int)

    flow_keeps_signature: Flow[[int], str] = pipeline
    assert_type(pipeline(3), str)
    assert_type(pipeline(3, return_state=True), State[str])
    flow_renamed: Flow[[int], str] = pipeline.with_options(name="other")
    assert_type(pipeline.with_options(timeout_seconds=5)(3), str)


async def async_uses() -> None:
    async_keeps_signature: Task[[str], Coroutine[Any, Any, bytes]] = fetch
    value = await fetch("u")  # an async task called gives its coroutine
    assert_type(value, bytes)
    state = await assert_type(fetch("u", return_state=True), Coroutine[Any, Any, State[bytes]])
    assert_type(state, State[bytes])
    assert_type(state.result(), bytes)
    assert_type(fetch.submit("u"), TaskFuture[bytes])
    assert_type(fetch.submit("u", return_state=True), State[bytes])
    assert_type(fetch.map(["u"]), TaskFutureList[bytes])
    assert_type(fetch.map(["u"], return_state=True), list[State[bytes]])
    assert_type(await fetch.with_options(retries=0)("u"), bytes)

    async_flow_keeps_signature: Flow[[list[str]], Coroutine[Any, Any, int]] = apipeline
    flow_value = await apipeline(["a"])
    assert_type(flow_value, int)
    assert_type(await apipeline(["a"], return_state=True), State[int])
    assert_type(await apipeline.with_options(name="other")(["a"]), int)


def plain_add(x: int) -> int:
    return x


def constructor_and_attribute_uses(state: State[int]) -> None:
    made = Task(plain_add, name="adder", retries=2, tags=["math"])
    made_keeps_signature: Task[[int], int] = made
    assert_type(made(1), int)
    assert_type(made.retries, int)
    assert_type(made.timeout_seconds, float | None)
    assert_type(made.tags, frozenset[str])
    assert_type(made.version, str | None)
    assert_type(made.log_prints, bool | None)
    assert_type(made.persist_result, bool | None)
    assert_type(made.cache_expiration, timedelta | None)
    reset: Task[[int], int] = made.with_options(retries=None)
    made_flow = Flow(plain_add, flow_run_name="run-{x}", timeout_seconds=5)
    made_flow_keeps_signature: Flow[[int], int] = made_flow
    assert_type(made_flow(2), int)
    assert_type(made_flow.retries, int)
    assert_type(made_flow.name, str)

    def hook(task: object, run: object, state: State[Any]) -> None: ...

    # The hook decorators hand the function back unchanged.
    kept: Callable[[object, object, State[Any]], None] = made.on_failure(hook)
    flow_kept: Callable[[object, object, State[Any]], None] = made_flow.on_crashed(hook)
    assert_type(made.on_running(hook)(made, None, state), None)


class Holder:
    @task  # the decorator above @staticmethod keeps the signature
    @staticmethod
    def double(x: int) -> int:
        return 2 * x


def method_uses() -> None:
    assert_type(Holder.double(3), int)


def state_uses(state: State[int]) -> None:
    assert_type(state.result(), int)
    assert_type(state.result(raise_on_failure=False), int | BaseException)
    assert_type(state.is_completed(), bool)
    assert_type(state.message, str | None)


# Transactions: the hooks keep their type through the decorators; the block yields the
# transaction; get_transaction may find none.
from flowkit.transactions import Transaction, get_transaction, transaction  # noqa: E402


@add.on_rollback
def undo_add(txn: Transaction) -> None: ...


kept_hook: Callable[[Transaction], None] = undo_add  # the decorator returns the function
assert_type(get_transaction(), Transaction | None)
with transaction(key="k") as txn:
    assert_type(txn, Transaction)
    assert_type(txn.is_committed(), bool)
