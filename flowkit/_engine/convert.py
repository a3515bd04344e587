"""flowkit's one cattrs converter: cache records and results, and the records' JSON.

cattrs is imported when a value first needs it (an attrs class, a dataclass, a cache
record), not with flowkit: it is a sizeable part of the start-up of a short program, and
most values a run records are plain JSON already.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "Encoded",
    "converter",
    "is_plain",
    "parameters_json",
    "snapshot",
    "to_json",
    "unstructure",
]

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


def to_json(value: Any) -> str:
    """``value`` as JSON text: structured through cattrs, ``repr`` for what JSON cannot
    hold (cut to 2,000 characters).

    Raises:
        Exception: cattrs cannot structure the value (say, an attrs class whose field
            refuses to be read).
    """
    return _ENCODER.encode(unstructure(value))


def _readable(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 2000 else text[:1997] + "..."


_ENCODER = json.JSONEncoder(default=_readable, ensure_ascii=False)
_log = logging.getLogger("flowkit.engine")
_warned: set[str] = set()


class Encoded(str):
    """A value recorded as the JSON text it had when it was recorded (see ``snapshot``)."""

    __slots__ = ()

    def value(self) -> Any:
        """The recorded value, as plain data."""
        return json.loads(self)


def snapshot(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` as they are now, for a record: scalars as they are, anything else
    ``Encoded`` as its JSON text, made now, so that a body that mutates its argument
    does not change what was recorded as its input (the text is what the run store
    writes: a value is encoded once). A value that cannot be encoded is recorded as a
    placeholder that says so (with a WARNING, once per kind of failure).
    """
    taken: dict[str, Any] = {}
    for name, value in values.items():
        if type(value) in _SCALARS:
            taken[name] = value
            continue
        try:
            taken[name] = Encoded(to_json(value))
        except Exception as exc:
            kind = type(exc).__name__
            if kind not in _warned:
                _warned.add(kind)
                _log.warning(
                    "could not record the value of parameter %r as it was (%s: %s); a "
                    "placeholder is recorded instead, and from now on without a warning",
                    name, kind, exc,
                )  # fmt: skip
            taken[name] = f"<unrecorded: could not be encoded: {kind}: {exc}>"
    return taken


def parameters_json(recorded: Mapping[str, Any]) -> str:
    """A ``snapshot`` as one JSON object: its ``Encoded`` values as they were encoded."""
    parts = [
        f"{_ENCODER.encode(name)}: {value if type(value) is Encoded else _ENCODER.encode(value)}"
        for name, value in recorded.items()
    ]
    return "{" + ", ".join(parts) + "}"
