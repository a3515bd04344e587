"""Task runners on CPU-bound work: flowkit on processes and on Dask, against Dask itself.

``python -m benchmarks.runners`` runs N tasks of about 5 ms of pure Python each (1,000 by
default) on 2 workers, in one run: sequentially in this process, with flowkit's
``ProcessPoolTaskRunner(max_workers=2)``, with flowkit's ``DaskTaskRunner`` on a
``LocalCluster`` of 2 single-threaded worker processes, and with Dask's own
``client.map`` on that same kind of cluster. Each runs in a fresh process of
``flowkit bench``'s harness (``flowkit.bench._harness``), its cluster started and warmed
before the timed part, with the work calibrated once, here, so that every system does
the same; flowkit as a user gets it (console lines at INFO, the run store on, in a
fresh ``FLOWKIT_HOME``). It prints each time (the median over ``--rounds``, 3 by
default, with the range) and the goals, each the median of its ratio within each round:
flowkit on Dask within 1.3 times Dask's own time, and flowkit on processes at least 1.7
times faster than the sequential loop (on 2 cores or more).

    python -m benchmarks.runners [--tasks N] [--rounds N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import cloudpickle
from distributed import Client, LocalCluster

from benchmarks.run import user_environment
from flowkit import flow, task
from flowkit.bench._harness import Job, run_jobs, schedule
from flowkit.bench._stats import summary
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
    """Loop rounds per millisecond on this machine: the median of 7 timings of 100,000
    rounds, after one to warm up (a single timing was off by up to 10%)."""
    rounds = 100_000
    timings = []
    for _ in range(8):
        started = time.perf_counter()
        burn(rounds)
        timings.append(time.perf_counter() - started)
    return max(1, int(rounds / (statistics.median(timings[1:]) * 1000)))


burn_task = task(burn, name="burn")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


SYSTEMS = ("sequential", "flowkit processes", "dask client.map", "flowkit dask")


def measure_system(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: time ``spec["system"]`` on ``spec["work"]`` (loop rounds per
    task)."""
    # As when this file ran as ``__main__``: its functions travel to workers by value, so
    # a worker does not import this module (and distributed with it).
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    system, work = spec["system"], spec["work"]
    if system == "sequential":
        return {"seconds": timed(lambda: [burn(r) for r in work])}
    if system == "flowkit processes":
        on_processes = flow(name="on-processes", task_runner=ProcessPoolTaskRunner(max_workers=2))(
            lambda: [f.result() for f in burn_task.map(work)]
        )
        return {"seconds": timed(on_processes)}
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.gather(client.map(burn, [1] * 10, pure=False))  # warm: workers imported
        if system == "dask client.map":
            return {"seconds": timed(lambda: client.gather(client.map(burn, work, pure=False)))}
        on_dask = flow(
            name="on-dask", task_runner=DaskTaskRunner(address=cluster.scheduler_address)
        )(lambda: [f.result() for f in burn_task.map(work)])
        return {"seconds": timed(on_dask)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runners")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None, help="shuffle the runs with this seed")
    parser.add_argument("--json", help="also write the times to this file")
    args = parser.parse_args(argv)
    work = [5 * calibrate()] * args.tasks
    order = schedule(SYSTEMS, args.rounds, seed=args.seed, warm_up=False)
    jobs = [
        Job("benchmarks.runners:measure_system", {"system": turn.cell, "work": work},
            f"{turn.cell} round {turn.round}")
        for turn in order
    ]  # fmt: skip
    samples: dict[str, list[float]] = {system: [] for system in SYSTEMS}
    # As a user gets flowkit (defaults on: the console at INFO, the run store), in a
    # fresh home, with bytecode cached as an installed package has it.
    env = user_environment(FLOWKIT_HOME=tempfile.mkdtemp(prefix="flowkit-runners-"))
    for turn, outcome in zip(order, run_jobs(jobs, timeout=1800, env=env), strict=True):
        if outcome.result is None:
            raise SystemExit(f"{outcome.job.label} {outcome.status}: {outcome.error}")
        samples[turn.cell].append(outcome.result["seconds"])
    times = {system: summary(samples[system]).median for system in SYSTEMS}
    # Each goal is a ratio of two systems measured in the same round, minutes apart at
    # most: the median of those pairs, so that a machine that speeds up or slows down
    # between rounds (a shared VM does) moves both sides of each pair alike.
    dask_ratio = _paired(samples["flowkit dask"], samples["dask client.map"])
    speedup = _paired(samples["sequential"], samples["flowkit processes"])

    print(f"{args.tasks} tasks of about 5 ms on 2 workers ({os.cpu_count()} CPUs), "
          f"median of {args.rounds} round(s), min-max:")  # fmt: skip
    for name in SYSTEMS:
        figures = summary(samples[name])
        print(f"  {name:<18} {figures.median:7.2f} s  ({figures.min:.2f}-{figures.max:.2f})")
    print("goals (the median of the ratios within each round):")
    print(f"  flowkit dask / dask client.map = {dask_ratio:.2f} (goal <= 1.3): "
          f"{'met' if dask_ratio <= 1.3 else 'missed'}")  # fmt: skip
    print(f"  sequential / flowkit processes = {speedup:.2f} (goal >= 1.7): "
          f"{'met' if speedup >= 1.7 else 'missed'}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as out:
            goals = {"dask_ratio": dask_ratio, "speedup": speedup}
            record = {"tasks": args.tasks, "seconds": times, "samples": samples, "goals": goals}
            json.dump(record, out, indent=2)
    return 0


def _paired(top: list[float], bottom: list[float]) -> float:
    """The median of ``top[i] / bottom[i]``: two systems' times, round by round."""
    return summary([a / b for a, b in zip(top, bottom, strict=True)]).median


if __name__ == "__main__":
    raise SystemExit(main())
