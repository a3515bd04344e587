"""flowkit's one cattrs converter: cache records and results, and the run store's JSON.

cattrs is imported when a value first needs it (an attrs class, a dataclass, a cache
record), not with flowkit: it is a sizeable part of the start-up of a short program, and
most values a run records are plain JSON already.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import cattrs

__all__ = ["converter", "is_plain", "unstructure"]

_SCALARS = (str, int, float, bool, type(None))


@cache
def converter() -> cattrs.Converter:
    """The converter: datetimes as ISO 8601 text, the rest as cattrs does it."""
    import cattrs  # here, not at the top: see the module docstring

    made = cattrs.Converter()
    made.register_unstructure_hook(datetime, lambda d: d.isoformat())
    made.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
    return made


def is_plain(value: Any) -> bool:
    """Whether ``value`` is JSON as it is: scalars, lists, and dicts with text keys."""
    kind = cast("type[object]", type(value))
    if kind in _SCALARS:
        return True
    if kind is list:
        return all(is_plain(v) for v in cast("list[Any]", value))
    if kind is dict:
        pairs = cast("dict[Any, Any]", value)
        return all(type(k) is str and is_plain(v) for k, v in pairs.items())
    return False


def unstructure(value: Any) -> Any:
    """``value`` as plain data (cattrs for attrs classes, dataclasses, datetimes...)."""
    return value if is_plain(value) else converter().unstructure(value)
