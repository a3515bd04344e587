"""Concurrency and rate limits, in this process or across processes, with no server.

``flowkit.concurrency.asyncio`` and ``flowkit.concurrency.sync`` hold ``concurrency``
(a context manager that holds slots of named limits) and ``rate_limit`` (which takes
slots that decay), under Prefect's names and arguments. Limits are defined with
``flowkit.limits``.
"""

from ..exceptions import AcquireConcurrencySlotTimeoutError as AcquireConcurrencySlotTimeoutError
from ..exceptions import ConcurrencySlotAcquisitionError as ConcurrencySlotAcquisitionError

__all__ = ["AcquireConcurrencySlotTimeoutError", "ConcurrencySlotAcquisitionError"]
