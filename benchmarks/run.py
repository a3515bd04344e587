"""flowkit as users get it, against its floor, each run in a fresh process.

``python -m benchmarks`` runs every workload in flowkit's default configuration (what a
plain ``import flowkit`` gives: console lines at INFO on stderr, the run store on, in a
fresh ``FLOWKIT_HOME``), and in two more to show where the time goes: ``quiet`` (console
at WARNING) and ``bare`` (console at WARNING, store off). Each round of each workload
and system (flowkit in a configuration, the workload's floor: the same work done with
bare anyio or threads) runs in a fresh process of ``flowkit bench``'s harness
(``flowkit.bench._harness``), whose stderr is a pipe drained as a terminal or a log
collector would; the rounds of all of them come in a shuffled order, so each sees the
same machine. In its process a run first warms up (flowkit's first run, then the
workload at a small size), then is timed. The table shows the median, min and max wall
time, microseconds per task, and the ratio of the medians to the floor.

The service benchmark (``service``) is flowkit's first use: a service whose handler
awaits a flow per request. 200 requests (20 with ``--quick``), 50 at a time (10), each a
flow fanning out 20 async tasks (5) that sleep 5 ms, with ``retries=2`` and
``timeout_seconds=5``. flowkit serves them on the run's backend in each configuration,
against the same work in plain asyncio (``asyncio.gather`` per request, a semaphore for
requests) and plain trio (a nursery per request, a ``CapacityLimiter``), in the same
shuffled rounds. Each process warms up with a few requests, then serves the load in the
same event loop, as a service's loop lives on. Its table shows the medians over the
rounds of each round's p50 and p99 request latency (from a request taking its slot to
its answer) and of the wall and CPU time per task run, and the p50 over plain p50 on
the run's backend. The goals follow, each met or missed.

    python -m benchmarks [--quick] [--backend asyncio|trio] [--rounds N] [--json PATH]
                         [--only seq_sync,stream,service,...] [--peers] [--seed N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
import attrs

import flowkit
from benchmarks.peers import measure_peers
from flowkit import flow, store, task
from flowkit.bench._harness import Job, Outcome, run_jobs, schedule
from flowkit.bench._machine import describe_machine
from flowkit.bench._stats import summary
from flowkit.concurrency.sync import concurrency as sync_concurrency
from flowkit.tasks import task_input_hash


def work(x: int) -> int:
    return x + 1


async def awork(x: int) -> int:
    return x + 1


def nap(x: int) -> int:
    time.sleep(0.05)
    return x


async def anap(x: int) -> int:
    await anyio.sleep(0.05)
    return x


work_task = task(work)
awork_task = task(awork)
nap_task = task(nap)
anap_task = task(anap)
cached_task = task(work, name="cached_work", cache_key_fn=task_input_hash)


@task
def count(n: int) -> Iterator[int]:
    yield from range(n)


@task(buffer=256)
async def acount(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


@flow
def seq_sync_flow(n: int) -> None:
    for i in range(n):
        work_task(i)


@flow
async def seq_async_flow(n: int) -> None:
    for i in range(n):
        await awork_task(i)


@flow
def submit_sync_flow(n: int) -> None:
    futures = [work_task.submit(i) for i in range(n)]
    for future in futures:
        future.result()


@flow
async def async_gather_flow(n: int) -> None:
    futures = [awork_task.submit(i) for i in range(n)]
    for future in futures:
        await future


@flow
async def io_fanout_async_flow(n: int) -> None:
    for future in [anap_task.submit(i) for i in range(n)]:
        await future


@flow(thread_limit=1000)
def io_fanout_sync_flow(n: int) -> None:
    nap_task.map(range(n)).result()


@flow
def cache_hit_flow(n: int) -> None:
    for _ in range(n):
        cached_task(1)


@flow
async def stream_flow(n: int) -> None:
    async for _ in acount(n):
        pass


Timing = tuple[float, float]
"""Wall time and CPU time (of every thread of the process), in seconds."""


def _timed(fn: Callable[[], Any]) -> Timing:
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


@attrs.frozen
class Workload:
    name: str
    what: str
    goal: str
    flowkit: Callable[[int, str], Timing]
    floor: Callable[[int, str], Timing]
    items: int = 1  # work items per unit of n (stream moves 100 items per n)
    # Another way to do the work, shown for context (not the floor the goal is about).
    reference: Callable[[int, str], Timing] | None = None


def _seq_sync_flowkit(n: int, backend: str) -> Timing:
    return _timed(lambda: seq_sync_flow.with_options(backend=backend)(n))  # type: ignore[arg-type]


def _seq_sync_floor(n: int, backend: str) -> Timing:
    async def main() -> None:
        for i in range(n):
            await anyio.to_thread.run_sync(work, i)

    return _timed(lambda: anyio.run(main, backend=backend))


def _seq_async_flowkit(n: int, backend: str) -> Timing:
    return _timed(lambda: anyio.run(seq_async_flow, n, backend=backend))


def _seq_async_floor(n: int, backend: str) -> Timing:
    async def main() -> None:
        for i in range(n):
            async with anyio.create_task_group() as tg:
                tg.start_soon(awork, i)

    return _timed(lambda: anyio.run(main, backend=backend))


def _submit_sync_flowkit(n: int, backend: str) -> Timing:
    return _timed(lambda: submit_sync_flow.with_options(backend=backend)(n))  # type: ignore[arg-type]


def _submit_sync_floor(n: int, backend: str) -> Timing:
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(anyio.to_thread.run_sync, work, i)

    return _timed(lambda: anyio.run(main, backend=backend))


def _async_gather_flowkit(n: int, backend: str) -> Timing:
    return _timed(lambda: anyio.run(async_gather_flow, n, backend=backend))


def _spawn_all(fn: Callable[[int], Any], n: int, backend: str) -> Timing:
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(fn, i)

    return _timed(lambda: anyio.run(main, backend=backend))


def _io_fanout_async_flowkit(n: int, backend: str) -> Timing:
    return _timed(lambda: anyio.run(io_fanout_async_flow, n, backend=backend))


def _io_fanout_sync_flowkit(n: int, backend: str) -> Timing:
    return _timed(lambda: io_fanout_sync_flow.with_options(backend=backend)(n))  # type: ignore[arg-type]


def _io_fanout_sync_floor(n: int, backend: str) -> Timing:
    def main() -> None:
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(nap, range(n)))

    return _timed(main)


def _io_fanout_sync_anyio(n: int, backend: str) -> Timing:
    """What flowkit's worker threads are made of: anyio's, with the same wide limiter."""

    async def main() -> None:
        limiter = anyio.CapacityLimiter(n)
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(partial(anyio.to_thread.run_sync, nap, i, limiter=limiter))

    return _timed(lambda: anyio.run(main, backend=backend))


def _cache_hit_flowkit(n: int, backend: str) -> Timing:
    return _timed(lambda: cache_hit_flow.with_options(backend=backend)(n))  # type: ignore[arg-type]


def _cache_hit_floor(n: int, backend: str) -> Timing:
    cache = {"key": 2}

    def main() -> None:
        for _ in range(n):
            cache.get("key")

    return _timed(main)


def _stream_flowkit(n: int, backend: str) -> Timing:
    return _timed(lambda: anyio.run(stream_flow, n * 100, backend=backend))


def _stream_floor(n: int, backend: str) -> Timing:
    async def main() -> None:
        send, receive = anyio.create_memory_object_stream[int](256)

        async def produce() -> None:
            async with send:
                for i in range(n * 100):
                    await send.send(i)

        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            async with receive:
                async for _ in receive:
                    pass

    return _timed(lambda: anyio.run(main, backend=backend))


def _limit_slot_flowkit(n: int, backend: str, *, shared: bool) -> Timing:
    name = "bench-store" if shared else "bench-local"
    if shared:
        flowkit.concurrency.define(name, limit=4)
    else:
        flowkit.concurrency.local(name, limit=4)

    def main() -> None:
        for _ in range(n):
            with sync_concurrency(name):
                pass

    try:
        return _timed(main)
    finally:
        if shared:
            flowkit.concurrency.delete(name)


def _limit_slot_floor(n: int, backend: str) -> Timing:
    slots = threading.BoundedSemaphore(4)

    def main() -> None:
        for _ in range(n):
            with slots:
                pass

    return _timed(main)


WORKLOADS = [
    Workload(
        "seq_sync", "sync tasks called one after another in a sync flow",
        "<= 1.5x the to_thread floor", _seq_sync_flowkit, _seq_sync_floor,
    ),
    Workload(
        "seq_async", "async tasks awaited one after another in an async flow",
        "<= 2x a task group spawn and await", _seq_async_flowkit, _seq_async_floor,
    ),
    Workload(
        "submit_sync", "sync submits, then results", "<= 2x the to_thread floor",
        _submit_sync_flowkit, _submit_sync_floor,
    ),
    Workload(
        "async_gather", "async submits, then all results", "<= 2x an anyio task group",
        _async_gather_flowkit, lambda n, b: _spawn_all(awork, n, b),
    ),
    Workload(
        "io_fanout_async", "async tasks sleeping 50 ms, all submitted",
        "<= 1.5x the ideal 50 ms", _io_fanout_async_flowkit, lambda n, b: _spawn_all(anap, n, b),
    ),
    Workload(
        "io_fanout_sync", "sync tasks sleeping 50 ms, mapped, thread_limit=1000",
        "<= 1.5x ThreadPoolExecutor(1000)", _io_fanout_sync_flowkit, _io_fanout_sync_floor,
        reference=_io_fanout_sync_anyio,
    ),
    Workload(
        "cache_hit", "calls that hit the cache", "<= 25 us/call added",
        _cache_hit_flowkit, _cache_hit_floor,
    ),
    Workload(
        "limit_local", "a free slot of an in-process limit, taken and given back",
        "microseconds (no I/O)", partial(_limit_slot_flowkit, shared=False), _limit_slot_floor,
    ),
    Workload(
        "limit_store", "a free slot of a limit in the run store, taken and given back",
        "a lease written and deleted", partial(_limit_slot_flowkit, shared=True),
        _limit_slot_floor,
    ),
    Workload(
        "stream", "items (n x 100) through an async generator task, buffer=256",
        ">= 1/2 a memory channel's rate", _stream_flowkit, _stream_floor, items=100,
    ),
]  # fmt: skip
CONFIGURATIONS = ("flowkit", "quiet", "bare")
"""flowkit's rows: its defaults; console at WARNING; console at WARNING and store off."""


@contextmanager
def configured(system: str) -> Iterator[None]:
    """Runs inside are made in ``system``'s configuration (see ``CONFIGURATIONS``)."""
    logger = logging.getLogger("flowkit")
    level = logger.level
    if system in ("quiet", "bare"):
        logger.setLevel(logging.WARNING)
    if system == "bare":
        store.disable()
    try:
        yield
    finally:
        logger.setLevel(level)
        if system == "bare":
            store.enable()  # as the environment says: FLOWKIT_STORE is unset here


def describe_configuration() -> dict[str, Any]:
    """What decides the cost of a run's lines and records: logging and the store."""

    def handler(h: logging.Handler) -> str:
        stream = getattr(h, "stream", None)
        to = {sys.stderr: " on stderr", sys.stdout: " on stdout"}.get(stream, "")  # type: ignore[arg-type]
        return f"{type(h).__module__}.{type(h).__qualname__} at {h.level}{to}"

    logger = logging.getLogger("flowkit")
    return {
        "flowkit level": logging.getLevelName(logger.getEffectiveLevel()),
        "flowkit handlers": [handler(h) for h in logger.handlers],
        "root handlers": [handler(h) for h in logging.getLogger().handlers],
        "propagate": logger.propagate,
        "store": store.is_enabled(),
        "settings": sorted(
            k for k in os.environ if k.startswith("FLOWKIT_") and k != "FLOWKIT_HOME"
        ),
    }


# The service: a handler awaits a flow per request, many requests at once.


@attrs.frozen
class Service:
    """The load of the service benchmark: ``requests`` requests, ``concurrency`` of them
    handled at a time, each fanning out ``fanout`` async tasks of ``SERVICE_PAUSE``."""

    requests: int
    concurrency: int
    fanout: int

    @property
    def tasks(self) -> int:
        return self.requests * self.fanout

    def describe(self) -> str:
        return (
            f"{self.requests} requests, {self.concurrency} at a time, each a flow of "
            f"{self.fanout} async tasks of {SERVICE_PAUSE * 1e3:g} ms"
        )


SERVICE = Service(requests=200, concurrency=50, fanout=20)
SERVICE_QUICK = Service(requests=20, concurrency=10, fanout=5)
SERVICE_PAUSE = 0.005
SERVICE_SYSTEMS = (*CONFIGURATIONS, "asyncio", "trio")
"""flowkit in each configuration, on the run's backend; the same work in plain asyncio
(``asyncio.gather`` per request) and in plain trio (a nursery per request)."""


# As a real service sets them: they never fail here, but their bookkeeping is paid.
@task(retries=2, timeout_seconds=5)
async def lookup(i: int) -> int:
    await anyio.sleep(SERVICE_PAUSE)
    return i


@flow
async def handle_request(fanout: int) -> int:
    futures = [lookup.submit(i) for i in range(fanout)]
    return sum([await future for future in futures])


async def _asyncio_lookup(i: int) -> int:
    await asyncio.sleep(SERVICE_PAUSE)
    return i


async def _asyncio_request(fanout: int) -> int:
    return sum(await asyncio.gather(*(_asyncio_lookup(i) for i in range(fanout))))


async def _trio_request(fanout: int) -> int:
    import trio  # only the trio cells pay for importing it (60 ms or more)

    found: list[int] = []

    async def one(i: int) -> None:
        await trio.sleep(SERVICE_PAUSE)
        found.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(fanout):
            nursery.start_soon(one, i)
    return sum(found)


Handler = Callable[[int], Awaitable[int]]


async def _serve_asyncio(handle: Handler, load: Service, latencies: list[float]) -> None:
    """``load``'s requests on asyncio, at most ``load.concurrency`` at a time (a
    semaphore), each one's latency noted: from taking its slot to its answer."""
    slots = asyncio.Semaphore(load.concurrency)

    async def request() -> None:
        async with slots:
            started = time.perf_counter()
            await handle(load.fanout)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(request() for _ in range(load.requests)))


async def _serve_trio(handle: Handler, load: Service, latencies: list[float]) -> None:
    """As ``_serve_asyncio``, on trio: a nursery of requests, a ``CapacityLimiter``."""
    import trio

    slots = trio.CapacityLimiter(load.concurrency)

    async def request() -> None:
        async with slots:
            started = time.perf_counter()
            await handle(load.fanout)
            latencies.append(time.perf_counter() - started)

    async with trio.open_nursery() as nursery:
        for _ in range(load.requests):
            nursery.start_soon(request)


Serve = Callable[[Handler, Service, list[float]], Awaitable[None]]


async def _service_session(serve: Serve, handle: Handler, load: Service) -> dict[str, Any]:
    """One process's life as a service: a few requests to warm up (imports, flowkit's
    first runs), then ``load``, timed, in the same event loop, as a service's loop lives
    on between requests."""
    await serve(handle, attrs.evolve(load, requests=min(load.requests, 10)), [])
    latencies: list[float] = []
    start, cpu = time.perf_counter(), time.process_time()
    await serve(handle, load, latencies)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "latencies_s": latencies}


def measure_service(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: serve ``spec["load"]`` by one system (of ``SERVICE_SYSTEMS``).

    flowkit's systems run on ``spec["backend"]``, in their configuration; the plain
    systems on their own loop. Returns the wall and CPU time of the timed requests,
    each request's latency, and for flowkit's systems the configuration they ran in.
    """
    system, load = spec["system"], Service(**spec["load"])
    loop = system if system in ("asyncio", "trio") else spec["backend"]
    handle: Handler = {"asyncio": _asyncio_request, "trio": _trio_request}.get(
        system, handle_request
    )
    with configured(system) if system in CONFIGURATIONS else contextlib.nullcontext():
        if loop == "asyncio":
            result = asyncio.run(_service_session(_serve_asyncio, handle, load))
        else:
            import trio

            result = trio.run(_service_session, _serve_trio, handle, load)
        configuration = describe_configuration() if system in CONFIGURATIONS else None
    return {**result, "configuration": configuration}


def _percentile(values: list[float], p: int) -> float:
    """The ``p``-th percentile of ``values`` (inclusive: within their range)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def _service_records(
    load: Service, backend: str, results: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """A record for each system of the service: the medians over its rounds of the wall
    and CPU time per task run and of each round's p50 and p99 request latency; its ratio
    is its p50 over that of the plain system on the run's backend."""
    p50: dict[str, float] = {}
    records = []
    for system in SERVICE_SYSTEMS:
        rounds = results[system]
        walls = summary([r["wall_s"] for r in rounds])
        p50[system] = summary([_percentile(r["latencies_s"], 50) for r in rounds]).median
        p99 = summary([_percentile(r["latencies_s"], 99) for r in rounds]).median
        records.append({
            "workload": "service", "system": system,
            "backend": system if system in ("asyncio", "trio") else backend,
            "n": load.tasks, "rounds": len(rounds), "wall_s": walls.median,
            "min_s": walls.min, "max_s": walls.max,
            "per_task_us": walls.median / load.tasks * 1e6,
            "cpu_us": summary([r["cpu_s"] for r in rounds]).median / load.tasks * 1e6,
            "requests": load.requests, "concurrency": load.concurrency,
            "fanout": load.fanout, "p50_ms": p50[system] * 1e3, "p99_ms": p99 * 1e3,
            "goal": f"p50 <= 2x plain {backend}",
        })  # fmt: skip
    for record in records:
        record["ratio"] = p50[record["system"]] / p50[backend]
    return records


# Whole processes, measured from outside: start-up, import, and peak memory of many submits.
STARTUP_FLOWKIT = """
from flowkit import flow, task
@task
def one() -> int:
    return 1
@flow
def main() -> int:
    return one()
main()
"""
STARTUP_FLOOR = """
import anyio, anyio.to_thread
def one() -> int:
    return 1
async def main() -> int:
    return await anyio.to_thread.run_sync(one)
anyio.run(main)
"""
# What a program that uses flowkit imports: ``import flowkit`` alone loads only the
# package, its names being imported when first used.
IMPORT_FLOWKIT = """
import time
start = time.perf_counter()
from flowkit import flow, task
print(time.perf_counter() - start)
"""
IMPORT_FLOOR = IMPORT_FLOWKIT.replace("from flowkit import flow, task", "import anyio")
# The peak resident set of this process image. On Linux, ru_maxrss of a child counts the
# parent's size at the fork that made it; VmHWM starts anew at exec.
PEAK_KB = """
import resource, sys
def peak_kb():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""
MEMORY_FLOWKIT = (
    PEAK_KB
    + """
from flowkit import flow, task
@task
def one(i: int) -> int:
    return i
@flow
def main(n: int) -> None:
    futures = [one.submit(i) for i in range(n)]
    for f in futures:
        f.result()
main(int(sys.argv[1]))
print(peak_kb())
"""
)
MEMORY_FLOOR = (
    PEAK_KB
    + """
from concurrent.futures import ThreadPoolExecutor
def one(i: int) -> int:
    return i
with ThreadPoolExecutor(40) as pool:
    futures = [pool.submit(one, i) for i in range(int(sys.argv[1]))]
    for f in futures:
        f.result()
print(peak_kb())
"""
)
# What the environment says for each configuration (the default: nothing).
SETTINGS = {
    "flowkit": {},
    "quiet": {"FLOWKIT_LOGGING_LEVEL": "WARNING"},
    "bare": {"FLOWKIT_LOGGING_LEVEL": "WARNING", "FLOWKIT_STORE": "off"},
    "floor": {},
}


def user_environment(**settings: str) -> dict[str, str]:
    """This environment without flowkit's settings (but its home), with ``settings``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FLOWKIT_") or k == "FLOWKIT_HOME"
    }
    # As on a machine where flowkit was installed: an installed package has its bytecode
    # cached, so a PYTHONDONTWRITEBYTECODE set here (this workplace sets it) would make
    # every start compile flowkit from source, which no user pays.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env | settings


def _python(code: str, *args: str, system: str = "flowkit") -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True,
        env=user_environment(**SETTINGS[system]), check=True,
    )  # fmt: skip
    return time.perf_counter() - start, done.stdout.strip()


def measure_processes(quick: bool, rounds: int, only: set[str] | None) -> list[dict[str, Any]]:
    """Start-up and import wall time, and peak RSS (MB), against their floors, each in
    fresh processes, flowkit in each configuration."""
    n = 1000 if quick else 10_000
    systems = (*CONFIGURATIONS, "floor")
    for code in (STARTUP_FLOWKIT, STARTUP_FLOOR):
        _python(code)  # warm up: bytecode written, files in the page cache
    samples: dict[str, dict[str, list[float]]] = {}
    if only is None or "startup" in only:
        samples["startup"] = {s: [] for s in systems}
        samples["import"] = {s: [] for s in ("flowkit", "floor")}
        for _ in range(rounds):
            for system in systems:
                code = STARTUP_FLOOR if system == "floor" else STARTUP_FLOWKIT
                samples["startup"][system].append(_python(code, system=system)[0])
            for system, code in (("flowkit", IMPORT_FLOWKIT), ("floor", IMPORT_FLOOR)):
                samples["import"][system].append(float(_python(code)[1]))
    if only is None or "memory" in only:
        samples["memory"] = {s: [] for s in systems}
        for _ in range(max(1, rounds // 2)):
            for system in systems:
                code = MEMORY_FLOOR if system == "floor" else MEMORY_FLOWKIT
                samples["memory"][system].append(
                    int(_python(code, str(n), system=system)[1]) / 1024
                )
    goals = {"startup": "<= 150 ms", "import": "<= 60 ms", "memory": "<= 60 MB peak"}
    records = []
    for name, by_system in samples.items():
        unit, count = ("MB", n) if name == "memory" else ("s", 1)
        floor = summary(by_system["floor"]).median
        for system, values in by_system.items():
            figures = summary(values)
            median = figures.median
            records.append({
                "workload": name, "system": system, "backend": "asyncio", "n": count,
                "rounds": len(values), "wall_s": median if unit == "s" else None,
                "peak_mb": median if unit == "MB" else None, "min_s": figures.min,
                "max_s": figures.max, "per_task_us": median / count * 1e6 if unit == "s" else None,
                "ratio": median / floor, "goal": goals[name], "unit": unit,
            })  # fmt: skip
    return records


def _systems(workload: Workload) -> dict[str, Callable[[int, str], Timing]]:
    """What each system of ``workload`` runs: flowkit in each configuration, the floor,
    and the reference if it has one."""
    systems: dict[str, Callable[[int, str], Timing]] = dict.fromkeys(
        CONFIGURATIONS, workload.flowkit
    )
    systems["floor"] = workload.floor
    if workload.reference is not None:
        systems["anyio"] = workload.reference
    return systems


def measure_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: warm up, then time one run of a workload by one system.

    flowkit's systems first make flowkit's first run (as a user's program would) in their
    configuration; every system then runs the workload at a small size (imports, first
    use) before the timed run. Returns its wall and CPU time, and for flowkit's systems
    the configuration the first run left.
    """
    workload = next(w for w in WORKLOADS if w.name == spec["workload"])
    system, n, backend = spec["system"], spec["n"], spec["backend"]
    fn = _systems(workload)[system]
    configuration = None
    with configured(system) if system in CONFIGURATIONS else contextlib.nullcontext():
        if system in CONFIGURATIONS:
            configuration = _warm_up()
        fn(min(n, 50), backend)  # warm up imports and first-run setup
        wall, cpu = fn(n, backend)
    return {"wall_s": wall, "cpu_s": cpu, "configuration": configuration}


def measure(
    chosen: list[Workload], n: int, rounds: int, backend: str, *, home: str, seed: int | None,
    service: Service | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any]]:  # fmt: skip
    """Run each workload (and the ``service`` load, if given) by each system ``rounds``
    times, each run in a fresh process, all in one shuffled order; a record for each
    workload and system, the configuration flowkit's first run left, and what the
    processes' consoles wrote.

    Raises:
        SystemExit: A run failed or timed out: the figures would not be comparable.
    """
    cells = [(w.name, system) for w in chosen for system in _systems(w)]
    if service is not None:
        cells += [("service", system) for system in SERVICE_SYSTEMS]
    order = schedule(cells, rounds, seed=seed, warm_up=False)
    jobs = [
        _job(workload, system, turn.round, n, backend, service)
        for turn in order
        for workload, system in [turn.cell]
    ]
    outcomes = run_jobs(jobs, timeout=600, env=user_environment(FLOWKIT_HOME=home))
    _check(outcomes)
    console = {
        "lines": sum(o.console_lines for o in outcomes),
        "bytes": sum(o.console_bytes for o in outcomes),
    }
    results: dict[tuple[str, str], list[dict[str, Any]]] = {cell: [] for cell in cells}
    configuration = None
    for turn, outcome in zip(order, outcomes, strict=True):
        assert outcome.result is not None
        results[turn.cell].append(outcome.result)
        if turn.cell[1] == "flowkit":
            configuration = outcome.result["configuration"]
    records = []
    for workload in chosen:
        times = {system: [(r["wall_s"], r["cpu_s"]) for r in results[workload.name, system]]
                 for system in _systems(workload)}  # fmt: skip
        floor_median = summary([wall for wall, _ in times["floor"]]).median
        for system, timings in times.items():
            records.append(_record(workload, system, n, timings, floor_median, backend))
    if service is not None:
        by_system = {system: results["service", system] for system in SERVICE_SYSTEMS}
        records += _service_records(service, backend, by_system)
    return records, configuration, console


def _job(
    workload: str, system: str, round: int | None, n: int, backend: str, service: Service | None
) -> Job:
    """The process that measures one round of ``workload`` by ``system``."""
    label = f"{workload} {system} round {round}"
    if workload == "service":
        assert service is not None
        spec = {"system": system, "backend": backend, "load": attrs.asdict(service)}
        return Job("benchmarks.run:measure_service", spec, label)
    spec = {"workload": workload, "system": system, "n": n, "backend": backend}
    return Job("benchmarks.run:measure_cell", spec, label)


def _check(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        if outcome.status != "ok":
            raise SystemExit(
                f"the benchmark process for {outcome.job.label} {outcome.status}: "
                f"{outcome.error}\n{outcome.console_tail}"
            )


def _record(
    workload: Workload, system: str, n: int, timings: list[Timing], floor_median: float,
    backend: str,
) -> dict[str, Any]:  # fmt: skip
    figures = summary([wall for wall, _ in timings])
    median = figures.median
    return {
        "workload": workload.name,
        "system": system,
        "backend": backend,
        "n": n,
        "rounds": len(timings),
        "wall_s": median,
        "min_s": figures.min,
        "max_s": figures.max,
        "per_task_us": median / (n * workload.items) * 1e6,
        # CPU time of the process, steadier than wall time on a busy machine.
        "cpu_us": summary([cpu for _, cpu in timings]).median / (n * workload.items) * 1e6,
        # What flowkit adds to each task over doing the same work bare.
        "overhead_us": (median - floor_median) / (n * workload.items) * 1e6,
        "ratio": median / floor_median,
        "goal": workload.goal,
    }


def _by(records: list[dict[str, Any]], workload: str, system: str) -> dict[str, Any] | None:
    return next((r for r in records if r["workload"] == workload and r["system"] == system), None)


def goals(records: list[dict[str, Any]]) -> list[tuple[str, str, str, bool]]:
    """Each goal of the default configuration that ``records`` measure: its workload, the
    goal, the figure, and whether it is met."""
    out: list[tuple[str, str, str, bool]] = []

    def ratio(workload: str, limit: float, goal: str) -> None:
        if (r := _by(records, workload, "flowkit")) is not None:
            out.append((workload, goal, f"{r['ratio']:.2f}x", r["ratio"] <= limit))

    ratio("seq_sync", 1.5, "<= 1.5x the to_thread floor")
    ratio("seq_async", 2, "<= 2x a task group spawn and await")
    ratio("submit_sync", 2, "<= 2x the to_thread floor")
    ratio("async_gather", 2, "<= 2x an anyio task group")
    if (r := _by(records, "io_fanout_async", "flowkit")) is not None:
        ideal = r["wall_s"] / 0.05
        out.append(("io_fanout_async", "<= 1.5x the ideal 50 ms", f"{ideal:.2f}x", ideal <= 1.5))
    ratio("io_fanout_sync", 1.5, "<= 1.5x a ThreadPoolExecutor(1000)")
    if (r := _by(records, "cache_hit", "flowkit")) is not None:
        added = r["overhead_us"]
        out.append(("cache_hit", "<= 25 us added per call", f"{added:.1f} us", added <= 25))
    for workload in ("seq_sync", "seq_async"):
        default, bare = _by(records, workload, "flowkit"), _by(records, workload, "bare")
        if default is not None and bare is not None:
            times = default["wall_s"] / bare["wall_s"]
            out.append((workload, "default <= 1.3x bare", f"{times:.2f}x", times <= 1.3))
    if (r := _by(records, "startup", "flowkit")) is not None:
        ms = r["wall_s"] * 1e3
        out.append(
            ("startup", "<= 150 ms to the end of a one-task flow", f"{ms:.0f} ms", ms <= 150)
        )
    if (r := _by(records, "import", "flowkit")) is not None:
        ms = r["wall_s"] * 1e3
        out.append(("import", "from flowkit import flow, task <= 60 ms", f"{ms:.0f} ms", ms <= 60))
    if (r := _by(records, "memory", "flowkit")) is not None:
        mb = r["peak_mb"]
        out.append(("memory", "<= 60 MB peak, 10,000 submits", f"{mb:.1f} MB", mb <= 60))
    if (r := _by(records, "stream", "flowkit")) is not None:
        rate = 1 / r["ratio"]
        out.append(("stream", ">= 1/2 a memory channel's rate", f"{rate:.2f}", rate >= 0.5))
    if (r := _by(records, "service", "flowkit")) is not None:
        # Against the plain loop the flow ran on: asyncio's gather, or trio's nursery.
        goal = f"p50 <= 2x plain {r['backend']}"
        out.append(("service", goal, f"{r['ratio']:.2f}x", r["ratio"] <= 2))
    for r in records:
        if r["system"] == "prefect" and r["workload"] != "startup" and r["ratio"]:
            goal = ">= 100x faster than Prefect per task"
            out.append((r["workload"], goal, f"{r['ratio']:.0f}x", r["ratio"] >= 100))
        if r["system"] == "dask" and r["workload"] == "submit_sync" and r["ratio"]:
            goal = "faster than Dask threaded"
            out.append((r["workload"], goal, f"Dask {r['ratio']:.2f}x flowkit", r["ratio"] > 1))
    return out


def _table(records: list[dict[str, Any]]) -> str:
    head = (
        f"{'workload':<15} {'system':<8} {'n':>6} {'median s':>9} {'min s':>8} {'max s':>8} "
        f"{'us/task':>8} {'cpu us':>7} {'+us':>7} {'ratio':>6}  goal"
    )
    lines = [head, "-" * len(head)]
    for r in records:
        if r["workload"] == "service":  # its latencies have a table of their own
            continue
        goal = r["goal"] if r["system"] == "flowkit" else ""
        cpu = f"{r['cpu_us']:.1f}" if r.get("cpu_us") is not None else ""
        if r.get("unit") == "MB":
            lines.append(
                f"{r['workload']:<15} {r['system']:<8} {r['n']:>6} {'peak':>9} "
                f"{r['min_s']:>7.1f}M {r['max_s']:>7.1f}M {r['peak_mb']:>7.1f}M "
                f"{'':>7} {'':>7} {r['ratio']:>6.2f}  {goal}"
            )
            continue
        lines.append(
            f"{r['workload']:<15} {r['system']:<8} {r['n']:>6} {r['wall_s']:>9.4f} "
            f"{r['min_s']:>8.4f} {r['max_s']:>8.4f} {r['per_task_us']:>8.1f} "
            f"{cpu:>7} {r.get('overhead_us') or 0:>7.1f} {r['ratio']:>6.2f}  {goal}"
        )
    return "\n".join(lines)


def _service_table(records: list[dict[str, Any]]) -> str:
    """The service's records: request latency, time and CPU per task run, p50 ratio."""
    head = (
        f"{'system':<8} {'backend':<8} {'p50 ms':>8} {'p99 ms':>8} {'median s':>9} "
        f"{'us/task':>8} {'cpu us':>7} {'ratio':>6}  goal"
    )
    lines = [head, "-" * len(head)]
    for r in records:
        goal = r["goal"] if r["system"] == "flowkit" else ""
        lines.append(
            f"{r['system']:<8} {r['backend']:<8} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
            f"{r['wall_s']:>9.4f} {r['per_task_us']:>8.1f} {r['cpu_us']:>7.1f} "
            f"{r['ratio']:>6.2f}  {goal}"
        )
    return "\n".join(lines)


def _warm_up() -> dict[str, Any]:
    """Make the first run as a user would (flowkit sets itself up); say how it did."""
    seq_sync_flow(1)
    return describe_configuration()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small N and few rounds (smoke test)")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", metavar="PATH", help="also write the records as JSON")
    parser.add_argument("--only", metavar="NAMES", help="comma-separated workloads to run")
    parser.add_argument(
        "--peers", action="store_true", help="also run Prefect and Dask, where installed"
    )
    parser.add_argument("--seed", type=int, default=None, help="shuffle the runs with this seed")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    rounds = args.rounds or (2 if args.quick else 7)

    home = tempfile.mkdtemp(prefix="flowkit-bench-")  # a fresh home, as a new user's
    records: list[dict[str, Any]] = []
    configuration: dict[str, Any] | None = None
    console = {"lines": 0, "bytes": 0}
    chosen = [w for w in WORKLOADS if only is None or w.name in only]
    service = None
    if only is None or "service" in only:
        service = SERVICE_QUICK if args.quick else SERVICE
    if chosen or service is not None:
        n = 100 if args.quick else 1000
        records, configuration, console = measure(
            chosen, n, rounds, args.backend, home=home, seed=args.seed, service=service
        )
    if configuration is None:
        configuration = describe_configuration()
    if only is None or only & {"startup", "memory"}:
        os.environ["FLOWKIT_HOME"] = home
        records += measure_processes(args.quick, rounds, only)
    print(f"flowkit benchmarks on {args.backend}, Python {sys.version.split()[0]}")
    print(
        f"flowkit: its defaults (console at INFO on stderr, a pipe drained here: "
        f"{console['lines']:,} lines; the run store on, in a fresh FLOWKIT_HOME); quiet: "
        "console at WARNING; bare: console at WARNING, store off"
    )
    if any(r["workload"] != "service" for r in records):
        print(_table(records))
    if service is not None:
        print(f"\nservice: {service.describe()} (retries=2, timeout_seconds=5); latency: "
              "from a request's slot to its answer; ratio: p50 over plain "
              f"{args.backend}'s")  # fmt: skip
        print(_service_table([r for r in records if r["workload"] == "service"]))
    if args.peers:
        ours = {r["workload"]: r["wall_s"] for r in records if r["system"] == "flowkit"}
        peer_records, notes = measure_peers(100 if args.quick else 1000)
        for record in peer_records:
            mine = ours.get(record["workload"].removesuffix("_distributed"))
            record["ratio"] = record["wall_s"] / mine if mine else None
        records += peer_records
        print("\npeers at their defaults (ratio: the peer's time over flowkit's, same workload)")
        for r in peer_records:
            ratio = f"{r['ratio']:.1f}x flowkit" if r["ratio"] else ""
            print(f"{r['workload']:<24} {r['system']:<8} {r['n']:>6} {r['wall_s']:>9.4f} s "
                  f"{r['per_task_us']:>10.1f} us/task  {ratio}")  # fmt: skip
        for note in notes:
            print(note)
    print("\ngoals, in the default configuration")
    for workload, goal, figure, met in goals(records):
        print(f"{workload:<15} {goal:<42} {figure:>16}  {'met' if met else 'MISSED'}")
    if args.json:
        report = {"machine": describe_machine(), "configuration": configuration,
                  "console": console, "records": records}  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
