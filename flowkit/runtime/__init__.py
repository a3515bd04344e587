"""Read-only views of the current run: ``from flowkit.runtime import flow_run, task_run``.

Every attribute is read at the moment you access it, from the run the code is in.
Outside a run, attributes have empty values (``None``, ``{}``, ``[]``, ``0``); they never
raise.

``abandoned_threads()`` counts the worker threads whose runs passed their deadline and
that have not stopped yet (see the timeouts page of the docs).
"""

from .._engine.threadstop import abandoned_threads as abandoned_threads
from . import flow_run, task_run

__all__ = ["abandoned_threads", "flow_run", "task_run"]
