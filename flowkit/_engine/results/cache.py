"""Cached results: keys, records on disk, an in-process memo, and single flight.

A cache entry is two files: the result, in the task's result storage
(``$FLOWKIT_HOME/results`` by default), and a small JSON record in
``$FLOWKIT_HOME/cache`` that names the key, the task, when it expires, the result's name
in its storage and the result's HMAC (see ``results``). Both are written atomically
(a temporary file, fsync, then a rename), result first: a record never points at a
result that is not whole. A record or result that cannot be read, lies outside the
storage, or fails its HMAC is a miss, with a WARNING, never a wrong value.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path, PurePath
from typing import Any, cast
from uuid import UUID

import attrs

from .. import clock
from ..convert import converter
from .storage import (
    Results,
    SerializerOption,
    StorageOption,
    StoredResult,
    check_name,
    dump,
    home,
    load,
    sign,
    storage_of,
    verify,
    write_atomic,
)

__all__ = [
    "CacheRecord",
    "Lookup",
    "ResultStore",
    "Unencodable",
    "canonical",
    "digest",
    "home",
    "now",
    "stored_result",
]

_log = logging.getLogger("flowkit.cache")


class Unencodable(TypeError):
    """A value has no canonical encoding, so no cache key can be made from it."""


def now() -> datetime:
    """The cache's clock (UTC): virtual under ``flowkit.testing.virtual_clock``."""
    return clock.now()


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
    """What ``cache/<scope>/<key digest>.json`` holds.

    Attributes:
        key: The cache key.
        task_key: The task whose result it is.
        task_name: That task's name.
        run_id: The run that computed the result.
        created: When.
        expires: When it may no longer be reused, or ``None``.
        serializer: The name of the serializer that wrote the result.
        result: The result's name in its storage (relative, checked on every read).
        mac: The result's HMAC (see ``results.sign``).
        location: Where the result lives, as people read it (never read back from).
    """

    key: str
    task_key: str
    task_name: str
    run_id: str
    created: datetime
    expires: datetime | None
    serializer: str
    result: str
    mac: str
    location: str


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


def _unreadable(what: str, where: object, exc: Exception) -> Lookup:
    _log.warning("%s %s is unusable (%s); treating it as a miss", what, where, exc)
    return Lookup(False, reason=f"the {what.lower()} is unusable: {exc}")


class ResultStore:
    """Cache records and results under one home, with an in-process memo in front."""

    MEMO_SIZE = 4096

    def __init__(self) -> None:
        # (FLOWKIT_HOME as set, scope, cache key) -> (record, value): a hit costs no
        # path arithmetic and no file read.
        self._memo: OrderedDict[tuple[str, str, str], tuple[CacheRecord, Any, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._flights: dict[tuple[str, str, str], threading.Event] = {}

    def _record_path(self, scope: str, key: str) -> Path:
        return home() / "cache" / scope / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def lookup(
        self,
        scope: str,
        key: str,
        now: datetime,
        *,
        storage: StorageOption | None = None,
        serializer: SerializerOption | None = None,
    ) -> Lookup:
        """Find the result cached under ``key`` in ``scope`` (a task key), if it has not
        expired, reading it from ``storage`` with ``serializer`` (the task's settings).

        A record or result that is unreadable, outside the storage, or whose HMAC does
        not match is a miss, with a WARNING."""
        memo = self._memo.get(_memo_key(scope, key))
        if memo is not None:
            record, value, why = memo
            if record.expires is not None and now >= record.expires:
                return _expired(record)
            return Lookup(True, value, record, why)
        path = self._record_path(scope, key)
        try:
            record = converter().structure(json.loads(path.read_bytes()), CacheRecord)
        except FileNotFoundError:
            return Lookup(False, reason="no result is cached under this key")
        except Exception as exc:  # bad JSON, or a record of another shape
            return _unreadable("Cache record", path, exc)
        if record.key != key:
            return Lookup(False, reason="the cache record belongs to another key")
        if record.expires is not None and now >= record.expires:
            return _expired(record)
        try:
            data = storage_of(storage).read_path(check_name(record.result))
            verify(data, record.mac, name=record.result, key=key, serializer=record.serializer)
            value = load(data, record.serializer, serializer)
        except Exception as exc:
            found = _unreadable("Cached result", record.location, exc)
            return attrs.evolve(found, record=record)
        return Lookup(True, value, record, self._remember(record, value, scope))

    def save(
        self,
        record: CacheRecord,
        value: Any,
        *,
        scope: str,
        storage: StorageOption | None,
        serializer: SerializerOption | None,
        in_memory: bool = True,
    ) -> CacheRecord:
        """Write ``value`` to ``storage`` as ``record.result`` (a name; if empty, the key's
        digest), then the record that points at it under ``scope``; keep it in the memo
        when ``in_memory``.

        Returns:
            The record written, with its serializer, HMAC and location filled in.

        Raises:
            TypeError: The serializer cannot write the value (or another exception of it).
            ValueError: The result's name leads outside the storage.
            OSError: A file cannot be written.
        """
        kind, data = dump(value, serializer)
        digest_ = hashlib.sha256(record.key.encode()).hexdigest()
        name = check_name(record.result or f"{digest_}.{kind}")
        mac = sign(data, name=name, key=record.key, serializer=kind)
        where = storage_of(storage).write_path(name, data)
        location = where if isinstance(where, str) else name
        record = attrs.evolve(record, serializer=kind, result=name, mac=mac, location=location)
        path = self._record_path(scope, record.key)
        write_atomic(path, json.dumps(converter().unstructure(record)).encode())
        if in_memory:
            self._remember(record, value, scope)
        return record

    def _remember(self, record: CacheRecord, value: Any, scope: str | None = None) -> str:
        """Keep ``value`` for hits; return why a hit on it is one."""
        memo_key = _memo_key(record.task_key if scope is None else scope, record.key)
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


def stored_result(record: CacheRecord, results: Results) -> StoredResult:
    """Where the result of ``record`` is, for a state that does not keep it in memory."""
    storage = storage_of(results.storage)
    return StoredResult(
        storage, record.result, results.serializer, record.serializer, record.mac,
        record.key, record.location,
    )  # fmt: skip


def _expired(record: CacheRecord) -> Lookup:
    return Lookup(False, record=record, reason=f"the cached result expired at {record.expires}")


def _memo_key(task_key: str, key: str) -> tuple[str, str, str]:
    return (os.environ.get("FLOWKIT_HOME", ""), task_key, key)


RESULTS = ResultStore()
"""The process's result store."""
