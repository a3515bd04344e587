"""flowkit's overhead against its floor, measured in the same process run.

Each workload runs for flowkit and for its floor (the same work done with bare anyio or
threads), interleaved over several rounds so that both see the same machine. The table
shows the median, min and max wall time, microseconds per task, and the ratio of the
medians; ``--json PATH`` writes the records.

Logging is on at INFO, as for a user who configured nothing, but records go to a handler
that discards them: the cost of building records counts, the terminal's does not.

    python -m benchmarks [--quick] [--backend asyncio|trio] [--rounds N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import attrs

from flowkit import flow, task

# Workloads of the benchmark suite whose feature flowkit does not have yet.
MISSING = {
    "submit_sync": "needs task.submit()",
    "async_gather": "needs task.submit()",
    "io_fanout_async": "needs task.submit()",
    "io_fanout_sync": "needs task.submit()",
    "cache_hit": "needs caching",
    "memory": "needs task.submit()",
    "store": "needs the run store",
    "stream": "needs generator tasks",
}


def work(x: int) -> int:
    return x + 1


async def awork(x: int) -> int:
    return x + 1


work_task = task(work)
awork_task = task(awork)


@flow
def seq_sync_flow(n: int) -> None:
    for i in range(n):
        work_task(i)


@flow
async def seq_async_flow(n: int) -> None:
    for i in range(n):
        await awork_task(i)


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


WORKLOADS = [
    Workload(
        "seq_sync",
        "sync tasks called one after another in a sync flow",
        "<= 1.5x",
        _seq_sync_flowkit,
        _seq_sync_floor,
    ),
    Workload(
        "seq_async",
        "async tasks awaited one after another in an async flow",
        "<= 20 us/task",
        _seq_async_flowkit,
        _seq_async_floor,
    ),
]


def measure(workload: Workload, n: int, rounds: int, backend: str) -> list[dict[str, Any]]:
    """Run flowkit and its floor alternately; return one record for each."""
    times: dict[str, list[float]] = {"flowkit": [], "floor": []}
    workload.flowkit(min(n, 50), backend)  # warm up imports and first-run setup
    workload.floor(min(n, 50), backend)
    for r in range(rounds):
        order = ("flowkit", "floor") if r % 2 == 0 else ("floor", "flowkit")
        for system in order:
            fn = workload.flowkit if system == "flowkit" else workload.floor
            times[system].append(fn(n, backend))
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
                "per_task_us": median / n * 1e6,
                "ratio": median / floor_median,
                "goal": workload.goal,
            }
        )
    return records


def _table(records: list[dict[str, Any]]) -> str:
    head = (
        f"{'workload':<11} {'system':<8} {'n':>6} {'median s':>9} {'min s':>8} {'max s':>8} "
        f"{'us/task':>8} {'ratio':>6}  goal"
    )
    lines = [head, "-" * len(head)]
    for r in records:
        lines.append(
            f"{r['workload']:<11} {r['system']:<8} {r['n']:>6} {r['wall_s']:>9.4f} "
            f"{r['min_s']:>8.4f} {r['max_s']:>8.4f} {r['per_task_us']:>8.1f} "
            f"{r['ratio']:>6.2f}  {r['goal'] if r['system'] == 'flowkit' else ''}"
        )
    for name, why in MISSING.items():
        lines.append(f"{name:<11} missing: {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small N and few rounds (smoke test)")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", metavar="PATH", help="also write the records as JSON")
    args = parser.parse_args(argv)
    n = 100 if args.quick else 1000
    rounds = args.rounds or (2 if args.quick else 7)

    logging.getLogger("flowkit").setLevel(logging.INFO)
    logging.getLogger("flowkit").addHandler(logging.NullHandler())
    logging.getLogger("flowkit").propagate = False

    records = [rec for w in WORKLOADS for rec in measure(w, n, rounds, args.backend)]
    print(f"flowkit benchmarks on {args.backend}, Python {sys.version.split()[0]}")
    print(_table(records))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
