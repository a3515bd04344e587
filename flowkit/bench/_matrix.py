"""The matrix of a ``flowkit bench`` run: its axes parsed from the command line, its cells.

A *cell* is one combination measured on its own: a workload on a backend, a runner and a
limit, at one size, done by flowkit or by its *floor* (the same work without flowkit).
Its id, ``workload|backend|runner|limit|n|system``, names it across runs, so that
``--compare`` can match the cells of two runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Literal

import attrs

__all__ = [
    "ASYNC_WORKLOADS",
    "BACKENDS",
    "BUILT_IN",
    "Cell",
    "MatrixError",
    "cells",
    "floor_of",
    "parse_backends",
    "parse_limits",
    "parse_ns",
    "parse_params",
    "parse_runners",
    "parse_workload",
    "runner_parts",
]

System = Literal["flowkit", "floor"]

BUILT_IN = ("cpu", "io-async", "io-sync", "mixed", "fan-out-in", "stream", "service")
"""The built-in workloads (``flowkit.bench._workloads`` says what each does)."""
ASYNC_WORKLOADS = frozenset({"io-async", "service"})
"""Built-ins whose tasks are async: their floor is an anyio task group on the backend."""
BACKENDS = ("asyncio", "trio", "asyncio+uvloop")
_BACKEND_ALIASES = {"uvloop": "asyncio+uvloop"}
RUNNER_KINDS = ("threads", "processes", "dask")
_FLOORS = {
    "threads": "ThreadPoolExecutor",
    "processes": "ProcessPoolExecutor",
    "dask": "dask client.map",
}
_RUNNER = re.compile(r"(?P<kind>[a-z]+):(?P<workers>[^:]*)")


class MatrixError(ValueError):
    """An axis of the matrix given on the command line is not one flowkit bench can run."""


@attrs.frozen
class Cell:
    """One cell of the matrix.

    Attributes:
        workload: A built-in's name, or ``"module:flow"`` for a user's flow.
        system: ``"flowkit"``, or ``"floor"`` for the same work without flowkit.
        floor: The floor implementation this cell is compared with (the one measured,
            for a floor cell); ``None`` for a user's flow, which has no floor.
        backend: ``"asyncio"``, ``"trio"`` or ``"asyncio+uvloop"``.
        runner: ``"threads:8"``, ``"processes:2"`` or ``"dask:2"``.
        limit: How many task runs may run at once (``None``: no limit).
        n: Tasks in the workload; ``None`` for a user's flow that takes no ``n``.
    """

    workload: str
    system: System
    floor: str | None
    backend: str
    runner: str
    limit: int | None
    n: int | None

    @property
    def id(self) -> str:
        """``workload|backend|runner|limit|n|system``: ``cpu|trio|threads:8|none|100|floor``."""
        limit = "none" if self.limit is None else str(self.limit)
        n = "-" if self.n is None else str(self.n)
        return "|".join((self.workload, self.backend, self.runner, limit, n, self.system))

    @property
    def floor_cell(self) -> str | None:
        """The id of the floor cell a flowkit cell is compared with, if it has one."""
        if self.system == "floor" or self.floor is None:
            return None
        return attrs.evolve(self, system="floor").id

    def run_name(self, round: int | None) -> str:
        """Its flow run's name: ``bench cpu asyncio processes:2 limit=4 n=1000 round 2``."""
        limit = "" if self.limit is None else f" limit={self.limit}"
        n = "" if self.n is None else f" n={self.n}"
        when = "warm-up" if round is None else f"round {round}"
        return f"bench {self.workload} {self.backend} {self.runner}{limit}{n} {when}"


def _split(option: str, value: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        raise MatrixError(f"{option} {value!r} has an empty item: give a comma-separated list")
    return list(dict.fromkeys(items))  # in order, once each


def parse_workload(value: str) -> str:
    """A built-in's name, or ``module:flow``.

    Raises:
        MatrixError: It is neither.
    """
    if value in BUILT_IN:
        return value
    module, _, name = value.partition(":")
    if module and name and all(part.isidentifier() for part in (*module.split("."), name)):
        return value
    raise MatrixError(
        f"workload {value!r} is neither a built-in ({', '.join(BUILT_IN)}) nor a flow "
        "given as module:flow (e.g. myproject.flows:nightly)"
    )


def parse_backends(value: str) -> list[str]:
    """``asyncio,trio,asyncio+uvloop`` (``uvloop`` stands for ``asyncio+uvloop``).

    Raises:
        MatrixError: An item is not a backend.
    """
    found: list[str] = []
    for item in _split("--backend", value):
        backend = _BACKEND_ALIASES.get(item, item)
        if backend not in BACKENDS:
            raise MatrixError(
                f"--backend {item!r} is not a backend: give some of {', '.join(BACKENDS)}"
            )
        found.append(backend)
    return found


def parse_runners(value: str) -> list[str]:
    """``threads:8,processes:2,dask:2``: a kind and a worker count each.

    Raises:
        MatrixError: An item is not ``threads:N``, ``processes:N`` or ``dask:N`` with N >= 1.
    """
    found: list[str] = []
    for item in _split("--runner", value):
        match = _RUNNER.fullmatch(item)
        workers = match["workers"] if match else ""
        if match is None or match["kind"] not in RUNNER_KINDS or not _positive(workers):
            raise MatrixError(
                f"--runner {item!r} is not a runner: give threads:N, processes:N or dask:N "
                "with N a whole number of workers >= 1, e.g. threads:8,processes:2"
            )
        found.append(f"{match['kind']}:{int(workers)}")
    return found


def parse_limits(value: str) -> list[int | None]:
    """``none,4,16``: no limit, or how many task runs may run at once.

    Raises:
        MatrixError: An item is neither ``none`` nor a whole number >= 1.
    """
    found: list[int | None] = []
    for item in _split("--limit", value):
        if item.lower() == "none":
            found.append(None)
        elif _positive(item):
            found.append(int(item))
        else:
            raise MatrixError(
                f"--limit {item!r} is not a limit: give none or a whole number >= 1, e.g. none,4,16"
            )
    return found


def parse_ns(value: str) -> list[int]:
    """``100,1000,10000``: tasks per workload.

    Raises:
        MatrixError: An item is not a whole number >= 1.
    """
    found: list[int] = []
    for item in _split("--n", value):
        if not _positive(item.replace("_", "")):
            raise MatrixError(f"--n {item!r} is not a task count: give whole numbers >= 1")
        found.append(int(item.replace("_", "")))
    return found


def parse_params(values: Iterable[str]) -> dict[str, Any]:
    """``k=v`` each; ``v`` is parsed as JSON when it parses (``3``, ``true``,
    ``[1, 2]``), else kept as a string.

    Raises:
        MatrixError: An item has no ``=``, or its name is not an identifier.
    """
    params: dict[str, Any] = {}
    for item in values:
        name, equals, text = item.partition("=")
        if not equals or not name.isidentifier():
            raise MatrixError(f"--param {item!r} is not name=value, e.g. --param size=3")
        try:
            params[name] = json.loads(text)
        except ValueError:
            params[name] = text
    return params


def _positive(text: str) -> bool:
    return text.isdecimal() and int(text) >= 1


def runner_parts(runner: str) -> tuple[str, int]:
    """``"processes:2"`` -> ``("processes", 2)``."""
    kind, _, workers = runner.partition(":")
    return kind, int(workers)


def floor_of(workload: str, runner: str) -> str | None:
    """The floor a built-in's flowkit cell on ``runner`` is compared with; ``None`` for a
    user's flow."""
    if workload not in BUILT_IN:
        return None
    if workload in ASYNC_WORKLOADS:
        return "anyio task group"
    return _FLOORS[runner_parts(runner)[0]]


def cells(
    workload: str,
    backends: Iterable[str],
    runners: Iterable[str],
    limits: Iterable[int | None],
    ns: Iterable[int | None],
) -> list[Cell]:
    """Every cell of the matrix: for each combination, flowkit's cell and its floor's
    (a user's flow has no floor)."""
    found: list[Cell] = []
    for backend in backends:
        for runner in runners:
            for limit in limits:
                for n in ns:
                    floor = floor_of(workload, runner)
                    found.append(Cell(workload, "flowkit", floor, backend, runner, limit, n))
                    if floor is not None:
                        found.append(Cell(workload, "floor", floor, backend, runner, limit, n))
    return found
