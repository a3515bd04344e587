"""Nested work never deadlocks, whatever the limits: every combination of sync and async,
task and flow, call and submit, three levels deep, with one or two worker threads and
``max_concurrency`` 1 or unbounded, each under a watchdog that fails instead of hanging."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any, Literal

import anyio
import pytest

from flowkit import flow, task
from flowkit._engine.loops import loop_args

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)

Kind = Literal["sync task", "async task", "sync flow", "async flow"]
How = Literal["call", "submit"]
Step = tuple[Kind, How]

WATCHDOG = 30.0
FANOUT = 2


def steps_under(kind: Kind) -> list[Step]:
    """What a body of ``kind`` can start. A sync body calling an async task or flow is
    left out: it gets a coroutine it cannot run (see the Porting page)."""
    steps: list[Step] = [("sync task", "call"), ("sync task", "submit"), ("sync flow", "call")]
    steps.append(("async task", "submit"))
    if kind.startswith("async"):
        steps += [("async task", "call"), ("async flow", "call")]
    return steps


def shapes() -> list[tuple[Kind, Step, Step]]:
    found: list[tuple[Kind, Step, Step]] = []
    for top in ("sync flow", "async flow"):
        for middle in steps_under(top):
            for leaf in steps_under(middle[0]):
                found.append((top, middle, leaf))
    return found


def refused(top: Kind, middle: Step, leaf: Step) -> bool:
    """A sync task called from async code runs on the event loop's thread, where it
    cannot wait for runs it submits: flowkit refuses that submit with a clear error."""
    return top.startswith("async") and middle == ("sync task", "call") and leaf[1] == "submit"


def expected(level: int, x: int) -> int:
    if level == 3:
        return x
    return sum(expected(level + 1, x * 10 + i) for i in range(FANOUT))


def make(kind: Kind, below: Step | None, name: str, limits: dict[str, Any]) -> Any:
    """A task or flow of ``kind`` whose body starts ``FANOUT`` runs of ``below``."""
    child = None if below is None else below
    inner: Any = None
    if child is not None:
        inner = limits["made"][child[0]]
    how = None if child is None else child[1]

    def args(x: int) -> list[int]:
        return [x * 10 + i for i in range(FANOUT)]

    if kind.startswith("sync"):

        def sync_body(x: int) -> int:
            if inner is None:
                time.sleep(0.001)
                return x
            if how == "submit":
                return sum(f.result() for f in [inner.submit(v) for v in args(x)])
            return sum(inner(v) for v in args(x))

        fn: Callable[..., Any] = sync_body
    else:

        async def async_body(x: int) -> int:
            if inner is None:
                await anyio.sleep(0.001)
                return x
            if how == "submit":
                return sum([await f for f in [inner.submit(v) for v in args(x)]])
            if child is not None and child[0].startswith("sync"):
                return sum(inner(v) for v in args(x))
            return sum([await inner(v) for v in args(x)])

        fn = async_body
    options: dict[str, Any] = {"name": name, "max_concurrency": limits["max_concurrency"]}
    if kind.endswith("flow"):
        if "thread_limit" in limits:
            options["thread_limit"] = limits.pop("thread_limit")
        return flow(**options)(fn)
    return task(**options)(fn)


@pytest.mark.parametrize("max_concurrency", [None, 1])
@pytest.mark.parametrize("thread_limit", [1, 2])
@pytest.mark.parametrize(
    ("top", "middle", "leaf"), shapes(), ids=lambda v: "-".join(v) if isinstance(v, tuple) else v
)
def test_nested_runs_finish(
    backend: str,
    quiet: None,
    within: Any,
    top: Kind,
    middle: Step,
    leaf: Step,
    thread_limit: int,
    max_concurrency: int | None,
) -> None:
    limits: dict[str, Any] = {"max_concurrency": max_concurrency, "made": {}}
    limits["made"][leaf[0]] = make(leaf[0], None, "leaf", limits)
    limits["made"][middle[0]] = make(middle[0], leaf, "middle", limits)
    limits["thread_limit"] = thread_limit
    main = make(top, middle, "top", limits)

    def run() -> Any:
        if top.startswith("async"):
            loop, options = loop_args(backend)
            return anyio.run(main, 1, backend=loop, backend_options=options)
        return main(1)

    if refused(top, middle, leaf):
        with pytest.raises(RuntimeError, match="cannot be submitted from sync task 'middle'"):
            within(WATCHDOG, run)
        return
    assert within(WATCHDOG, run) == expected(1, 1)


def test_every_shape_is_covered() -> None:
    kinds = {s[0] for s in shapes()} | {s[1][0] for s in shapes()} | {s[2][0] for s in shapes()}
    assert kinds == {"sync task", "async task", "sync flow", "async flow"}
    assert len(shapes()) == 48
    assert len(list(itertools.product(shapes(), [1, 2], [None, 1]))) == 192


# The shapes the issue found deadlocking, each on its own


@pytest.mark.parametrize("waits", [True, False])
def test_a_sync_subflow_in_a_sync_task_runs_the_runs_it_submits(
    backend: str, within: Any, waits: bool
) -> None:
    @task
    def leaf(x: int) -> int:
        return x

    @flow
    def sub(x: int) -> int:
        futures = [leaf.submit(x + i) for i in range(3)]
        # Without waiting, the subflow still waits for them before it ends, while the
        # task's thread serves it.
        return sum(f.result() for f in futures) if waits else x

    @task
    def serving(x: int) -> int:
        return sub(x)

    @flow(thread_limit=1)
    def main() -> list[int]:
        return [f.result() for f in serving.map([0, 10])]

    assert within(WATCHDOG, main) == ([3, 33] if waits else [0, 10])


def test_task_max_concurrency_with_nested_submit_and_wait(backend: str, within: Any) -> None:
    @task
    def leaf(x: int) -> int:
        return x

    @task(max_concurrency=1)
    def middle(x: int) -> int:
        return sum(f.result() for f in [leaf.submit(x + i) for i in range(4)])

    @flow(thread_limit=1)
    def main() -> int:
        return sum(f.result() for f in [middle.submit(x) for x in (0, 10)])

    assert within(WATCHDOG, main) == 6 + 46


def test_a_task_that_times_out_while_it_waits_gives_its_thread_slot_back_once(
    backend: str, within: Any
) -> None:
    # It lent its slot while it waited for its child: at its deadline the slot must be
    # free exactly once, neither released twice (an error) nor kept (a later deadlock).
    @task
    def child() -> int:
        time.sleep(0.3)
        return 1

    @task(timeout_seconds=0.1)
    def waiting() -> int:
        return child.submit().result()

    @task
    def after(i: int) -> int:
        return i

    @flow(thread_limit=1)
    def main() -> tuple[str, list[int]]:
        state = waiting(return_state=True)
        return state.name, [after(i) for i in range(3)] + [f.result() for f in after.map([3, 4])]

    assert within(WATCHDOG, main) == ("TimedOut", [0, 1, 2, 3, 4])


@pytest.mark.parametrize("flow_backend", ["asyncio", "trio"])
def test_a_sync_flow_called_from_trio_code_runs(within: Any, flow_backend: str) -> None:
    @task
    def leaf(x: int) -> int:
        return x

    @task(max_concurrency=1)
    def middle(x: int) -> int:
        return sum(f.result() for f in [leaf.submit(x + i) for i in range(2)])

    @flow(backend=flow_backend)  # type: ignore[call-overload]
    def blocking(x: int) -> int:
        future = middle.submit(x)
        future.add_done_callback(lambda f: None)
        return future.result() + middle(x)

    async def trio_main() -> int:
        return blocking(1)

    assert within(WATCHDOG, lambda: anyio.run(trio_main, backend="trio")) == 6
