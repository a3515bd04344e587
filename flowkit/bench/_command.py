"""``flowkit bench``: a matrix checked up front, run cell by cell in fresh processes, and
shown as a table, a ``flowkit-bench/1`` JSON document, and a comparison with a baseline."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import attrs

from .._engine.loops import resolve_backend
from ..flows import Flow
from ._harness import Job, Outcome, run_jobs, schedule
from ._machine import describe_machine
from ._matrix import (
    BUILT_IN,
    Cell,
    MatrixError,
    parse_backends,
    parse_limits,
    parse_ns,
    parse_params,
    parse_runners,
    parse_workload,
)
from ._matrix import cells as matrix_cells
from ._stats import Comparison, summarise

__all__ = [
    "FORMAT",
    "Matrix",
    "comparison_text",
    "html_writer_available",
    "load_document",
    "run",
    "table",
    "write_document",
    "write_html",
]

FORMAT = "flowkit-bench/1"
DEFAULT_N = 1000
DEFAULT_TIMEOUT = 300.0


@attrs.frozen
class Matrix:
    """What to measure: a workload on every combination of its axes, ``rounds`` times.

    Build one with ``Matrix.parse``, which checks every axis and says what is wrong.
    """

    workload: str
    backends: tuple[str, ...]
    runners: tuple[str, ...]
    limits: tuple[int | None, ...]
    ns: tuple[int | None, ...]
    params: Mapping[str, Any] = attrs.field(factory=dict[str, Any])
    rounds: int = 5
    seed: int | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def parse(
        cls,
        workload: str,
        *,
        backend: str = "asyncio",
        runner: str = "threads:8",
        limit: str = "none",
        n: str | None = None,
        params: Sequence[str] = (),
        rounds: int = 5,
        seed: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Matrix:
        """The matrix the command line describes.

        ``n`` is the built-ins' task count (default 1000). A user's flow that takes a
        parameter ``n`` is given each ``--n`` value; one that takes none refuses ``--n``,
        and its cells' ``n`` is the count of task runs its flow run made.

        Raises:
            MatrixError: An axis has a bad value, the backend is one this flowkit's
                engine does not run, a runner needs an extra that is missing, or the
                user's flow cannot be imported or called with the parameters.
        """
        name = parse_workload(workload)
        given = parse_params(params)
        if rounds < 1:
            raise MatrixError(f"--rounds {rounds} is too few: give 1 or more")
        if timeout <= 0:
            raise MatrixError(f"--timeout {timeout:g} is not a duration: give seconds > 0")
        backends = parse_backends(backend)
        for chosen in backends:
            _check_backend(chosen)
        runners = parse_runners(runner)
        if any(r.startswith("dask:") for r in runners) and (
            importlib.util.find_spec("distributed") is None
        ):
            raise MatrixError("--runner dask:N needs the dask extra: pip install 'flowkit[dask]'")
        ns: list[int | None]
        if name in BUILT_IN:
            if given:
                raise MatrixError(
                    f"--param is for a flow of yours (module:flow); the built-in {name!r} "
                    "takes only --n"
                )
            ns = list(parse_ns(n if n is not None else str(DEFAULT_N)))
        else:
            ns = list(_user_ns(name, given, parse_ns(n) if n is not None else None))
        return cls(
            name, tuple(backends), tuple(runners), tuple(parse_limits(limit)),
            tuple(ns), given, rounds, seed, timeout,
        )  # fmt: skip

    def cells(self) -> list[Cell]:
        """Every cell: flowkit's and its floor's for each combination of the axes."""
        return matrix_cells(self.workload, self.backends, self.runners, self.limits, self.ns)


def _check_backend(backend: str) -> None:
    """Ask the engine whether it can run ``backend`` here (uvloop: is it installed?)."""
    try:
        resolve_backend(backend, owner="flowkit bench")  # type: ignore[arg-type]
    except (ValueError, ModuleNotFoundError) as exc:
        raise MatrixError(f"--backend {backend!r}: {exc}") from None


def _user_ns(workload: str, params: Mapping[str, Any], ns: list[int] | None) -> list[int | None]:
    """The ``n`` axis for a user's flow, after checking it can be called with ``params``."""
    module, _, attribute = workload.partition(":")
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise MatrixError(f"cannot load the flow {workload}: {exc}") from None
    if not isinstance(found, Flow):
        raise MatrixError(f"{workload} is {found!r}, not a flowkit flow: decorate it with @flow")
    takes_n = "n" in found.signature.parameters  # pyright: ignore[reportUnknownMemberType]
    if ns is not None and not takes_n:
        raise MatrixError(
            f"--n: the flow {workload} takes no parameter n; leave --n out (its cells count "
            "the task runs each flow run makes) or give the flow an n parameter"
        )
    if ns is not None and "n" in params:
        raise MatrixError("give n once: as --n, or as --param n=..., not both")
    try:
        found.signature.bind(**params, **({"n": 1} if ns else {}))  # pyright: ignore[reportUnknownMemberType]
    except TypeError as exc:
        raise MatrixError(
            f"the flow {workload} cannot be called with {dict(params)!r}"
            f"{' and n' if ns else ''}: {exc}; give its parameters with --param name=value"
        ) from None
    return list(ns) if ns is not None else [None]


def _record(cell: Cell, round: int, outcome: Outcome) -> dict[str, Any]:
    result = outcome.result or {}
    ok = outcome.status == "ok"
    n = result.get("n", cell.n) if ok else cell.n
    wall = result["wall_s"] if ok else None
    return {
        "cell": cell.id, "workload": cell.workload, "system": cell.system, "floor": cell.floor,
        "backend": cell.backend, "runner": cell.runner, "limit": cell.limit, "n": n,
        "round": round, "status": outcome.status, "error": outcome.error, "wall_s": wall,
        "throughput": n / wall if ok and n and wall else None,
        "latencies_s": result.get("latencies_s", []) if ok else [],
        "phases_s": result.get("phases_s") if ok else None,
        "flow_run_id": result.get("flow_run_id") if ok else None,
    }  # fmt: skip


class _Progress:
    """One line per finished process, or a status line rewritten in place on a TTY."""

    def __init__(self, total: int, stream: IO[str]) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.tty = stream.isatty()

    def __call__(self, outcome: Outcome, seconds: float) -> None:
        self.done += 1
        result = outcome.result or {}
        figure = f"{result['wall_s']:.4f} s" if outcome.status == "ok" else (
            f"{outcome.status.upper()}: {outcome.error}"
        )  # fmt: skip
        line = f"[{self.done}/{self.total}] {outcome.job.label}: {figure}"
        if self.tty:
            end = "\n" if self.done == self.total else ""
            self.stream.write(f"\r\033[K{line[:200]}{end}")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def run(
    matrix: Matrix,
    *,
    argv: Sequence[str] = (),
    home: str | None = None,
    verbose: bool = False,
    progress: IO[str] | None = None,
) -> dict[str, Any]:
    """Run every cell of ``matrix``, each round in a fresh process, after one warm-up
    process per cell; the ``flowkit-bench/1`` document of the run.

    Args:
        matrix: What to run.
        argv: The command line, recorded in the document.
        home: The ``FLOWKIT_HOME`` of the cells' run store (default: this process's).
        verbose: Show the cells' consoles (stderr) instead of discarding them.
        progress: Where to report each finished process (default: nowhere).
    """
    started = datetime.now(UTC)
    cells = matrix.cells()
    order = schedule(cells, matrix.rounds, seed=matrix.seed, warm_up=True)
    jobs = [
        Job(
            "flowkit.bench._measure:measure",
            {"cell": attrs.asdict(turn.cell), "round": turn.round, "params": dict(matrix.params)},
            f"{turn.cell.id} {'warm-up' if turn.round is None else f'round {turn.round}'}",
        )
        for turn in order
    ]
    env = dict(os.environ)
    if home is not None:
        env["FLOWKIT_HOME"] = str(home)
    report = _Progress(len(jobs), progress) if progress is not None else None
    outcomes = run_jobs(jobs, timeout=matrix.timeout, env=env, verbose=verbose, progress=report)
    records = [
        _record(turn.cell, turn.round, outcome)
        for turn, outcome in zip(order, outcomes, strict=True)
        if turn.round is not None
    ]
    records.sort(key=lambda r: (cells.index(_cell_of(cells, r["cell"])), r["round"]))
    return {
        "format": FORMAT,
        "started": started.isoformat(timespec="seconds"),
        "argv": list(argv),
        "machine": describe_machine(),
        "records": records,
        "cells": summarise(records),
    }


def _cell_of(cells: Sequence[Cell], cell_id: str) -> Cell:
    return next(c for c in cells if c.id == cell_id)


def write_document(document: Mapping[str, Any], path: str | Path) -> None:
    """Write ``document`` as JSON to ``path`` atomically: a reader sees the old file or
    the whole new one."""
    target = Path(path)
    fd, scratch = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1, ensure_ascii=False)
            out.write("\n")
        os.replace(scratch, target)
    except BaseException:
        os.unlink(scratch)
        raise


def load_document(path: str | Path) -> dict[str, Any]:
    """Read a ``flowkit-bench/1`` document.

    Raises:
        ValueError: The file is not JSON, or not such a document.
        OSError: It cannot be read.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:  # pyright: ignore[reportUnknownMemberType]
        raise ValueError(
            f"{path} is not a {FORMAT} document: write one with flowkit bench ... --json PATH"
        )
    return document  # pyright: ignore[reportUnknownVariableType]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def table(document: Mapping[str, Any]) -> str:
    """The cells of ``document`` as a table: each cell's rounds, wall-time figures, and
    ratio to its floor."""
    machine = document["machine"]
    lines = [
        f"flowkit bench on {machine['cores']} cores ({machine['cpu'] or 'CPU unknown'}), "
        f"Python {machine['python']}, governor {machine['governor'] or 'unknown'}",
    ]
    w = max([8, *(len(c["workload"]) for c in document["cells"])])
    head = (
        f"{'workload':<{w}} {'backend':<14} {'runner':<12} {'limit':>5} {'n':>6} "
        f"{'system':<20} {'ok':>5} {'median s':>9} {'min s':>8} {'max s':>8} "
        f"{'spread':>6} {'ratio':>6}"
    )
    lines += [head, "-" * len(head)]
    notes: set[str] = set()
    for c in document["cells"]:
        system = c["floor"] if c["system"] == "floor" else "flowkit"
        if c["floor"] is None:
            notes.add("ratio -: a flow of yours has no floor to compare with")
        ok = f"{c['ok']}/{c['rounds']}"
        spread = "-" if c["spread"] is None else f"{c['spread']:.0%}"
        ratio = "-" if c["ratio"] is None else f"{c['ratio']:.2f}"
        lines.append(
            f"{c['workload']:<{w}} {c['backend']:<14} {c['runner']:<12} "
            f"{'none' if c['limit'] is None else c['limit']:>5} "
            f"{'-' if c['n'] is None else c['n']:>6} {system[:20]:<20} {ok:>5} "
            f"{_seconds(c['median_s']):>9} {_seconds(c['min_s']):>8} "
            f"{_seconds(c['max_s']):>8} {spread:>6} {ratio:>6}"
        )
    failures = [r for r in document["records"] if r["status"] != "ok"]
    for r in failures:
        lines.append(f"{r['cell']} round {r['round']}: {r['status']}: {r['error']}")
    lines += sorted(notes)
    return "\n".join(lines)


def comparison_text(comparison: Comparison, tolerance: float) -> str:
    """Each cell's change against the baseline, the cells of one side only, the verdict."""
    lines = [f"against the baseline (slower by more than {tolerance:.0%} fails):"]
    for c in comparison.changes:
        if c.change is not None:
            change = f"{c.change:+.1%}"
        else:
            change = "no ok round now" if c.median is None else "no baseline figure"
        mark = "  SLOWER" if c.regressed else ""
        lines.append(
            f"  {c.cell:<58} {_seconds(c.baseline):>9} -> {_seconds(c.median):>9}  {change}{mark}"
        )
    for cell in comparison.only_here:
        lines.append(f"  {cell:<58} new here (not in the baseline)")
    for cell in comparison.only_baseline:
        lines.append(f"  {cell:<58} only in the baseline (not run here)")
    slower = sum(c.regressed for c in comparison.changes)
    lines.append(f"{slower} cell{'s' * (slower != 1)} slower than the baseline" if slower
                 else "no cell slower than the baseline")  # fmt: skip
    return "\n".join(lines)


def html_writer_available() -> bool:
    """Whether the HTML report can draw its plots: matplotlib (the ``bench`` extra) is
    installed."""
    return importlib.util.find_spec("matplotlib") is not None


def write_html(document: Mapping[str, Any], path: str | Path) -> None:
    """Write the HTML report of ``document`` to ``path`` (``flowkit.bench._html``)."""
    module = importlib.import_module("flowkit.bench._html")
    module.write_html(dict(document), path)
