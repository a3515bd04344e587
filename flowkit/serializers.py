"""Serializers: turn a value into bytes and back, as flowkit writes cached results.

``JSONSerializer`` writes exactly what a task with ``result_serializer="json"`` writes to
its result file (JSON through cattrs), and ``PickleSerializer`` what one with
``result_serializer="pickle"`` writes, so a result file written by the engine is read by
``loads`` and the other way round.

Any object with ``dumps(value) -> bytes`` and ``loads(bytes)`` (a ``ResultSerializer``)
may be given as ``result_serializer``.
"""

from __future__ import annotations

import json
import pickle
from typing import Any, ClassVar, Literal

import attrs

from ._engine.results.storage import ResultSerializer, cloudpickle, dump

__all__ = ["CloudPickleSerializer", "JSONSerializer", "PickleSerializer", "ResultSerializer"]


@attrs.frozen
class JSONSerializer:
    """Values as JSON: plain data, and attrs classes or dataclasses through cattrs.

    ``dumps`` refuses a value that would not read back the same (a set, a tuple, an
    object JSON cannot hold), rather than write something else.
    """

    type: ClassVar[Literal["json"]] = "json"

    def dumps(self, obj: Any) -> bytes:
        """Return ``obj`` as UTF-8 JSON.

        Raises:
            TypeError: ``obj`` cannot be written as JSON that reads back equal.
        """
        try:
            return dump(obj, "json")[1]
        except TypeError:
            raise TypeError(
                f"JSONSerializer cannot write a {type(obj).__name__} value so that it reads "
                "back equal; use PickleSerializer for it"
            ) from None

    def loads(self, blob: bytes) -> Any:
        """Return the value in ``blob``, as plain JSON data (dicts, lists, scalars).

        Raises:
            ValueError: ``blob`` is not JSON (``json.JSONDecodeError``).
        """
        return json.loads(blob)


@attrs.frozen
class PickleSerializer:
    """Values as stdlib pickles: any picklable value, read back as itself.

    Unpickling runs code named in the data: ``loads`` only bytes your own program wrote.
    """

    type: ClassVar[Literal["pickle"]] = "pickle"

    def dumps(self, obj: Any) -> bytes:
        """Return ``obj`` pickled with the highest protocol.

        Raises:
            pickle.PicklingError: ``obj`` cannot be pickled (``TypeError`` or
                ``AttributeError`` for some objects, as ``pickle.dumps`` raises them).
        """
        return dump(obj, "pickle")[1]

    def loads(self, blob: bytes) -> Any:
        """Return the value pickled in ``blob``.

        Raises:
            pickle.UnpicklingError: ``blob`` is not a pickle.
        """
        return pickle.loads(blob)


@attrs.frozen
class CloudPickleSerializer:
    """Values as cloudpickle pickles: also functions, lambdas and classes defined in
    ``__main__`` or inside functions, by value. ``result_serializer="cloudpickle"`` is
    this serializer, and it reads what the default writes for a value JSON cannot hold.

    Unpickling runs code named in the data: ``loads`` only bytes your own program wrote.
    """

    type: ClassVar[Literal["cloudpickle"]] = "cloudpickle"

    def __attrs_post_init__(self) -> None:
        cloudpickle()  # refuse to be made without it, not at the first result

    def dumps(self, obj: Any) -> bytes:
        """Return ``obj`` cloudpickled.

        Raises:
            pickle.PicklingError: ``obj`` cannot be pickled.
        """
        return dump(obj, "cloudpickle")[1]

    def loads(self, blob: bytes) -> Any:
        """Return the value cloudpickled in ``blob``.

        Raises:
            pickle.UnpicklingError: ``blob`` is not a pickle.
        """
        return cloudpickle().loads(blob)
