"""Task runners on CPU-bound work: flowkit on processes and on Dask, against Dask itself.

``python -m benchmarks.runners`` runs N tasks of about 5 ms of pure Python each (1,000 by
default) on 2 workers, in one run: sequentially in this process, with flowkit's
``ProcessPoolTaskRunner(max_workers=2)``, with flowkit's ``DaskTaskRunner`` on a
``LocalCluster`` of 2 single-threaded worker processes, and with Dask's own
``client.map`` on that same cluster. It prints each time and the goals: flowkit on Dask
within 1.3 times Dask's own time, and flowkit on processes at least 1.7 times faster
than the sequential loop (on 2 cores or more).

    python -m benchmarks.runners [--tasks N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable

from distributed import Client, LocalCluster

from flowkit import flow, task
from flowkit.task_runners import ProcessPoolTaskRunner
from flowkit.task_runners.dask import DaskTaskRunner

ROUNDS_PER_MS = 0  # set by calibrate(): loop rounds that take about 1 ms here


def burn(rounds: int) -> int:
    """Pure Python work: about ``rounds / ROUNDS_PER_MS`` milliseconds."""
    total = 0
    for i in range(rounds):
        total += i * i % 7
    return total


def calibrate() -> int:
    """Loop rounds per millisecond on this machine."""
    rounds = 100_000
    started = time.perf_counter()
    burn(rounds)
    return max(1, int(rounds / ((time.perf_counter() - started) * 1000)))


burn_task = task(burn, name="burn")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runners")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--json", help="also write the times to this file")
    args = parser.parse_args(argv)
    logging.getLogger("flowkit").setLevel(logging.WARNING)  # time the work, not the console
    work = [5 * calibrate()] * args.tasks

    on_processes = flow(name="on-processes", task_runner=ProcessPoolTaskRunner(max_workers=2))(
        lambda: [f.result() for f in burn_task.map(work)]
    )
    times = {"sequential": timed(lambda: [burn(r) for r in work])}
    times["flowkit processes"] = timed(on_processes)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.gather(client.map(burn, [1] * 10, pure=False))  # warm: workers imported
        times["dask client.map"] = timed(lambda: client.gather(client.map(burn, work, pure=False)))
        on_dask = flow(
            name="on-dask", task_runner=DaskTaskRunner(address=cluster.scheduler_address)
        )(lambda: [f.result() for f in burn_task.map(work)])
        times["flowkit dask"] = timed(on_dask)

    print(f"{args.tasks} tasks of about 5 ms on 2 workers ({os.cpu_count()} CPUs):")
    for name, seconds in times.items():
        print(f"  {name:<18} {seconds:7.2f} s")
    dask_ratio = times["flowkit dask"] / times["dask client.map"]
    speedup = times["sequential"] / times["flowkit processes"]
    print("goals:")
    print(f"  flowkit dask / dask client.map = {dask_ratio:.2f} (goal <= 1.3): "
          f"{'met' if dask_ratio <= 1.3 else 'missed'}")  # fmt: skip
    print(f"  sequential / flowkit processes = {speedup:.2f} (goal >= 1.7): "
          f"{'met' if speedup >= 1.7 else 'missed'}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"tasks": args.tasks, "seconds": times}, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
