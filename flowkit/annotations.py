"""Wrappers that change how flowkit treats an argument of a task run.

- ``allow_failure(future)``: run the downstream task even if that upstream run fails.
- ``unmapped(value)``: in ``Task.map``, pass ``value`` whole to every run.
- ``quote(value)``: pass ``value`` as it is, without looking inside it for futures.
"""

from ._engine.lifecycle.inputs import allow_failure as allow_failure
from ._engine.lifecycle.inputs import quote as quote
from ._engine.lifecycle.inputs import unmapped as unmapped

__all__ = ["allow_failure", "quote", "unmapped"]
