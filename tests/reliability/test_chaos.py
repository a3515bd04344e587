"""Chaos: thousands of runs with random failures, timeouts, cancels and retries, sync and
async, in sync and async flows, on every backend, with few worker threads.

Every run is planned: the plan says how it ends. Afterwards every future is final, the
states count as planned, no body passed a line after its run was over (stopped bodies
note every line they pass), and the run store holds exactly the runs, in their states.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import attrs
import pytest

from flowkit import flow, runtime, task
from flowkit._engine.loops import Backend, loop_args
from flowkit.futures import TaskFuture
from flowkit.store import Store, flush

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)

Fate = Literal["completes", "fails", "recovers", "exhausts", "times out", "cancelled"]
FATES: tuple[Fate, ...] = ("completes", "fails", "recovers", "exhausts", "times out", "cancelled")
FINAL_STATE: dict[Fate, str] = {
    "completes": "Completed",
    "fails": "Failed",
    "recovers": "Completed",
    "exhausts": "Failed",
    "times out": "TimedOut",
    "cancelled": "Cancelled",
}
TIMEOUT = 0.05
OVERRUN = 3.0  # how long a body that must be stopped would run: 60 deadlines
SLICE = 0.01


@attrs.frozen
class Plan:
    """One run: its fate, whether its task is async, and how many retries it has."""

    fate: Fate
    is_async: bool
    retries: int

    @property
    def attempts(self) -> int:
        """How many times the body runs."""
        if self.fate in ("recovers", "exhausts", "times out"):
            return self.retries + 1
        return 1


def plan(rng: random.Random) -> Plan:
    fate = rng.choices(FATES, weights=(40, 12, 14, 10, 12, 12))[0]
    retries = rng.randint(1, 2) if fate in ("recovers", "exhausts", "times out") else 0
    if fate == "times out":
        retries = rng.randint(0, 1)
    return Plan(fate, rng.random() < 0.4, retries)


class Journal:
    """What bodies saw: the attempts they made and every line they passed, with when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        self.lines: dict[str, list[datetime]] = {}
        self.finished: set[str] = set()  # bodies of stopped runs that reached their end

    def line(self, name: str) -> None:
        with self.lock:
            self.lines.setdefault(name, []).append(datetime.now(UTC))

    def attempt(self, name: str) -> int:
        with self.lock:
            self.attempts[name] += 1
            return self.attempts[name]


def make_tasks(journal: Journal) -> Callable[[Plan], Any]:
    """The task for each kind of plan; their bodies act out the plan they are given."""

    def act(p: Plan) -> tuple[str, int, bool]:
        name = runtime.task_run.id  # names repeat from one flow run to the next
        attempt = journal.attempt(name)
        journal.line(name)
        long = p.fate in ("times out", "cancelled")
        fails = p.fate in ("fails", "exhausts") or (p.fate == "recovers" and attempt <= p.retries)
        return name, attempt, long or fails

    def sync_body(p: Plan) -> int:
        name, attempt, special = act(p)
        if special and p.fate in ("times out", "cancelled"):
            for _ in range(int(OVERRUN / SLICE)):
                time.sleep(SLICE)
                journal.line(name)
            journal.finished.add(name)  # the last line: a stopped body never gets here
            return -1
        if special:
            raise ValueError(f"planned failure of {name}, attempt {attempt}")
        return attempt

    async def async_body(p: Plan) -> int:
        name, attempt, special = act(p)
        if special and p.fate in ("times out", "cancelled"):
            for _ in range(int(OVERRUN / SLICE)):
                await anyio.sleep(SLICE)
                journal.line(name)
            journal.finished.add(name)
            return -1
        if special:
            raise ValueError(f"planned failure of {name}, attempt {attempt}")
        return attempt

    made: dict[tuple[bool, bool, int], Any] = {}
    for is_async in (False, True):
        fn: Any = async_body if is_async else sync_body
        for timed in (False, True):
            for retries in (0, 1, 2):
                made[(is_async, timed, retries)] = task(
                    name=f"{'async' if is_async else 'sync'}-{'timed' if timed else 'free'}",
                    retries=retries,
                    retry_delay_seconds=0,
                    timeout_seconds=TIMEOUT if timed else None,
                )(fn)

    def for_plan(p: Plan) -> Any:
        return made[(p.is_async, p.fate == "times out", p.retries)]

    return for_plan


@attrs.define
class Outcome:
    futures: list[tuple[Plan, TaskFuture[Any]]] = attrs.field(factory=list)
    flow_ids: list[str] = attrs.field(factory=list)


def submit_batch(
    plans: list[Plan], task_for: Callable[[Plan], Any], rng: random.Random, out: Outcome
) -> list[TaskFuture[Any]]:
    futures = []
    for p in plans:
        future = task_for(p).submit(p)
        futures.append(future)
        out.futures.append((p, future))
        if p.fate == "cancelled" and rng.random() < 0.5:
            future.cancel()  # before it started, most likely
    return futures


def chaos(backend: Backend, runs: int, seed: int) -> tuple[Outcome, Journal]:
    rng = random.Random(seed)
    loop, options = loop_args(backend)
    journal = Journal()
    task_for = make_tasks(journal)
    out = Outcome()

    @flow(thread_limit=4)
    def sync_flow(plans: list[Plan]) -> None:
        out.flow_ids.append(str(runtime.flow_run.id))
        futures = submit_batch(plans, task_for, rng, out)
        time.sleep(rng.uniform(0, 0.03))
        for p, f in zip(plans, futures, strict=True):
            if p.fate == "cancelled":
                f.cancel()
        for f in futures:
            f.wait()
            _ = f.state  # looked at: its failure is handled here

    @flow(thread_limit=4)
    async def async_flow(plans: list[Plan]) -> None:
        out.flow_ids.append(str(runtime.flow_run.id))
        futures = submit_batch(plans, task_for, rng, out)
        await anyio.sleep(rng.uniform(0, 0.03))
        for p, f in zip(plans, futures, strict=True):
            if p.fate == "cancelled":
                f.cancel()
        for f in futures:
            await f.wait_async()

    left = runs
    while left:
        size = min(left, rng.randint(20, 80))
        left -= size
        plans = [plan(rng) for _ in range(size)]
        if rng.random() < 0.5:
            sync_flow(plans)
        else:
            anyio.run(async_flow, plans, backend=loop, backend_options=options)
    return out, journal


def test_chaos(
    backend: str, quiet: None, scale: Callable[[int], int], within: Any, capsys: Any
) -> None:
    seed = int(os.environ.get("FLOWKIT_CHAOS_SEED", random.randrange(2**32)))
    runs = scale(2500)
    out, journal = within(1200 if runs > 2500 else 180, lambda: chaos(backend, runs, seed))
    why = f"(FLOWKIT_CHAOS_SEED={seed})"

    # Every future is final, and ended as planned, after as many attempts as planned.
    assert len(out.futures) == runs
    assert all(f.done() and f._task_run.state.is_final() for _, f in out.futures), why
    got = Counter(f._task_run.state.name for _, f in out.futures)
    assert got == Counter(FINAL_STATE[p.fate] for p, _ in out.futures), why
    for p, f in out.futures:
        run = f._task_run
        if p.fate == "cancelled":
            continue
        assert run.run_count == p.attempts, (run.name, p, why)
        # A deadline may pass while the run waits for a worker thread: its body then
        # never starts. Any other attempt runs its body.
        bodies = journal.attempts[str(run.id)]
        assert bodies <= p.attempts if p.fate == "times out" else bodies == p.attempts, (
            run.name,
            p,
            why,
        )

    # No body passed a line after its run was over, and no stopped body reached its end.
    assert journal.finished == set(), why
    time.sleep(2 * SLICE)  # a body left running would pass another line meanwhile
    late = [f._task_run.name for _, f in out.futures if late_line(journal, f)]
    assert late == [], why

    # The store holds every run, in its final state, and nothing else.
    flush()
    with Store.open() as store:
        rows = {r.id: r for root in out.flow_ids for r in store.tree(root)}
    tasks = {r.id: (r.state_name, r.run_count) for r in rows.values() if r.kind == "task"}
    expected = {
        str(f._task_run.id): (f._task_run.state.name, f._task_run.run_count) for _, f in out.futures
    }
    assert tasks == expected, why
    assert {r.id for r in rows.values() if r.kind == "flow"} == set(out.flow_ids)

    # Faults: each failed or timed-out attempt, and each cancel.
    faults = sum(
        p.attempts - (p.fate == "recovers") for p, _ in out.futures if p.fate != "completes"
    )
    with capsys.disabled():
        print(
            f"\nchaos {backend}: {runs} task runs in {len(out.flow_ids)} flows, "
            f"{dict(sorted(got.items()))}, {faults} faults injected, "
            f"{len(late)} bodies past their end, seed {seed}"
        )


def late_line(journal: Journal, future: TaskFuture[Any]) -> bool:
    lines = journal.lines.get(str(future._task_run.id), [])
    return bool(lines) and max(lines) >= future._task_run.state.timestamp
