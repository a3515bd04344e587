"""Cached results: keys, records on disk, an in-process memo, and single flight.

A cache entry is two files under ``$FLOWKIT_HOME``: the result, in the result storage
directory (``results/`` by default), and a small JSON record in ``cache/`` that names the
key, the task, when it expires and where its result is. Both are written atomically
(a temporary file, then ``os.replace``), result first: a record never points at a
result that is not whole. A record or result that cannot be read is a miss, with a
WARNING, never a wrong value. Pickled results are read only from a result storage
directory, through a record flowkit wrote.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path, PurePath
from typing import Any, Literal, cast
from uuid import UUID

import attrs

from . import clock
from .convert import converter, unstructure

__all__ = [
    "CacheRecord",
    "Lookup",
    "ResultStore",
    "Unencodable",
    "canonical",
    "digest",
    "home",
    "now",
]

_log = logging.getLogger("flowkit.cache")

Serializer = Literal["json", "pickle"]


class Unencodable(TypeError):
    """A value has no canonical encoding, so no cache key can be made from it."""


def now() -> datetime:
    """The cache's clock (UTC): virtual under ``flowkit.testing.virtual_clock``."""
    return clock.now()


def home() -> Path:
    """``FLOWKIT_HOME``, default ``~/.flowkit``."""
    return Path(os.environ.get("FLOWKIT_HOME") or Path("~", ".flowkit")).expanduser()


def canonical(value: Any) -> Any:
    """A JSON value that is the same for equal inputs in any process, on any machine.

    Dict keys are sorted (order does not matter), sets are sorted, and tuples, sets,
    bytes and other non-JSON types are tagged so that they differ from the JSON value
    that looks like them. attrs classes and dataclasses go through cattrs.

    Raises:
        Unencodable: The value (or a part of it) has no canonical form.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value else {"__float__": "nan"}  # NaN != NaN
    if isinstance(value, list | tuple):
        items = [canonical(v) for v in cast("Iterable[Any]", value)]
        return items if isinstance(value, list) else {"__tuple__": items}
    if isinstance(value, dict):
        pairs = cast("Mapping[Any, Any]", value)
        return canonical_dict({k: canonical(v) for k, v in pairs.items()})
    if isinstance(value, set | frozenset):
        members = cast("Iterable[Any]", value)
        return {"__set__": sorted(json.dumps(canonical(v), sort_keys=True) for v in members)}
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": bytes(value).hex()}
    if isinstance(value, datetime | timedelta | UUID | Decimal | PurePath):
        return {f"__{type(value).__name__}__": str(value)}
    if isinstance(value, Enum):
        return {"__enum__": f"{type(value).__qualname__}.{value.name}"}
    kind = cast("type[object]", type(value))
    if attrs.has(kind) or hasattr(kind, "__dataclass_fields__"):
        return {f"__{kind.__qualname__}__": canonical(converter().unstructure(value))}
    raise Unencodable(f"{type(value).__name__} values have no canonical encoding")


def canonical_dict(encoded: dict[Any, Any]) -> Any:
    """The canonical form of a dict whose values are canonical already."""
    items = [(_key_text(k), v) for k, v in encoded.items()]
    return {"__dict__": sorted(items)}


def _key_text(key: Any) -> str:
    if isinstance(key, str):  # what json.dumps gives for a str, without the call
        return json.encoder.encode_basestring_ascii(key)
    return json.dumps(canonical(key), sort_keys=True)


def digest(*parts: Any) -> str:
    """A hex SHA-256 of the canonical encoding of ``parts``.

    Raises:
        Unencodable: A part has no canonical form.
    """
    return digest_canonical(canonical(list(parts)))


def digest_canonical(encoded: Any) -> str:
    """A hex SHA-256 of a value already in canonical form."""
    return hashlib.sha256(_ENCODER.encode(encoded).encode()).hexdigest()


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


@attrs.frozen
class CacheRecord:
    """What ``cache/<task key>/<key digest>.json`` holds."""

    key: str
    task_key: str
    task_name: str
    run_id: str
    created: datetime
    expires: datetime | None
    serializer: str
    result: str  # the result file's path


@attrs.frozen
class Lookup:
    """The outcome of looking a key up.

    Attributes:
        hit: Whether a usable result was found.
        value: The result, on a hit.
        record: The record found, if any (also on an expired miss).
        reason: Why it is a miss, or how it hit.
    """

    hit: bool
    value: Any = None
    record: CacheRecord | None = None
    reason: str = ""


def _write_atomic(path: Path, data: bytes) -> None:
    import tempfile  # here, not at the top: only runs that cache write files

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_result(value: Any, serializer: Serializer | None) -> tuple[str, bytes]:
    """Serialize ``value``: JSON through cattrs when it can, else (or if asked) pickle.

    Raises:
        TypeError: ``serializer`` is ``"json"`` and the value cannot be JSON.
    """
    if serializer != "pickle":
        try:
            structured = unstructure(value)
            text = json.dumps(structured, allow_nan=True)
            if json.loads(text) == structured and type(structured) is type(value):
                return "json", text.encode()
        except (TypeError, ValueError):
            pass
        if serializer == "json":
            raise TypeError(
                f"result_serializer='json' cannot hold a {type(value).__name__} result "
                "exactly; use 'pickle', or leave it unset to choose per value"
            )
    import pickle  # here, not at the top: start-up time, and most results are JSON

    return "pickle", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


class ResultStore:
    """Cache records and results under one home, with an in-process memo in front."""

    MEMO_SIZE = 4096

    def __init__(self) -> None:
        # (FLOWKIT_HOME as set, task key, cache key) -> (record, value): a hit costs no
        # path arithmetic and no file read.
        self._memo: OrderedDict[tuple[str, str, str], tuple[CacheRecord, Any, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._flights: dict[tuple[str, str, str], threading.Event] = {}

    def _record_path(self, task_key: str, key: str) -> Path:
        return home() / "cache" / task_key / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def lookup(self, task_key: str, key: str, now: datetime) -> Lookup:
        """Find the result cached under ``key`` for the task, if it has not expired."""
        memo = self._memo.get(_memo_key(task_key, key))
        if memo is not None:
            record, value, why = memo
            if record.expires is not None and now >= record.expires:
                return _expired(record)
            return Lookup(True, value, record, why)
        path = self._record_path(task_key, key)
        try:
            record = converter().structure(json.loads(path.read_bytes()), CacheRecord)
        except FileNotFoundError:
            return Lookup(False, reason="no result is cached under this key")
        except Exception as exc:  # bad JSON, or a record of another shape
            _log.warning("Cache record %s is unreadable (%s); treating it as a miss", path, exc)
            return Lookup(False, reason=f"the cache record is unreadable: {exc}")
        if record.key != key:
            return Lookup(False, reason="the cache record belongs to another key")
        if record.expires is not None and now >= record.expires:
            return _expired(record)
        try:
            value = self._read_result(record)
        except Exception as exc:
            _log.warning(
                "Cached result %s is unreadable (%s); treating it as a miss", record.result, exc
            )
            return Lookup(False, record=record, reason=f"the cached result is unreadable: {exc}")
        return Lookup(True, value, record, self._remember(record, value))

    def _read_result(self, record: CacheRecord) -> Any:
        path = Path(record.result)
        data = path.read_bytes()
        if record.serializer == "json":
            return json.loads(data)
        if record.serializer == "pickle":
            if not (path.parent / ".flowkit-results").exists():
                raise ValueError(f"{path} is not in a flowkit result storage directory")
            import pickle  # here, not at the top: start-up time, and most results are JSON

            return pickle.loads(data)
        raise ValueError(f"unknown serializer {record.serializer!r}")

    def save(
        self,
        record: CacheRecord,
        value: Any,
        *,
        serializer: Serializer | None,
        storage: Path | None,
        persist: bool,
    ) -> CacheRecord:
        """Cache ``value`` under ``record.key``: on disk when ``persist``, else in memory.

        Raises:
            TypeError: The value cannot be written with the chosen serializer.
        """
        path = self._record_path(record.task_key, record.key)
        if persist:
            kind, data = encode_result(value, serializer)
            directory = storage if storage is not None else home() / "results"
            directory.mkdir(parents=True, exist_ok=True)
            (directory / ".flowkit-results").touch()
            result = directory / f"{path.stem}.{kind}"
            _write_atomic(result, data)
            record = attrs.evolve(record, serializer=kind, result=str(result))
            _write_atomic(path, json.dumps(converter().unstructure(record)).encode())
        self._remember(record, value)
        return record

    def _remember(self, record: CacheRecord, value: Any) -> str:
        """Keep ``value`` for hits; return why a hit on it is one."""
        memo_key = _memo_key(record.task_key, record.key)
        why = f"cached by run {record.run_id} at {record.created}"
        with self._lock:
            self._memo[memo_key] = (record, value, why)
            self._memo.move_to_end(memo_key)
            while len(self._memo) > self.MEMO_SIZE:
                self._memo.popitem(last=False)
        return why

    def claim(self, task_key: str, key: str) -> threading.Event | None:
        """Claim the computation of ``key``: ``None`` if it is ours, else what to wait on."""
        flight = _memo_key(task_key, key)
        with self._lock:
            event = self._flights.get(flight)
            if event is not None:
                return event
            self._flights[flight] = threading.Event()
            return None

    def release(self, task_key: str, key: str) -> None:
        """End our computation of ``key``: wake whoever waits for it."""
        flight = _memo_key(task_key, key)
        with self._lock:
            event = self._flights.pop(flight, None)
        if event is not None:
            event.set()

    def forget_memo(self) -> None:
        """Drop the in-process memo (records on disk stay)."""
        with self._lock:
            self._memo.clear()


def _expired(record: CacheRecord) -> Lookup:
    return Lookup(False, record=record, reason=f"the cached result expired at {record.expires}")


def _memo_key(task_key: str, key: str) -> tuple[str, str, str]:
    return (os.environ.get("FLOWKIT_HOME", ""), task_key, key)


RESULTS = ResultStore()
"""The process's result store."""

KeyFunction = Callable[..., "str | None"]
