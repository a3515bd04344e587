"""flowkit's overhead against its floor, measured in the same process run.

Each workload runs for flowkit and for its floor (the same work done with bare anyio or
threads), interleaved over several rounds so that both see the same machine. The table
shows the median, min and max wall time, microseconds per task, and the ratio of the
medians; ``--json PATH`` writes the records.

Logging is on at INFO, as for a user who configured nothing, but records go to a handler
that discards them: the cost of building records counts, the terminal's does not.

    python -m benchmarks [--quick] [--backend asyncio|trio] [--rounds N] [--json PATH]
                         [--only seq_sync,store,...] [--peers]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
import attrs

from benchmarks.peers import measure_peers
from flowkit import flow, store, task
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
cached_task = task(work, name="cached_work", cache_key_fn=task_input_hash, persist_result=False)


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


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@attrs.frozen
class Workload:
    name: str
    what: str
    goal: str
    flowkit: Callable[[int, str], float]
    floor: Callable[[int, str], float]
    items: int = 1  # work items per unit of n (stream moves 100 items per n)
    # Another way to do the work, shown for context (not the floor the goal is about).
    reference: Callable[[int, str], float] | None = None


def _seq_sync_flowkit(n: int, backend: str) -> float:
    return _timed(lambda: seq_sync_flow.with_options(backend=backend)(n))  # type: ignore[arg-type]


def _seq_sync_floor(n: int, backend: str) -> float:
    async def main() -> None:
        for i in range(n):
            await anyio.to_thread.run_sync(work, i)

    return _timed(lambda: anyio.run(main, backend=backend))


def _seq_async_flowkit(n: int, backend: str) -> float:
    return _timed(lambda: anyio.run(seq_async_flow, n, backend=backend))


def _seq_async_floor(n: int, backend: str) -> float:
    async def main() -> None:
        for i in range(n):
            async with anyio.create_task_group() as tg:
                tg.start_soon(awork, i)

    return _timed(lambda: anyio.run(main, backend=backend))


def _submit_sync_flowkit(n: int, backend: str) -> float:
    return _timed(lambda: submit_sync_flow.with_options(backend=backend)(n))  # type: ignore[arg-type]


def _submit_sync_floor(n: int, backend: str) -> float:
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(anyio.to_thread.run_sync, work, i)

    return _timed(lambda: anyio.run(main, backend=backend))


def _async_gather_flowkit(n: int, backend: str) -> float:
    return _timed(lambda: anyio.run(async_gather_flow, n, backend=backend))


def _spawn_all(fn: Callable[[int], Any], n: int, backend: str) -> float:
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(fn, i)

    return _timed(lambda: anyio.run(main, backend=backend))


def _io_fanout_async_flowkit(n: int, backend: str) -> float:
    return _timed(lambda: anyio.run(io_fanout_async_flow, n, backend=backend))


def _io_fanout_sync_flowkit(n: int, backend: str) -> float:
    return _timed(lambda: io_fanout_sync_flow.with_options(backend=backend)(n))  # type: ignore[arg-type]


def _io_fanout_sync_floor(n: int, backend: str) -> float:
    def main() -> None:
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(nap, range(n)))

    return _timed(main)


def _io_fanout_sync_anyio(n: int, backend: str) -> float:
    """What flowkit's worker threads are made of: anyio's, with the same wide limiter."""

    async def main() -> None:
        limiter = anyio.CapacityLimiter(n)
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(partial(anyio.to_thread.run_sync, nap, i, limiter=limiter))

    return _timed(lambda: anyio.run(main, backend=backend))


def _cache_hit_flowkit(n: int, backend: str) -> float:
    return _timed(lambda: cache_hit_flow.with_options(backend=backend)(n))  # type: ignore[arg-type]


def _cache_hit_floor(n: int, backend: str) -> float:
    cache = {"key": 2}

    def main() -> None:
        for _ in range(n):
            cache.get("key")

    return _timed(main)


def _store_on(n: int, backend: str) -> float:
    store.enable()
    try:
        return _seq_sync_flowkit(n, backend)
    finally:
        store.disable()


def _stream_flowkit(n: int, backend: str) -> float:
    return _timed(lambda: anyio.run(stream_flow, n * 100, backend=backend))


def _stream_floor(n: int, backend: str) -> float:
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


WORKLOADS = [
    Workload(
        "seq_sync", "sync tasks called one after another in a sync flow", "<= 1.5x",
        _seq_sync_flowkit, _seq_sync_floor,
    ),
    Workload(
        "seq_async", "async tasks awaited one after another in an async flow",
        "<= 20 us/task added",
        _seq_async_flowkit, _seq_async_floor,
    ),
    Workload(
        "submit_sync", "sync submits, then results", "<= 2x",
        _submit_sync_flowkit, _submit_sync_floor,
    ),
    Workload(
        "async_gather", "async submits, then all results", "<= 2x",
        _async_gather_flowkit, lambda n, b: _spawn_all(awork, n, b),
    ),
    Workload(
        "io_fanout_async", "async tasks sleeping 50 ms, all submitted", "<= 1.5x",
        _io_fanout_async_flowkit, lambda n, b: _spawn_all(anap, n, b),
    ),
    Workload(
        "io_fanout_sync", "sync tasks sleeping 50 ms, mapped, thread_limit=1000", "<= 1.5x",
        _io_fanout_sync_flowkit, _io_fanout_sync_floor, reference=_io_fanout_sync_anyio,
    ),
    Workload(
        "cache_hit", "calls that hit the cache", "<= 25 us/call added",
        _cache_hit_flowkit, _cache_hit_floor,
    ),
    Workload(
        "store", "seq_sync with the run store on (floor: off)", "<= 1.3x",
        _store_on, _seq_sync_flowkit,
    ),
    Workload(
        "stream", "items (n x 100) through an async generator task, buffer=256", ">= 1/3 rate",
        _stream_flowkit, _stream_floor, items=100,
    ),
]  # fmt: skip

# Whole processes, measured from outside: start-up, and peak memory of many submits.
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


def _python(code: str, *args: str) -> tuple[float, str]:
    # As on a machine where flowkit was installed: an installed package has its bytecode
    # cached, so a PYTHONDONTWRITEBYTECODE set here (this workplace sets it) would make
    # every start compile flowkit from source, which no user pays.
    env = {**os.environ, "FLOWKIT_LOGGING_LEVEL": "WARNING"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True
    )
    return time.perf_counter() - start, done.stdout.strip()


def measure_processes(quick: bool, rounds: int) -> list[dict[str, Any]]:
    """Start-up wall time and peak RSS (MB), each against its floor, in fresh processes."""
    n = 1000 if quick else 10_000
    for code in (STARTUP_FLOWKIT, STARTUP_FLOOR):
        _python(code)  # warm up: bytecode written, files in the page cache
    startup = {
        system: [_python(code)[0] for _ in range(rounds)]
        for system, code in (("flowkit", STARTUP_FLOWKIT), ("floor", STARTUP_FLOOR))
    }
    memory = {
        system: [int(_python(code, str(n))[1]) / 1024 for _ in range(max(1, rounds // 2))]
        for system, code in (("flowkit", MEMORY_FLOWKIT), ("floor", MEMORY_FLOOR))
    }
    records = []
    for name, samples, unit, goal, count in (
        ("startup", startup, "s", "<= 150 ms total", 1),
        ("memory", memory, "MB", "<= 60 MB peak", n),
    ):
        floor = statistics.median(samples["floor"])
        for system, values in samples.items():
            median = statistics.median(values)
            records.append({
                "workload": name, "system": system, "backend": "asyncio", "n": count,
                "rounds": len(values), "wall_s": median if unit == "s" else None,
                "peak_mb": median if unit == "MB" else None, "min_s": min(values),
                "max_s": max(values), "per_task_us": median / count * 1e6 if unit == "s" else None,
                "ratio": median / floor, "goal": goal, "unit": unit,
            })  # fmt: skip
    return records


def measure(workload: Workload, n: int, rounds: int, backend: str) -> list[dict[str, Any]]:
    """Run flowkit and its floor alternately; return one record for each."""
    systems = {"flowkit": workload.flowkit, "floor": workload.floor}
    if workload.reference is not None:
        systems["anyio"] = workload.reference
    times: dict[str, list[float]] = {system: [] for system in systems}
    for fn in systems.values():
        fn(min(n, 50), backend)  # warm up imports and first-run setup
    for r in range(rounds):
        order = list(systems) if r % 2 == 0 else list(reversed(systems))
        for system in order:
            times[system].append(systems[system](n, backend))
    floor_median = statistics.median(times["floor"])
    records = []
    for system, samples in times.items():
        median = statistics.median(samples)
        records.append(
            {
                "workload": workload.name,
                "system": system,
                "backend": backend,
                "n": n,
                "rounds": rounds,
                "wall_s": median,
                "min_s": min(samples),
                "max_s": max(samples),
                "per_task_us": median / (n * workload.items) * 1e6,
                # What flowkit adds to each task over doing the same work bare.
                "overhead_us": (median - floor_median) / (n * workload.items) * 1e6,
                "ratio": median / floor_median,
                "goal": workload.goal,
            }
        )
    return records


def _table(records: list[dict[str, Any]]) -> str:
    head = (
        f"{'workload':<15} {'system':<8} {'n':>6} {'median s':>9} {'min s':>8} {'max s':>8} "
        f"{'us/task':>8} {'+us':>7} {'ratio':>6}  goal"
    )
    lines = [head, "-" * len(head)]
    for r in records:
        goal = r["goal"] if r["system"] == "flowkit" else ""
        if r.get("unit") == "MB":
            lines.append(
                f"{r['workload']:<15} {r['system']:<8} {r['n']:>6} {'peak':>9} "
                f"{r['min_s']:>7.1f}M {r['max_s']:>7.1f}M {r['peak_mb']:>7.1f}M "
                f"{'':>7} {r['ratio']:>6.2f}  {goal}"
            )
            continue
        lines.append(
            f"{r['workload']:<15} {r['system']:<8} {r['n']:>6} {r['wall_s']:>9.4f} "
            f"{r['min_s']:>8.4f} {r['max_s']:>8.4f} {r['per_task_us']:>8.1f} "
            f"{r.get('overhead_us') or 0:>7.1f} {r['ratio']:>6.2f}  {goal}"
        )
    return "\n".join(lines)


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
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    n = 100 if args.quick else 1000
    rounds = args.rounds or (2 if args.quick else 7)

    logging.getLogger("flowkit").setLevel(logging.INFO)
    logging.getLogger("flowkit").addHandler(logging.NullHandler())
    logging.getLogger("flowkit").propagate = False

    # Runs go to a scratch home; the run store is off except where a workload turns it on.
    os.environ["FLOWKIT_HOME"] = tempfile.mkdtemp(prefix="flowkit-bench-")
    store.disable()

    chosen = [w for w in WORKLOADS if only is None or w.name in only]
    records = [rec for w in chosen for rec in measure(w, n, rounds, args.backend)]
    if only is None or only & {"startup", "memory"}:
        records += measure_processes(args.quick, rounds)
    print(f"flowkit benchmarks on {args.backend}, Python {sys.version.split()[0]}")
    print(_table(records))
    if args.peers:
        ours = {r["workload"]: r["wall_s"] for r in records if r["system"] == "flowkit"}
        peer_records, notes = measure_peers(n)
        for record in peer_records:
            mine = ours.get(record["workload"].removesuffix("_distributed"))
            record["ratio"] = record["wall_s"] / mine if mine else None
        records += peer_records
        print("\npeers (ratio: the peer's time over flowkit's, same workload, same machine)")
        for r in peer_records:
            ratio = f"{r['ratio']:.1f}x flowkit" if r["ratio"] else ""
            print(f"{r['workload']:<24} {r['system']:<8} {r['n']:>6} {r['wall_s']:>9.4f} s "
                  f"{r['per_task_us']:>10.1f} us/task  {ratio}")  # fmt: skip
        for note in notes:
            print(note)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
