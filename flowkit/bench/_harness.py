"""Fair measurement: each run of a cell in a fresh process, rounds in shuffled order.

``flowkit bench`` and ``python -m benchmarks`` both run on this. A ``Job`` names what a
process does (a ``module:function`` called with a JSON spec, by ``_cell``); ``schedule``
orders the jobs of a matrix (one warm-up per cell first if asked, then each round with
its cells in a shuffled order, so no cell always runs first or after the same one);
``run_job`` runs one, killing its process group at the deadline, and says how it ended.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any, Generic, Literal, TypeVar

import attrs

__all__ = ["Job", "Outcome", "Scheduled", "run_job", "run_jobs", "schedule"]

C = TypeVar("C")
Status = Literal["ok", "failed", "timeout"]


@attrs.frozen
class Job:
    """What one process does: call ``target`` (``"module:function"``) with ``spec``."""

    target: str
    spec: Mapping[str, Any]
    label: str


@attrs.frozen
class Outcome:
    """How a job's process ended.

    Attributes:
        job: The job.
        status: ``"ok"``, ``"failed"`` (it raised, or its process died) or ``"timeout"``.
        error: One line saying why, unless ok.
        result: What the target returned, if ok.
        console_lines, console_bytes: What the process wrote on stderr (its console).
        console_tail: The end of it.
    """

    job: Job
    status: Status
    error: str | None
    result: dict[str, Any] | None
    console_lines: int
    console_bytes: int
    console_tail: str


@attrs.frozen
class Scheduled(Generic[C]):
    """A cell's turn: ``round`` is ``None`` for its warm-up."""

    cell: C
    round: int | None


def schedule(
    cells: Sequence[C], rounds: int, *, seed: int | None, warm_up: bool
) -> list[Scheduled[C]]:
    """The order to run ``cells`` in: a warm-up of each first (if ``warm_up``), then
    round after round, the cells of each in an order shuffled with ``seed``."""
    shuffle = random.Random(seed).shuffle
    order: list[Scheduled[C]] = []
    if warm_up:
        first = list(cells)
        shuffle(first)
        order += [Scheduled(cell, None) for cell in first]
    for r in range(rounds):
        turn = list(cells)
        shuffle(turn)
        order += [Scheduled(cell, r) for cell in turn]
    return order


def _drain(pipe: IO[bytes], seen: dict[str, Any]) -> None:
    """Read a process's console as a terminal would, counting lines, keeping the end."""
    tail: collections.deque[bytes] = collections.deque(maxlen=8)
    for chunk in iter(lambda: pipe.read(1 << 16), b""):
        seen["lines"] += chunk.count(b"\n")
        seen["bytes"] += len(chunk)
        tail.append(chunk)
    seen["tail"] = b"".join(tail)[-4000:].decode(errors="replace")


def _last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


def run_job(
    job: Job, *, timeout: float, env: Mapping[str, str] | None = None, verbose: bool = False
) -> Outcome:
    """Run ``job`` in a fresh ``python -m flowkit.bench._cell`` process.

    Its stderr is a pipe drained here (line and byte counts kept), or, with ``verbose``,
    this process's own. At ``timeout`` seconds its whole process group (its worker
    processes too) is killed, and the outcome is ``"timeout"``.
    """
    console: dict[str, Any] = {"lines": 0, "bytes": 0, "tail": ""}
    reply: list[bytes] = []
    with subprocess.Popen(
        [sys.executable, "-m", "flowkit.bench._cell"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=None if verbose else subprocess.PIPE,
        env=dict(env) if env is not None else None, start_new_session=True,
    ) as child:  # fmt: skip
        assert child.stdout is not None
        assert child.stdin is not None
        out = child.stdout
        drains = [threading.Thread(target=lambda: reply.append(out.read()), daemon=True)]
        if child.stderr is not None:
            drains.append(threading.Thread(target=_drain, args=(child.stderr, console),
                                           daemon=True))  # fmt: skip
        for drain in drains:
            drain.start()
        try:
            with child.stdin as stdin:
                stdin.write(json.dumps({"target": job.target, "spec": job.spec}).encode())
        except BrokenPipeError:  # it died before reading its request: said below
            pass
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        else:
            timed_out = False
        _kill(child)  # its whole group: a worker process left behind would hold the pipes
        for drain in drains:
            drain.join()
    if timed_out:
        return Outcome(job, "timeout", f"killed after {timeout:g} s", None,
                       console["lines"], console["bytes"], console["tail"])  # fmt: skip
    lines = b"".join(reply).decode(errors="replace").strip().splitlines()
    answer: dict[str, Any] = {}
    if lines:
        try:
            answer = json.loads(lines[-1])
        except ValueError:
            answer = {}
    if "result" in answer:
        return Outcome(job, "ok", None, answer["result"], console["lines"], console["bytes"],
                       console["tail"])  # fmt: skip
    error = answer.get("error") or (
        f"the process exited with code {child.returncode}: "
        f"{_last_line(console['tail']) or 'no output (run with --verbose to see its console)'}"
    )
    return Outcome(job, "failed", error, None, console["lines"], console["bytes"],
                   console["tail"])  # fmt: skip


def _kill(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def run_jobs(
    jobs: Iterable[Job],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    verbose: bool = False,
    progress: Callable[[Outcome, float], None] | None = None,
) -> list[Outcome]:
    """Run ``jobs`` one after another (each alone on the machine), in order;
    ``progress(outcome, seconds)`` is called as each ends."""
    outcomes: list[Outcome] = []
    for job in jobs:
        started = time.perf_counter()
        outcome = run_job(job, timeout=timeout, env=env, verbose=verbose)
        if progress is not None:
            progress(outcome, time.perf_counter() - started)
        outcomes.append(outcome)
    return outcomes
