"""Concurrency and rate limits, in this process or across processes, with no server.

``flowkit.concurrency.asyncio`` and ``flowkit.concurrency.sync`` hold ``concurrency``
(a context manager that holds slots of named limits) and ``rate_limit`` (which takes
slots that decay), under Prefect's names and arguments.

This module defines the limits and looks at them. ``define`` records a limit in the run
store (``$FLOWKIT_HOME/runs.db``): it holds across every process that uses the same
``FLOWKIT_HOME``, and the ``flowkit limits`` command sees it. ``local`` keeps a limit in
this process's memory: taking a free slot does no I/O and costs microseconds. A limit of
this process shadows a store limit of the same name.

A limit named ``tag:<tag>`` bounds the task runs tagged ``<tag>``: each holds one slot
while it runs, and waits for one (in state ``AwaitingConcurrencySlot``) when all are
taken.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from ..exceptions import AcquireConcurrencySlotTimeoutError as AcquireConcurrencySlotTimeoutError
from ..exceptions import ConcurrencySlotAcquisitionError as ConcurrencySlotAcquisitionError

if _typing.TYPE_CHECKING:
    from ._limits import TAG_PREFIX as TAG_PREFIX
    from ._limits import LeaseRecord as LeaseRecord
    from ._limits import LimitInfo as LimitInfo
    from ._limits import LimitRecord as LimitRecord
    from ._limits import define as define
    from ._limits import delete as delete
    from ._limits import inspect as inspect
    from ._limits import local as local
    from ._limits import ls as ls
    from ._limits import reset as reset

__all__ = [
    "TAG_PREFIX",
    "AcquireConcurrencySlotTimeoutError",
    "ConcurrencySlotAcquisitionError",
    "LeaseRecord",
    "LimitInfo",
    "LimitRecord",
    "define",
    "delete",
    "inspect",
    "local",
    "ls",
    "reset",
]


def __getattr__(name: str) -> _typing.Any:
    # Every flow and task imports this package (for its store's limits, through
    # ``._store``); the definition functions are imported when first used, so that
    # those who never define a limit do not pay the ~1.6 ms they cost.
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value: _typing.Any = getattr(_importlib.import_module(f"{__name__}._limits"), name)
    globals()[name] = value  # from now on, a plain attribute
    return value
