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
from collections.abc import Callable, Generator, Mapping
from typing import Any, cast

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs
import distributed
from distributed import Client

from .._engine.remote import Executor, TaskRunner, serve
from .._engine.runs import Run

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
        cluster_kwargs: Keyword arguments for ``cluster_class``.
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
        return await anyio.to_thread.run_sync(self._connect, owner)

    def _connect(self, owner: str) -> _Dask:
        client_kwargs = dict(self.client_kwargs or {})
        client_kwargs.setdefault("set_as_default", False)
        cluster: Any = None
        try:
            if self.address is not None:
                client_kwargs.setdefault("timeout", "10s")
                client = _dask.Client(self.address, **client_kwargs)
            else:
                cluster = self._cluster_factory()(**dict(self.cluster_kwargs or {}))
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
        return _Dask(client, cluster)

    def _cluster_factory(self) -> Callable[..., Any]:
        found = self.cluster_class
        if found is None:
            return cast("Callable[..., Any]", _dask.LocalCluster)
        if isinstance(found, str):
            module, _, name = found.rpartition(".")
            return cast("Callable[..., Any]", getattr(importlib.import_module(module), name))
        return found


@attrs.define(eq=False)
class _Pending:
    payload: bytes
    key: str
    sent: anyio.Event = attrs.field(factory=anyio.Event)
    future: Any = None


class _Dask:
    """One flow run's connection to a Dask cluster (and the cluster, if it started it)."""

    kind = "Dask"

    def __init__(self, client: Any, cluster: Any) -> None:
        self.client = client
        self.cluster = cluster
        self._batch: list[_Pending] | None = None

    async def run(self, run: Run, payload: bytes) -> bytes:
        pending = _Pending(payload, f"{run.name}-{run.id}-{run.run_count}")
        if self._batch is not None:
            self._batch.append(pending)
        else:
            await self._send_batch(pending)
        await pending.sent.wait()
        future = pending.future
        try:
            reply = await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
            return cast("bytes", reply)
        except BaseException:
            future.cancel()  # cancelled, or past its deadline: the cluster drops it
            raise

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
            pending.sent.set()

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


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
