"""The built-in workloads: each a flowkit flow of ``n`` tasks, and its floor, the same
work done without flowkit.

The task bodies are module-level functions, so worker processes and Dask workers import
them by reference. Sizes are such that ``n=100`` is a fraction of a second of work:

- ``cpu``: pure-Python arithmetic, about 1 ms a task (``burn``).
- ``io-sync``: ``time.sleep(0.01)`` a task.
- ``io-async``: ``anyio.sleep(0.01)`` a task, async.
- ``mixed``: a quarter of ``cpu``'s arithmetic, then ``time.sleep(0.005)``.
- ``fan-out-in``: ``n`` small tasks, then one that sums their results (a fan-in).
- ``stream``: a generator task yields ``n`` items, each handed to a task as it comes.
- ``service``: a service awaiting a flow per request: ``n`` tasks as requests of
  ``SERVICE_FANOUT``, ``SERVICE_CONCURRENCY`` requests at a time, each request a flow
  that fans out async tasks of ``anyio.sleep(0.005)`` (with retries and a timeout, as a
  service sets them); its latencies are the requests'.

The floors: a ``ThreadPoolExecutor``, ``ProcessPoolExecutor`` or Dask ``client.map``
with as many workers as the runner (``--runner``), and for async tasks an anyio task
group on the backend (for ``service``, one per request, served alike); a limit is a
semaphore held while a task runs (``_FloorPool``).
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Protocol

import anyio
import attrs

from ..flows import Flow, flow
from ..tasks import task

__all__ = [
    "SERVICE_CONCURRENCY",
    "SERVICE_FANOUT",
    "SERVICE_PAUSE",
    "WORKLOADS",
    "FloorPool",
    "Workload",
    "floor_pool",
    "request_sizes",
    "run_async_floor",
    "run_service_floor",
    "serve",
]

BURN = 20_000
"""Rounds of ``burn``: about a millisecond of pure Python on a 2020s core."""
PAUSE = 0.01
"""How long an I/O task sleeps."""
SERVICE_FANOUT = 20
"""Tasks per request of ``service``."""
SERVICE_CONCURRENCY = 50
"""Requests ``service`` handles at a time."""
SERVICE_PAUSE = 0.005
"""How long a task of ``service`` sleeps."""


def burn(rounds: int) -> int:
    """Pure-Python arithmetic that holds the GIL: ``rounds`` steps of it."""
    total = 0
    for i in range(rounds):
        total += i * i % 7
    return total


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


async def anap(seconds: float) -> float:
    await anyio.sleep(seconds)
    return seconds


def blend(rounds: int) -> int:
    total = burn(rounds)
    time.sleep(PAUSE / 2)
    return total


def square(i: int) -> int:
    return burn(BURN // 10) + i * i


def total(parts: list[int]) -> int:
    return sum(parts)


def items(n: int) -> Iterator[int]:
    yield from range(n)


# A service sets retries and a timeout: they never fire here, but their bookkeeping is paid.
@task(name="lookup", retries=2, timeout_seconds=5)
async def lookup_task(i: int) -> int:
    await anyio.sleep(SERVICE_PAUSE)
    return i


burn_task = task(name="burn")(burn)
nap_task = task(name="nap")(nap)
anap_task = task(name="anap")(anap)
blend_task = task(name="blend")(blend)
square_task = task(name="square")(square)
total_task = task(name="total")(total)
items_task = task(name="items")(items)


@flow(name="bench-cpu")
def cpu_flow(n: int) -> int:
    return sum(burn_task.map([BURN] * n).result())


@flow(name="bench-io-sync")
def io_sync_flow(n: int) -> int:
    return len(nap_task.map([PAUSE] * n).result())


@flow(name="bench-io-async")
async def io_async_flow(n: int) -> int:
    return len([await future for future in anap_task.map([PAUSE] * n)])


@flow(name="bench-mixed")
def mixed_flow(n: int) -> int:
    return sum(blend_task.map([BURN // 4] * n).result())


@flow(name="bench-fan-out-in")
def fan_out_in_flow(n: int) -> int:
    # The futures go in as the argument; the task gets their results (a fan-in).
    return total_task.submit(square_task.map(range(n))).result()  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


@flow(name="bench-stream")
def stream_flow(n: int) -> int:
    return sum(future.result() for future in [square_task.submit(i) for i in items_task(n)])


@flow(name="bench-service")
async def service_flow(n: int) -> int:
    """One request of ``service``: ``n`` lookups, submitted together, their results summed."""
    futures = [lookup_task.submit(i) for i in range(n)]
    return sum([await future for future in futures])


def request_sizes(n: int) -> list[int]:
    """``n`` tasks as requests of ``SERVICE_FANOUT`` tasks (the last of what remains)."""
    sizes = [SERVICE_FANOUT] * (n // SERVICE_FANOUT)
    return [*sizes, n % SERVICE_FANOUT] if n % SERVICE_FANOUT else sizes


async def serve(handle: Callable[[int], Awaitable[object]], n: int, latencies: list[float]) -> None:
    """Serve ``n`` tasks' worth of requests (``request_sizes``), ``SERVICE_CONCURRENCY``
    at a time, each by ``handle(tasks)``; note each request's latency, from taking its
    slot to its answer (the queue before the slot is the load's, not the service's)."""
    slots = anyio.CapacityLimiter(SERVICE_CONCURRENCY)

    async def request(size: int) -> None:
        async with slots:
            started = time.perf_counter()
            await handle(size)
            latencies.append(time.perf_counter() - started)

    async with anyio.create_task_group() as tg:
        for size in request_sizes(n):
            tg.start_soon(request, size)


class _Future(Protocol):
    """What a ``concurrent.futures`` future and a Dask future both have."""

    def result(self) -> Any: ...
    def add_done_callback(self, fn: Callable[[Any], object], /) -> None: ...


@attrs.define(eq=False)
class FloorPool:
    """Submits to an executor or a Dask client, holding a slot of ``limit`` (if any)
    from each submit until its result is in, and noting each task's latency."""

    _submit: Callable[..., _Future]
    _map: Callable[[Callable[[Any], Any], Sequence[Any]], list[_Future]]
    limit: int | None
    latencies: list[float] = attrs.field(factory=list[float])
    _slots: threading.BoundedSemaphore | None = None

    def __attrs_post_init__(self) -> None:
        if self.limit is not None:
            self._slots = threading.BoundedSemaphore(self.limit)

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Future:
        if self._slots is not None:
            self._slots.acquire()
        future = self._submit(fn, *args)
        self._watch(future, time.perf_counter())
        return future

    def map(self, fn: Callable[[Any], Any], values: Sequence[Any]) -> list[_Future]:
        if self._slots is not None:  # one at a time, as slots come free
            return [self.submit(fn, value) for value in values]
        started = time.perf_counter()
        futures = self._map(fn, values)
        for future in futures:
            self._watch(future, started)
        return futures

    def _watch(self, future: _Future, started: float) -> None:
        def done(_: object) -> None:
            self.latencies.append(time.perf_counter() - started)
            if self._slots is not None:
                self._slots.release()

        future.add_done_callback(done)


@contextmanager
def floor_pool(
    kind: str, workers: int, limit: int | None, address: str | None = None
) -> Generator[FloorPool]:
    """The floor's pool for a runner: ``threads``, ``processes`` or ``dask`` (on the
    cluster at ``address``), with ``workers`` workers."""
    if kind == "dask":
        # The dask extra, imported only when asked for; typed in part: used as Any.
        distributed: Any = importlib.import_module("distributed")
        with distributed.Client(address) as client:

            def dask_submit(fn: Callable[..., Any], *args: Any) -> _Future:
                future: _Future = client.submit(fn, *args, pure=False)
                return future

            def dask_map(fn: Callable[[Any], Any], values: Sequence[Any]) -> list[_Future]:
                futures: list[_Future] = client.map(fn, values, pure=False)
                return futures

            yield FloorPool(dask_submit, dask_map, limit)
        return
    executor = ThreadPoolExecutor(workers) if kind == "threads" else ProcessPoolExecutor(workers)
    with executor:

        def map_(fn: Callable[[Any], Any], values: Sequence[Any]) -> list[_Future]:
            return [executor.submit(fn, value) for value in values]

        def submit(fn: Callable[..., Any], *args: Any) -> _Future:
            future: Future[Any] = executor.submit(fn, *args)
            return future

        yield FloorPool(submit, map_, limit)


def _cpu_floor(n: int, pool: FloorPool) -> object:
    return sum(f.result() for f in pool.map(burn, [BURN] * n))


def _io_sync_floor(n: int, pool: FloorPool) -> object:
    return len([f.result() for f in pool.map(nap, [PAUSE] * n)])


def _mixed_floor(n: int, pool: FloorPool) -> object:
    return sum(f.result() for f in pool.map(blend, [BURN // 4] * n))


def _fan_out_in_floor(n: int, pool: FloorPool) -> object:
    parts = [f.result() for f in pool.map(square, list(range(n)))]
    return pool.submit(total, parts).result()


def _stream_floor(n: int, pool: FloorPool) -> object:
    return sum(future.result() for future in [pool.submit(square, i) for i in items(n)])


async def run_async_floor(n: int, limit: int | None, latencies: list[float]) -> None:
    """``io-async`` without flowkit: ``n`` sleeps in an anyio task group, at most
    ``limit`` at once."""
    slots = anyio.Semaphore(limit) if limit is not None else None

    async def one(started: float) -> None:
        if slots is None:
            await anap(PAUSE)
        else:
            async with slots:
                await anap(PAUSE)
        latencies.append(time.perf_counter() - started)

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one, time.perf_counter())


async def run_service_floor(n: int, limit: int | None, latencies: list[float]) -> None:
    """``service`` without flowkit: each request an anyio task group of sleeps, served
    as flowkit's are (``serve``), at most ``limit`` sleeps at once."""
    slots = anyio.Semaphore(limit) if limit is not None else None

    async def one() -> None:
        if slots is None:
            await anyio.sleep(SERVICE_PAUSE)
        else:
            async with slots:
                await anyio.sleep(SERVICE_PAUSE)

    async def handle(size: int) -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(size):
                tg.start_soon(one)

    await serve(handle, n, latencies)


AsyncFloor = Callable[[int, int | None, list[float]], Awaitable[None]]
"""An async workload's floor: ``(n, limit, latencies)``, run on the cell's backend."""


@attrs.frozen
class Workload:
    """A built-in workload.

    Attributes:
        name: Its name on the command line.
        flow: Its flow, taking ``n``: the whole workload, or for a service one request.
        floor: Its floor for pools; ``None`` for async workloads, whose floor is
            ``async_floor``.
        async_floor: An async workload's floor.
        service: Whether its flow is a request handler, served by ``serve`` (``n`` is
            then the task runs of all its requests, its latencies the requests').
    """

    name: str
    flow: Flow[..., Any]
    floor: Callable[[int, FloorPool], object] | None
    async_floor: AsyncFloor = run_async_floor
    service: bool = False


WORKLOADS = {
    w.name: w
    for w in (
        Workload("cpu", cpu_flow, _cpu_floor),
        Workload("io-sync", io_sync_flow, _io_sync_floor),
        Workload("io-async", io_async_flow, None),
        Workload("mixed", mixed_flow, _mixed_floor),
        Workload("fan-out-in", fan_out_in_flow, _fan_out_in_floor),
        Workload("stream", stream_flow, _stream_floor),
        Workload("service", service_flow, None, run_service_floor, service=True),
    )
}
