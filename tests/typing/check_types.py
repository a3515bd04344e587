"""Never executed: ``tests/test_typing.py`` runs ``mypy --strict`` over this file.

Each ``assert_type`` states what a type checker must infer for a use of the public API:
``Task[P, R]`` and ``Flow[P, R]`` keep the decorated function's signature and return type.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, assert_type

from flowkit import Flow, State, Task, TaskFuture, flow, task


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
    assert_type(add, Task[[int, int], int])
    assert_type(add(1), int)
    assert_type(add(1, y=2), int)
    assert_type(add(1, return_state=True), State[int])
    assert_type(add(1, return_state=True).result(), int)
    assert_type(add.submit(1), TaskFuture[int])
    assert_type(add.submit(1).result(), int)
    assert_type(add.with_options(name="other"), Task[[int, int], int])
    assert_type(add.with_options(retries=3)(4), int)

    assert_type(pipeline, Flow[[int], str])
    assert_type(pipeline(3), str)
    assert_type(pipeline(3, return_state=True), State[str])
    assert_type(pipeline.with_options(name="other"), Flow[[int], str])
    assert_type(pipeline.with_options(timeout_seconds=5)(3), str)


async def async_uses() -> None:
    assert_type(fetch, Task[[str], Coroutine[Any, Any, bytes]])
    assert_type(fetch("u"), Coroutine[Any, Any, bytes])
    assert_type(await fetch("u"), bytes)
    assert_type(fetch("u", return_state=True), Coroutine[Any, Any, State[bytes]])
    assert_type(await fetch("u", return_state=True), State[bytes])
    assert_type(fetch.submit("u"), TaskFuture[bytes])
    assert_type(await fetch.with_options(retries=0)("u"), bytes)

    assert_type(apipeline, Flow[[list[str]], Coroutine[Any, Any, int]])
    assert_type(await apipeline(["a"]), int)
    assert_type(await apipeline(["a"], return_state=True), State[int])
    assert_type(await apipeline.with_options(name="other")(["a"]), int)


def state_uses(state: State[int]) -> None:
    assert_type(state.result(), int)
    assert_type(state.result(raise_on_failure=False), int | BaseException)
    assert_type(state.is_completed(), bool)
    assert_type(state.message, str | None)
