"""Prefect's ``prefect.utilities.annotations`` path: ``allow_failure``, ``quote``, ``unmapped``.

The same classes as ``flowkit.allow_failure`` and friends (see ``flowkit.annotations``),
and ``BaseAnnotation``, the class they share.
"""

from .._engine.lifecycle.inputs import BaseAnnotation as BaseAnnotation
from ..annotations import allow_failure as allow_failure
from ..annotations import quote as quote
from ..annotations import unmapped as unmapped

__all__ = ["BaseAnnotation", "allow_failure", "quote", "unmapped"]
