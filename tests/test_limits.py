"""Concurrency and rate limits: in this process, in the run store, and on tagged task runs."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import flowkit
from flowkit import concurrency, flow, task
from flowkit._engine import limits as engine_limits
from flowkit._engine.limits import LocalLimit, ThreadWaiter, Waiter
from flowkit.cli import main as flowkit_main
from flowkit.concurrency import asyncio as aconc
from flowkit.concurrency import sync as sconc
from flowkit.concurrency._store import STORES
from flowkit.exceptions import AcquireConcurrencySlotTimeoutError, ConcurrencySlotAcquisitionError
from flowkit.store import Store
from flowkit.store._schema import default_path

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)


@pytest.fixture(autouse=True)
def no_local_limits() -> Iterator[None]:
    """Each test starts with no limit of this process, and leaves none behind."""
    yield
    for name in list(engine_limits.local_limits()):
        engine_limits.delete_local(name)


class Gauge:
    """How many holders are inside at once, and the most ever."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.lock = threading.Lock()

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


# In this process


@pytest.mark.anyio
async def test_a_local_limit_bounds_holders_across_tasks() -> None:
    concurrency.local("api", limit=2)
    gauge = Gauge()

    async def call() -> None:
        async with aconc.concurrency("api"):
            gauge.enter()
            await anyio.sleep(0.01)
            gauge.leave()

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(call)
    assert gauge.most == 2
    assert concurrency.inspect("api").active_slots == 0


@pytest.mark.anyio
async def test_waiters_are_served_first_come_first_served() -> None:
    concurrency.local("fifo", limit=1)
    order: list[int] = []

    async def call(i: int) -> None:
        async with aconc.concurrency("fifo"):
            order.append(i)
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as tg, aconc.concurrency("fifo"):
        for i in range(8):
            tg.start_soon(call, i)
            await anyio.sleep(0.001)  # each is waiting before the next arrives
    assert order == list(range(8))


@pytest.mark.anyio
async def test_a_bigger_request_at_the_head_is_not_overtaken() -> None:
    concurrency.local("big", limit=2)
    order: list[str] = []

    async def call(name: str, occupy: int) -> None:
        async with aconc.concurrency("big", occupy=occupy):
            order.append(name)

    async with anyio.create_task_group() as tg, aconc.concurrency("big"):
        tg.start_soon(call, "two", 2)
        await anyio.sleep(0.01)
        tg.start_soon(call, "one", 1)  # one slot is free, but "two" came first
        await anyio.sleep(0.01)
        assert order == []
    assert order == ["two", "one"]


@pytest.mark.anyio
async def test_a_waiter_is_cancellable_at_once_and_leaks_nothing() -> None:
    concurrency.local("cancel", limit=1)
    async with aconc.concurrency("cancel"):
        with anyio.move_on_after(0.05) as scope:
            async with aconc.concurrency("cancel"):
                pytest.fail("the slot was held")
        assert scope.cancelled_caught
    assert concurrency.inspect("cancel").active_slots == 0
    async with aconc.concurrency("cancel", timeout_seconds=0):
        pass


@pytest.mark.anyio
async def test_a_holder_that_fails_gives_its_slots_back() -> None:
    concurrency.local("fail", limit=3)
    with pytest.raises(ValueError, match="boom"):
        async with aconc.concurrency("fail", occupy=3):
            raise ValueError("boom")
    assert concurrency.inspect("fail").active_slots == 0


@pytest.mark.anyio
async def test_a_timeout_raises_a_timeout_error_and_holds_nothing() -> None:
    concurrency.local("a", limit=1)
    concurrency.local("b", limit=1)
    async with aconc.concurrency("b"):
        with pytest.raises(TimeoutError, match=r"'b' timed out after 0\.05 second"):
            async with aconc.concurrency(["a", "b"], timeout_seconds=0.05):
                pytest.fail("the slot was held")
    assert concurrency.inspect("a").active_slots == 0  # taken first, given back on the timeout


def test_the_timeout_error_is_prefects() -> None:
    assert issubclass(AcquireConcurrencySlotTimeoutError, TimeoutError)
    assert aconc.AcquireConcurrencySlotTimeoutError is AcquireConcurrencySlotTimeoutError
    assert sconc.ConcurrencySlotAcquisitionError is ConcurrencySlotAcquisitionError


def test_strict_refuses_an_undefined_name() -> None:
    fix = r"flowkit\.concurrency\.define\('nope', limit=\.\.\.\)"
    with pytest.raises(ConcurrencySlotAcquisitionError, match=fix):  # noqa: SIM117
        with sconc.concurrency("nope", strict=True):
            pytest.fail("entered")


def test_an_undefined_name_is_skipped_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    name = f"undefined-{uuid.uuid4().hex}"
    with caplog.at_level(logging.WARNING, logger="flowkit.concurrency"):
        for _ in range(3):
            with sconc.concurrency(name):
                pass
    assert [r.getMessage() for r in caplog.records] == [
        f"Concurrency limit {name!r} is not defined: concurrency({name!r}) does not wait for it"
    ]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sconc.concurrency("small", occupy=3).__enter__(), "occupy=3 exceeds limit"),
        (lambda: sconc.rate_limit("small"), "rate_limit needs limit 'small' to decay"),
        (lambda: sconc.concurrency("small", occupy=0).__enter__(), "occupy must be a whole"),
        (lambda: sconc.rate_limit("small", timeout_seconds=-1), "timeout_seconds must be"),
        (lambda: concurrency.local("small", limit=0), "limit must be a whole number >= 1, not 0"),
        (lambda: concurrency.define("x", 2, slot_decay_per_second=0), "must be a number > 0"),
    ],
)
def test_requests_that_could_never_be_granted_are_refused(call: Any, match: str) -> None:
    concurrency.local("small", limit=2)
    with pytest.raises(ValueError, match=match):
        call()


def test_sync_holders_in_threads_share_a_limit() -> None:
    concurrency.local("threads", limit=3)
    gauge = Gauge()

    def call() -> None:
        for _ in range(20):
            with sconc.concurrency("threads"):
                gauge.enter()
                time.sleep(0.001)
                gauge.leave()

    workers = [threading.Thread(target=call) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert gauge.most == 3
    assert concurrency.inspect("threads").active_slots == 0


@pytest.mark.anyio
async def test_a_release_in_a_thread_wakes_a_waiter_on_the_loop() -> None:
    concurrency.local("cross", limit=1)
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with sconc.concurrency("cross"):
            taken.set()
            done.wait(5)

    async def release_once_parked() -> None:
        # The release must find the loop's waiter queued: a release before it waits
        # would let it take the slot at once, and prove nothing about waking it.
        queue = engine_limits.local_limits()["cross"].queue
        while not queue:  # noqa: ASYNC110  # the queue has no event to wait on
            await anyio.sleep(0.001)
        done.set()

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait(5)
    async with anyio.create_task_group() as tg:
        tg.start_soon(release_once_parked)
        with anyio.fail_after(5):  # a lost wake-up waits for ever: nothing polls
            async with aconc.concurrency("cross"):
                pass
    thread.join()


@pytest.mark.anyio
async def test_the_sync_api_refuses_to_wait_on_the_event_loops_thread() -> None:
    concurrency.local("loop", limit=1)
    async with aconc.concurrency("loop"):
        with pytest.raises(RuntimeError, match=r"flowkit\.concurrency\.asyncio"):  # noqa: SIM117
            with sconc.concurrency("loop"):
                pytest.fail("entered")
    with sconc.concurrency("loop"):  # a free slot needs no wait
        pass


@pytest.mark.anyio
async def test_deleting_a_limit_lets_its_waiters_go() -> None:
    concurrency.local("gone", limit=1)
    async with aconc.concurrency("gone"), anyio.create_task_group() as tg:

        async def wait() -> None:
            async with aconc.concurrency("gone"):
                pass

        tg.start_soon(wait)
        await anyio.sleep(0.01)
        concurrency.delete("gone")
    with pytest.raises(KeyError, match="no limit named 'gone'"):
        concurrency.inspect("gone")


def test_a_rate_limit_keeps_its_rate() -> None:
    # Room for two: a waiter woken a little late (a busy machine) loses nothing.
    concurrency.local("rate", limit=2, slot_decay_per_second=20)
    start = time.monotonic()
    count = 0
    while time.monotonic() - start < 5:
        sconc.rate_limit("rate")
        count += 1
    rate = count / (time.monotonic() - start)
    assert 18 <= rate <= 22, rate


@pytest.mark.anyio
async def test_rate_limit_slots_decay_and_the_waiter_times_out_early() -> None:
    concurrency.local("burst", limit=5, slot_decay_per_second=1)
    for _ in range(5):
        await aconc.rate_limit("burst")
    with pytest.raises(AcquireConcurrencySlotTimeoutError):
        await aconc.rate_limit("burst", timeout_seconds=0.05)
    assert 4.5 < concurrency.inspect("burst").active_slots <= 5
    concurrency.reset("burst")
    await aconc.rate_limit("burst", timeout_seconds=0)


# The slot accounting, as a state machine


class LocalLimitMachine(RuleBasedStateMachine):
    """Holders take and give back slots, waiters join and leave, and time passes: no more
    than the limit is ever occupied, the head is never starved, and nothing leaks."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = 0.0
        self.limit = LocalLimit("m", 4, slot_decay_per_second=2.0, clock=lambda: self.clock)
        self.held: list[int] = []
        self.waiting: list[Waiter] = []

    @rule(occupy=st.integers(1, 4), rate=st.booleans())
    def take_at_once(self, occupy: int, rate: bool) -> None:
        mode: engine_limits.Mode = "rate_limit" if rate else "concurrency"
        free = self.limit.slots.limit - self.limit.occupied()
        took = self.limit.take_nowait(occupy, mode)
        if not self.waiting:
            assert took == (occupy <= free + 1e-9)
        else:
            assert not took
        if took and not rate:
            self.held.append(occupy)

    @rule(occupy=st.integers(1, 4))
    def wait(self, occupy: int) -> None:
        waiter = ThreadWaiter(occupy, "concurrency")
        self.limit.join(waiter)
        self.waiting.append(waiter)

    @precondition(lambda self: self.waiting)
    @rule()
    def poll_head(self) -> None:
        head = self.waiting[0]
        free = self.limit.slots.limit - self.limit.occupied()
        took, hint = self.limit.poll(head)
        assert took == (head.occupy <= free + 1e-9)
        if took:
            self.waiting.pop(0)
            self.held.append(head.occupy)
        elif hint is not None:
            assert hint > 0

    @precondition(lambda self: len(self.waiting) > 1)
    @rule()
    def behind_the_head_waits(self) -> None:
        assert self.limit.poll(self.waiting[1]) == (False, None)

    @precondition(lambda self: self.waiting)
    @rule(index=st.integers(0, 10))
    def cancel(self, index: int) -> None:
        waiter = self.waiting.pop(index % len(self.waiting))
        self.limit.leave(waiter)

    @precondition(lambda self: self.held)
    @rule(index=st.integers(0, 10))
    def release(self, index: int) -> None:
        self.limit.release(self.held.pop(index % len(self.held)), None)

    @rule(seconds=st.floats(0, 3))
    def time_passes(self, seconds: float) -> None:
        self.clock += seconds

    @invariant()
    def never_more_than_the_limit(self) -> None:
        assert self.limit.slots.held == sum(self.held)
        assert self.limit.occupied() <= self.limit.slots.limit + 1e-9
        assert list(self.limit.queue) == self.waiting

    def teardown(self) -> None:
        for waiter in self.waiting:
            self.limit.leave(waiter)
        for occupy in self.held:
            self.limit.release(occupy, None)
        self.clock += 10
        assert self.limit.occupied() == 0
        assert not self.limit.queue


TestLocalLimitMachine = LocalLimitMachine.TestCase


# In the run store


@pytest.mark.anyio
async def test_a_store_limit_bounds_holders_and_records_leases() -> None:
    concurrency.define("github", limit=2)
    gauge = Gauge()
    seen: list[int] = []

    async def call() -> None:
        async with aconc.concurrency("github"):
            gauge.enter()
            seen.append(len(concurrency.inspect("github").leases))
            await anyio.sleep(0.01)
            gauge.leave()

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(call)
    assert gauge.most == 2
    assert max(seen) == 2
    info = concurrency.inspect("github")
    assert (info.shared, info.active_slots, info.leases) == (True, 0, ())


def _lease(name: str, pid: int, host: str, expires: float) -> None:
    db = STORES.db(default_path())
    with db.transaction() as sql:
        sql.execute(
            "INSERT INTO limit_leases VALUES (?, ?, 1, ?, ?, ?, ?)",
            (uuid.uuid4().hex, name, pid, host, time.time(), expires),
        )


def test_a_lease_of_a_dead_process_on_this_host_is_reclaimed() -> None:
    concurrency.define("dead", limit=1)
    _lease("dead", 2**22 + 12345, socket.gethostname(), time.time() + 300)  # no such pid
    with sconc.concurrency("dead", timeout_seconds=1):
        assert len(concurrency.inspect("dead").leases) == 1


def test_an_expired_lease_of_another_host_is_reclaimed() -> None:
    concurrency.define("far", limit=1)
    _lease("far", 1, "another-host", time.time() + 0.2)
    with pytest.raises(TimeoutError):  # noqa: SIM117
        with sconc.concurrency("far", timeout_seconds=0.05):
            pass
    with sconc.concurrency("far", timeout_seconds=2):
        pass


def test_a_lease_is_renewed_while_held() -> None:
    concurrency.define("renewed", limit=1)
    with sconc.concurrency("renewed", lease_duration=0.3):
        first = concurrency.inspect("renewed").leases[0].expires
        time.sleep(0.5)  # past the first expiry
        again = concurrency.inspect("renewed").leases
        assert len(again) == 1
        assert again[0].expires > first


def test_a_store_rate_limit_decays() -> None:
    concurrency.define("store-rate", limit=2, slot_decay_per_second=20)
    start = time.monotonic()
    for _ in range(6):
        sconc.rate_limit("store-rate")
    assert time.monotonic() - start >= 0.18  # 2 at once, then one per 50 ms


def test_a_local_limit_shadows_the_stores() -> None:
    concurrency.define("both", limit=5)
    concurrency.local("both", limit=1)
    assert concurrency.inspect("both").shared is False
    assert [(i.name, i.shared) for i in concurrency.ls()] == [("both", False)]
    concurrency.delete("both")
    assert concurrency.inspect("both").shared is True
    concurrency.delete("both")
    assert concurrency.ls() == []


# Tag limits


def _states(name: str) -> list[str]:
    with Store.open() as s:
        return [st.name for st in s.states(s.get(name).id)]


@pytest.mark.parametrize("where", ["local", "store"])
def test_task_runs_tagged_with_a_limited_tag_take_turns(backend: str, where: str) -> None:
    (concurrency.local if where == "local" else concurrency.define)("tag:db", 2)
    gauge = Gauge()

    @task(tags=["db"])
    def query(i: int) -> int:
        gauge.enter()
        time.sleep(0.02)
        gauge.leave()
        return i

    @flow
    def report() -> list[int]:
        return query.map(range(6)).result()

    assert report() == list(range(6))
    assert gauge.most == 2
    waited = [
        n for n in (f"query-{i}" for i in range(6)) if "AwaitingConcurrencySlot" in _states(n)
    ]
    assert waited
    assert _states(waited[0]) == ["Pending", "AwaitingConcurrencySlot", "Running", "Completed"]
    assert concurrency.inspect("tag:db").active_slots == 0


@pytest.mark.anyio
async def test_async_task_runs_wait_for_a_tag_limit_and_are_cancellable() -> None:
    concurrency.local("tag:slow", 1)

    @task(tags=["slow"])
    async def slow() -> None:
        await anyio.sleep_forever()

    @flow
    async def main() -> list[str]:
        first, second = slow.submit(), slow.submit()
        await anyio.sleep(0.05)
        meanwhile = sorted([first.state.name, second.state.name])  # either may go first
        first.cancel()
        second.cancel()
        return [*meanwhile, (await first.wait_async()).name, (await second.wait_async()).name]

    assert await main() == ["AwaitingConcurrencySlot", "Running", "Cancelled", "Cancelled"]
    assert concurrency.inspect("tag:slow").active_slots == 0


def test_a_tag_from_the_context_counts_and_sync_calls_wait_inline(backend: str) -> None:
    concurrency.local("tag:inline", 1)
    gauge = Gauge()

    @task
    def work() -> None:
        gauge.enter()
        time.sleep(0.01)
        gauge.leave()

    @flow
    def main() -> None:
        with flowkit.tags("inline"):
            work()
            work()

    main()
    assert gauge.most == 1
    assert concurrency.inspect("tag:inline").active_slots == 0


def test_a_failing_tagged_task_with_retries_gives_its_slot_back(backend: str) -> None:
    concurrency.local("tag:flaky", 1)

    @task(tags=["flaky"], retries=1)
    def flaky() -> None:
        raise ValueError("no")

    @flow
    def main() -> None:
        flaky()

    with pytest.raises(ValueError, match="no"):
        main()
    assert concurrency.inspect("tag:flaky").active_slots == 0


# The command line


def test_the_limits_command_creates_lists_inspects_resets_and_deletes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert flowkit_main(["limits", "ls"]) == 0
    assert "No limits defined" in capsys.readouterr().out
    assert flowkit_main(["limits", "create", "github", "--limit", "4"]) == 0
    assert flowkit_main(["limits", "tag", "db", "3"]) == 0
    assert flowkit_main(["limits", "create", "rate", "--limit", "10",
                         "--slot-decay-per-second", "10"]) == 0  # fmt: skip
    capsys.readouterr()
    with sconc.concurrency("github", occupy=2):
        assert flowkit_main(["limits", "ls"]) == 0
        table = capsys.readouterr().out.splitlines()
        assert [line.split()[:3] for line in table[1:]] == [
            ["github", "2", "4"], ["rate", "0", "10"], ["tag:db", "0", "3"],
        ]  # fmt: skip
        assert flowkit_main(["limits", "inspect", "github"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("github: 2 of 4 slot(s) in use\n  2 slot(s) held by pid")
    assert flowkit_main(["limits", "reset", "rate"]) == 0
    assert flowkit_main(["limits", "delete", "github"]) == 0
    capsys.readouterr()
    assert flowkit_main(["limits", "inspect", "github"]) == 2
    assert "no limit named 'github'" in capsys.readouterr().err
    assert flowkit_main(["limits", "create", "x", "--limit", "0"]) == 2
