"""Read-only views of the current run: ``from flowkit.runtime import flow_run, task_run``.

Every attribute is read at the moment you access it, from the run the code is in.
Outside a run, attributes have empty values (``None``, ``{}``, ``[]``, ``0``); they never
raise.
"""

from . import flow_run, task_run

__all__ = ["flow_run", "task_run"]
