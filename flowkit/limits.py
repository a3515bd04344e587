"""Defining concurrency and rate limits: in the run store, or in this process only.

``define`` records a limit in the run store (``$FLOWKIT_HOME/runs.db``): it holds across
every process that uses the same ``FLOWKIT_HOME``, and the ``flowkit limits`` command
sees it. ``local`` keeps a limit in this process's memory: taking a free slot does no I/O
and costs microseconds. A limit of this process shadows a store limit of the same name.

A limit named ``tag:<tag>`` bounds the task runs tagged ``<tag>``: each holds one slot
while it runs, and waits for one (in state ``AwaitingConcurrencySlot``) when all are
taken.
"""

from __future__ import annotations

from .concurrency._limits import TAG_PREFIX as TAG_PREFIX
from .concurrency._limits import LeaseRecord as LeaseRecord
from .concurrency._limits import LimitInfo as LimitInfo
from .concurrency._limits import LimitRecord as LimitRecord
from .concurrency._limits import define as define
from .concurrency._limits import delete as delete
from .concurrency._limits import inspect as inspect
from .concurrency._limits import local as local
from .concurrency._limits import ls as ls
from .concurrency._limits import reset as reset

__all__ = [
    "TAG_PREFIX",
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
