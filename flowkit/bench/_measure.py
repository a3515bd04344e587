"""What a cell process of ``flowkit bench`` does: set up, warm up, time one run, read back
its records.

``measure(spec)`` is the target ``python -m flowkit.bench._cell`` calls. Before the
timed part it starts what the cell needs and both systems need alike (a Dask cluster,
with the workload's module imported on its workers) and warms the process up (a flowkit
cell runs a one-task flow on its backend: the event loop's imports, the run store opened;
a floor cell starts its backend's loop once). The timed part is the workload itself: the
flow call (for a service, every request's), or the floor's pool from start to shutdown.
A flowkit cell then reads its flow runs back from the store for their latencies and
phases.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Awaitable, Callable, Generator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio

from .. import concurrency
from ..context import tags
from ..flows import Flow, flow
from ..states import StateType
from ..store import StateRecord, Store, flush, is_enabled
from ..task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from ..tasks import task
from . import _workloads
from ._matrix import Cell, runner_parts

__all__ = ["LATENCY_SAMPLES", "LIMIT_TAG", "load_flow", "measure", "phases"]

LIMIT_TAG = "flowkit-bench"
"""The tag of a cell's task runs when it has a limit: the limit is ``tag:flowkit-bench``."""
LATENCY_SAMPLES = 2000


@task(name="bench-warm-up-task")
def _nothing() -> None:
    pass


@flow(name="bench-warm-up", flow_run_name="bench warm-up")
def _warm_up() -> None:
    _nothing()


@flow(name="bench-warm-up", flow_run_name="bench warm-up")
async def _async_warm_up() -> None:
    await _nothing.submit()


def load_flow(workload: str) -> Flow[..., Any]:
    """A built-in's flow, or the user's flow named ``module:flow``.

    Raises:
        ImportError: The module cannot be imported.
        TypeError: The name is not a flowkit flow.
    """
    if (builtin := _workloads.WORKLOADS.get(workload)) is not None:
        return builtin.flow
    module, _, name = workload.partition(":")
    found = getattr(importlib.import_module(module), name, None)
    if not isinstance(found, Flow):
        raise TypeError(
            f"{workload} is {found!r}, not a flowkit flow: decorate it with @flow, or give "
            "another module:flow"
        )
    return found  # pyright: ignore[reportUnknownVariableType]


def _run_async(fn: Callable[[], Any], backend: str) -> Any:
    if backend == "asyncio+uvloop":
        return anyio.run(fn, backend="asyncio", backend_options={"use_uvloop": True})
    return anyio.run(fn, backend=backend)


@contextmanager
def _cluster(cell: Cell) -> Generator[str | None]:
    """For a ``dask:N`` cell: a local cluster of N single-threaded worker processes,
    with flowkit's workloads imported on each; its scheduler's address."""
    kind, workers = runner_parts(cell.runner)
    if kind != "dask":
        yield None
        return
    # The dask extra, imported only when asked for; typed in part: used as Any.
    distributed: Any = importlib.import_module("distributed")
    with (
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        module = _workloads.__name__ if cell.workload in _workloads.WORKLOADS else (
            cell.workload.partition(":")[0]
        )  # fmt: skip
        client.run(importlib.import_module, module)
        yield str(cluster.scheduler_address)


def _task_runner(runner: str, address: str | None) -> TaskRunner:
    kind, workers = runner_parts(runner)
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "processes":
        return ProcessPoolTaskRunner(max_workers=workers)
    from ..task_runners.dask import DaskTaskRunner  # the dask extra

    return DaskTaskRunner(address=address)


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one round of the cell in ``spec`` (``Cell`` fields, ``round`` and ``params``).

    Returns:
        ``wall_s``, ``latencies_s``, ``phases_s``, ``flow_run_id`` and ``n`` (the task
        runs of a user's flow that takes no ``n``).
    """
    cell = Cell(**spec["cell"])
    with _cluster(cell) as address:
        if cell.system == "floor":
            return _floor(cell, address)
        return _flowkit(cell, spec["round"], spec["params"], address)


def _floor(cell: Cell, address: str | None) -> dict[str, Any]:
    assert cell.n is not None
    latencies: list[float] = []
    workload = _workloads.WORKLOADS[cell.workload]
    if workload.floor is None:
        _run_async(partial(anyio.sleep, 0), cell.backend)  # the loop's imports
        run = partial(_run_async, partial(workload.async_floor, cell.n, cell.limit,
                                          latencies), cell.backend)  # fmt: skip
        started = time.perf_counter()
        run()
        wall = time.perf_counter() - started
    else:
        kind, workers = runner_parts(cell.runner)
        started = time.perf_counter()
        with _workloads.floor_pool(kind, workers, cell.limit, address) as pool:
            workload.floor(cell.n, pool)
        wall = time.perf_counter() - started
        latencies = pool.latencies
    return {"wall_s": wall, "latencies_s": _sample(latencies), "phases_s": None,
            "flow_run_id": None, "n": cell.n}  # fmt: skip


def _flowkit(
    cell: Cell, round: int | None, params: dict[str, Any], address: str | None
) -> dict[str, Any]:
    target = load_flow(cell.workload)
    builtin = _workloads.WORKLOADS.get(cell.workload)
    name = cell.run_name(round)
    arguments = dict(params)
    if cell.n is not None:
        arguments["n"] = cell.n
    chosen = target.with_options(
        task_runner=_task_runner(cell.runner, address),
        flow_run_name=name,
        backend=None if target.is_async else cell.backend,  # type: ignore[arg-type]
    )
    requests: list[float] = []  # a service's request latencies
    if target.is_async:
        _run_async(_async_warm_up, cell.backend)
        work: Callable[[], Awaitable[object]] = partial(chosen, **arguments)
        if builtin is not None and builtin.service:
            # Its flow is a request handler: every request is a flow run named ``name``.
            work = partial(_workloads.serve, chosen, arguments["n"], requests)
        call: Callable[[], object] = partial(_run_async, work, cell.backend)
    else:
        _warm_up.with_options(backend=cell.backend)()  # type: ignore[arg-type]
        call = partial(chosen, **arguments)
    with ExitStack() as stack:
        if cell.limit is not None:
            concurrency.local(f"tag:{LIMIT_TAG}", limit=cell.limit)
            stack.enter_context(tags(LIMIT_TAG))
        since = datetime.now(UTC)
        started = time.perf_counter()
        call()
        wall = time.perf_counter() - started
        returned = time.time()
    found = _from_store(target.name, name, since, returned)
    if requests:
        found["latencies_s"] = _sample(requests)
    n = cell.n if cell.n is not None else found["task_runs"]
    return {"wall_s": wall, **found, "n": n}


def _from_store(flow_name: str, run_name: str, since: datetime, returned: float) -> dict[str, Any]:
    """From the run store: the flow runs named ``run_name`` that this process started
    since ``since`` (the round's one, or a service's one per request), the first one's
    id, and their task runs' latencies and phases, summed (``recording``: from the end
    of the last one to ``returned``)."""
    nothing: dict[str, Any] = {
        "flow_run_id": None,
        "latencies_s": [],
        "phases_s": None,
        "task_runs": None,
    }
    if not is_enabled():
        return nothing
    flush()
    with Store.open() as store:
        mine = [
            r.id for r in store.flow_runs(flow=flow_name, since=since, limit=None)
            if r.name == run_name and r.pid == os.getpid()
        ]  # fmt: skip
        trees = {run_id: store.tree_states(run_id) for run_id in reversed(mine)}  # oldest first
    if not trees:
        return nothing
    each = [phases(states, run_id, returned) for run_id, states in trees.items()]
    return {
        "flow_run_id": next(iter(trees)),
        "latencies_s": _sample([latency for one in each for latency in one["latencies_s"]]),
        "phases_s": {
            "waiting": sum(one["phases_s"]["waiting"] for one in each),
            "running": sum(one["phases_s"]["running"] for one in each),
            "recording": min(one["phases_s"]["recording"] for one in each),
        },
        "task_runs": sum(one["task_runs"] for one in each),
    }


def phases(
    states: dict[str, list[StateRecord]], flow_run_id: str, returned: float
) -> dict[str, Any]:
    """Latencies and phases of a flow run's task runs, from their states.

    For each task run: *waiting*, from its creation to its first Running state (waiting
    for upstream results, a limit's slot), plus the time its attempts waited for a
    worker thread; *running*, from its first Running state to its final state, less
    those waits; its latency, from its creation to its final state. *Recording* is the
    flow run's own: from its final state to its call's return, while its records were
    committed to the store.
    """
    waiting = running = 0.0
    latencies: list[float] = []
    for run_id, history in states.items():
        if run_id == flow_run_id or not history or not StateType(history[-1].type).is_final:
            continue
        created, end = history[0].timestamp, history[-1].timestamp
        started = next((s.timestamp for s in history if s.type == "RUNNING"), end)
        thread_wait = sum(s.thread_wait or 0.0 for s in history)
        waiting += _seconds(started, created) + thread_wait
        running += _seconds(end, started) - thread_wait
        latencies.append(_seconds(end, created))
    flow_end = states[flow_run_id][-1].timestamp if states.get(flow_run_id) else None
    recording = max(0.0, returned - flow_end.timestamp()) if flow_end is not None else 0.0
    return {
        "latencies_s": _sample(latencies),
        "phases_s": {"waiting": waiting, "running": running, "recording": recording},
        "task_runs": len(latencies),
    }


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def _sample(values: list[float]) -> list[float]:
    """At most ``LATENCY_SAMPLES`` of ``values``, evenly spaced, in their order."""
    if len(values) <= LATENCY_SAMPLES:
        return values
    step = len(values) / LATENCY_SAMPLES
    return [values[int(i * step)] for i in range(LATENCY_SAMPLES)]
