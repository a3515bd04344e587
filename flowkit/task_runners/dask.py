"""``DaskTaskRunner``: a flow's submitted task runs on a Dask cluster (extra ``flowkit[dask]``).

The flow keeps each run's lifecycle (states, retries, deadlines, caching, hooks) in its
own process; only bodies go to the cluster, as ``distributed`` tasks, and come back
with their log records. What a body uses by reference (its module, the modules it
imports) must be importable on the workers; functions defined in ``__main__`` or a
notebook travel whole.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import threading
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any, cast

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs
import distributed
from distributed import Client

from .._engine.definition.task_runner import BodyRun, Executor, TaskRunner
from .._engine.execution.remote import serve
from .._engine.loops import call_soon_threadsafe
from ..exceptions import WorkerCrashedError

__all__ = ["DaskTaskRunner", "get_dask_client"]

# distributed is typed only in part: its objects are used as Any.
_dask = cast("Any", distributed)


def _mapping(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise TypeError(
            f"{attribute.name} must be a dict of keyword arguments or None, got {value!r}"
        )


def _address(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise TypeError(
            f"{attribute.name} must be a scheduler address such as 'tcp://10.0.0.5:8786', "
            f"or None, got {value!r}"
        )


def _cluster_class(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str) and not callable(value):
        raise TypeError(
            f"{attribute.name} must be a cluster class, its import path as a str "
            f'("dask_kubernetes.KubeCluster"), or None, got {value!r}'
        )


@attrs.frozen
class DaskTaskRunner(TaskRunner):
    """Submitted task bodies on a Dask cluster, through ``dask.distributed``.

    Each flow run connects as it starts and closes what it started as it ends: a
    temporary ``LocalCluster`` by default, the scheduler at ``address``, or a cluster of
    ``cluster_class`` (a Kubernetes or cloud one, for example).

    Args:
        address: A running scheduler's address (``"tcp://10.0.0.5:8786"``); the
            cluster options must then be left out.
        cluster_class: The cluster to start when there is no ``address``: a class, or
            its import path as a string. ``None``: ``distributed.LocalCluster``.
        cluster_kwargs: Keyword arguments for ``cluster_class``. A ``LocalCluster``
            (or subclass) listens on loopback only: its scheduler and workers on
            127.0.0.1 (Dask's default), its dashboard at ``127.0.0.1:8787`` unless
            these give a ``dashboard_address``.
        adapt_kwargs: If given, the cluster scales itself with ``cluster.adapt(**adapt_kwargs)``
            (``minimum``, ``maximum``).
        client_kwargs: Keyword arguments for ``distributed.Client``.

    Raises:
        TypeError: An option has the wrong type.
        ValueError: ``address`` was given with cluster options.
    """

    address: str | None = attrs.field(default=None, validator=_address)
    cluster_class: str | Callable[..., Any] | None = attrs.field(
        default=None, validator=_cluster_class
    )
    cluster_kwargs: Mapping[str, Any] | None = attrs.field(default=None, validator=_mapping)
    adapt_kwargs: Mapping[str, Any] | None = attrs.field(default=None, validator=_mapping)
    client_kwargs: Mapping[str, Any] | None = attrs.field(default=None, validator=_mapping)

    def __attrs_post_init__(self) -> None:
        if self.address is not None and (
            self.cluster_class is not None or self.cluster_kwargs or self.adapt_kwargs
        ):
            raise ValueError(
                f"DaskTaskRunner(address={self.address!r}) connects to a running scheduler: "
                "leave out cluster_class, cluster_kwargs and adapt_kwargs, or leave out address"
            )

    async def executor(self, owner: str) -> Executor:
        """Connect one run of the flow ``owner`` to its cluster (started if need be).

        Raises:
            OSError: The scheduler cannot be reached.
        """
        call_soon = call_soon_threadsafe(anyio.lowlevel.current_token())
        return await anyio.to_thread.run_sync(self._connect, owner, call_soon)

    def _connect(self, owner: str, call_soon: Callable[..., object]) -> _Dask:
        client_kwargs = dict(self.client_kwargs or {})
        client_kwargs.setdefault("set_as_default", False)
        cluster: Any = None
        try:
            if self.address is not None:
                client_kwargs.setdefault("timeout", "10s")
                client = _dask.Client(self.address, **client_kwargs)
            else:
                factory = self._cluster_factory()
                kwargs = dict(self.cluster_kwargs or {})
                if isinstance(factory, type) and issubclass(factory, _dask.LocalCluster):
                    kwargs = _local_cluster_kwargs(kwargs)
                cluster = factory(**kwargs)
                if self.adapt_kwargs is not None:
                    cluster.adapt(**self.adapt_kwargs)
                client = _dask.Client(cluster, **client_kwargs)
        except OSError as exc:
            if cluster is not None:
                cluster.close()
            where = self.address if self.address is not None else "the cluster it started"
            raise OSError(
                f"{owner}: DaskTaskRunner cannot reach a Dask scheduler at {where}: {exc}; "
                "check the address and that the scheduler is running (dask scheduler)"
            ) from None
        return _Dask(client, cluster, call_soon)

    def _cluster_factory(self) -> Callable[..., Any]:
        found = self.cluster_class
        if found is None:
            return cast("Callable[..., Any]", _dask.LocalCluster)
        if isinstance(found, str):
            module, _, name = found.rpartition(".")
            return cast("Callable[..., Any]", getattr(importlib.import_module(module), name))
        return found


_LOCAL_DASHBOARD = "127.0.0.1:8787"
"""Where the dashboard of a ``LocalCluster`` flowkit starts listens, unless told."""


def _local_cluster_kwargs(given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` with the scheduler's web server on loopback, unless ``given`` says where.

    Dask puts a ``LocalCluster``'s scheduler and workers on 127.0.0.1 already, but the
    scheduler's web server (the dashboard, and routes such as ``/json`` and
    ``/metrics``) on every interface: ``:8787`` by default, and even with
    ``dashboard_address=None``, which turns the dashboard off and keeps the routes.
    Workers in the flow's own process (``processes=False``) talk in memory, and their
    web servers, having no host to follow, listen on every interface too. A temporary
    cluster for one flow run has no business on the network. An address in ``given``
    (or in its ``scheduler_kwargs``, which Dask merges last) wins.
    """
    kwargs = dict(given)
    if kwargs.get("processes") is False:  # Dask gives no other way to place their routes
        kwargs.setdefault("worker_dashboard_address", "127.0.0.1:0")
    if "dashboard_address" in kwargs and kwargs["dashboard_address"] is None:
        scheduler = dict(kwargs.get("scheduler_kwargs") or {})
        scheduler.setdefault("dashboard_address", "127.0.0.1:0")  # no dashboard to find
        kwargs["scheduler_kwargs"] = scheduler
    else:
        kwargs.setdefault("dashboard_address", _LOCAL_DASHBOARD)
    return kwargs


@attrs.define(eq=False)
class _Pending:
    """A body on its way to the cluster and back."""

    name: str  # the run's
    payload: bytes
    key: str
    sent: anyio.Event = attrs.field(factory=anyio.Event)
    done: anyio.Event = attrs.field(factory=anyio.Event)
    future: Any = None
    reply: bytes | BaseException = b""


LINGER = 0.02
"""Seconds a Dask reply may wait to go to its run with others, when replies come fast."""


class _Dask:
    """One flow run's connection to a Dask cluster (and the cluster, if it started it).

    Bodies go out in batches (``_send_batch``); their replies come back in batches too:
    one thread, while there are bodies out, takes the futures as they finish, fetches
    the values of those that finished together with one ``client.gather``, and hands
    them to the flow's loop with one callback.
    """

    kind = "Dask"

    def __init__(self, client: Any, cluster: Any, call_soon: Callable[..., object]) -> None:
        self.client = client
        self.cluster = cluster
        self._call_soon = call_soon  # the flow's loop, from any thread
        self._batch: list[_Pending] | None = None
        self._finished = _dask.as_completed(loop=client.loop)
        self._pending: dict[str, _Pending] = {}  # by key: sent, and not yet back
        self._lock = threading.Lock()  # guards _collector
        self._collector: threading.Thread | None = None

    async def run(self, run: BodyRun, payload: bytes) -> bytes:
        pending = _Pending(run.name, payload, f"{run.name}-{run.id}-{run.run_count}")
        if self._batch is not None:
            self._batch.append(pending)
        else:
            await self._send_batch(pending)
        await pending.sent.wait()
        try:
            await pending.done.wait()
        except BaseException:
            pending.future.cancel()  # cancelled, or past its deadline: the cluster drops it
            raise
        if isinstance(pending.reply, BaseException):
            raise pending.reply
        return pending.reply

    async def _send_batch(self, first: _Pending) -> None:
        # Each submit costs the scheduler a graph update: the runs that reach this point
        # in the same pass of the event loop go to it together, as one client.map.
        batch = self._batch = [first]
        with anyio.CancelScope(shield=True):  # the others wait for this batch to be sent
            await anyio.lowlevel.checkpoint()
        self._batch = None
        futures = self.client.map(
            _serve, [p.payload for p in batch], key=[p.key for p in batch], pure=False
        )
        for pending, future in zip(batch, futures, strict=True):
            pending.future = future
            self._pending[future.key] = pending
            pending.sent.set()
        self._finished.update(futures)
        with self._lock:
            if self._collector is None:
                self._collector = threading.Thread(
                    target=self._collect, name="flowkit-dask-replies", daemon=True
                )
                self._collector.start()

    def _collect(self) -> None:
        """In a thread: hand the replies to the loop as they come, until none are out.

        Each hand-over costs a fetch from the cluster and a wake of the flow's threads,
        whatever its size. When replies come fast (the last hand-over is less than
        ``LINGER`` seconds old) and more bodies are still out, the thread waits out the
        rest of that time and takes what finished meanwhile too: at most one hand-over
        per ``LINGER`` under load. The last reply out, or one that comes after a quiet
        spell, goes at once.
        """
        last = -math.inf
        while True:
            for futures in self._finished.batches():
                wait = last + LINGER - time.monotonic()
                if wait > 0 and not self._finished.is_empty():
                    time.sleep(wait)
                    futures += self._finished.next_batch(block=False)
                self._call_soon(self._deliver, self._fetch(futures))
                last = time.monotonic()
            with self._lock:
                if self._finished.is_empty():  # nothing sent since the last batch
                    self._collector = None
                    return

    def _fetch(self, futures: list[Any]) -> list[tuple[str, bytes | BaseException]]:
        """The replies of ``futures`` (finished, failed or cancelled), by key."""
        finished = [future for future in futures if future.status == "finished"]
        values: list[bytes | BaseException]
        try:
            values = self.client.gather(finished) if finished else []
        except Exception:  # a value was lost meanwhile: each on its own
            values = [_outcome(future) for future in finished]
        replies = list(zip((future.key for future in finished), values, strict=True))
        return replies + [(f.key, _outcome(f)) for f in futures if f.status != "finished"]

    def _deliver(self, replies: list[tuple[str, bytes | BaseException]]) -> None:
        """On the loop: wake the runs whose replies came."""
        for key, reply in replies:
            pending = self._pending.pop(key, None)
            if pending is None:
                continue
            if isinstance(reply, BaseException):  # the body never raises: the cluster does
                pending.reply = WorkerCrashedError(
                    f"task run {pending.name!r}: the Dask cluster lost its work: "
                    f"{type(reply).__name__}: {reply}; give the task retries to try again, "
                    "and look at the workers' logs"
                )
            else:
                pending.reply = reply
            pending.done.set()

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        self._finished.clear()  # the collector, if any, stops
        collector = self._collector
        if collector is not None:
            collector.join()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _outcome(future: Any) -> bytes | BaseException:
    """The reply of ``future``, or what the cluster says went wrong."""
    if future.status == "cancelled":  # by the flow (nobody waits then), or the cluster
        return RuntimeError("the future was cancelled")
    try:
        return cast("bytes", future.result())
    except Exception as exc:
        return exc


def _serve(payload: bytes) -> bytes:
    """On a Dask worker: ``serve``, with the worker's address in the reply."""
    return serve(payload, f"dask {_dask.get_worker().address}")


@contextlib.contextmanager
def get_dask_client(timeout: float | None = None) -> Generator[Client, None, None]:
    """Inside a task run on a ``DaskTaskRunner``: a client of its cluster, for Dask work
    of its own (``client.map``, dask arrays and dataframes with ``.compute()``).

    Use it as ``with get_dask_client() as client: ...``; the worker leaves its slot to
    others while the block waits.

    Args:
        timeout: Seconds to wait for the connection; ``None``: Dask's default.

    Raises:
        ValueError: Called outside a task run on a Dask worker.
    """
    try:
        with _dask.worker_client(timeout=timeout, separate_thread=True) as client:
            yield client
    except ValueError as exc:
        if "No worker found" not in str(exc) and "no worker" not in str(exc).lower():
            raise
        raise ValueError(
            "get_dask_client() works inside a task run on a DaskTaskRunner; elsewhere, "
            "create a distributed.Client yourself"
        ) from None
