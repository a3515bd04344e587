"""The one exception hierarchy of flowkit.

Each class subclasses the builtin it resembles, so ``except RuntimeError`` and friends
keep working in code that does not know flowkit.
"""

from __future__ import annotations

__all__ = [
    "CancelledRun",
    "FlowTimeoutError",
    "FlowkitError",
    "FutureDeadlockError",
    "MissingContextError",
    "TaskTimeoutError",
    "UnfinishedRunError",
    "UpstreamFailedError",
]


class FlowkitError(Exception):
    """Base class of every error flowkit raises itself."""


class MissingContextError(FlowkitError, RuntimeError):
    """Something that needs a flow or task run was used outside of one."""


class UnfinishedRunError(FlowkitError, RuntimeError):
    """The result of a state that is not final was asked for."""


class CancelledRun(FlowkitError):
    """A run was cancelled while a thread was waiting for it."""


class UpstreamFailedError(FlowkitError, RuntimeError):
    """A task run did not start because a run it depends on did not complete."""


class FutureDeadlockError(FlowkitError, RuntimeError):
    """A blocking wait on a future was made on the event loop that must run it."""


class TaskTimeoutError(FlowkitError, TimeoutError):
    """A task run exceeded its ``timeout_seconds`` (or an enclosing run's deadline)."""


class FlowTimeoutError(FlowkitError, TimeoutError):
    """A flow run exceeded its ``timeout_seconds`` (or an enclosing run's deadline)."""
