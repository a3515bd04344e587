"""Persisted results: where they are written, in what format, and why they are trusted.

A result is written to a *storage*, anything with ``read_path(name) -> bytes`` and
``write_path(name, content)`` (a directory given as a path is one), under a relative
*name*. What comes back from storage is believed only when its HMAC matches: a
SHA-256 HMAC, under a secret key of this ``FLOWKIT_HOME`` (``results.key``, mode 0600),
over the result's bytes, its name, its cache key and its serializer. A file forged or
altered by anyone without the key is a miss, never a value (and never an unpickled one).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from ...exceptions import MissingResult
from ...states import ResultReference
from ..convert import unstructure
from ..home import (
    TEMPORARY_PREFIX,
    TEMPORARY_SUFFIX,
    home,
    make_private_directory,
    sweep_once,
)

__all__ = [
    "NO_RESULTS",
    "ResultSerializer",
    "ResultStorage",
    "Results",
    "SerializerOption",
    "StorageOption",
    "StoredResult",
    "check_name",
    "contained",
    "dump",
    "home",
    "load",
    "persist",
    "render_storage_key",
    "results_of",
    "serializer_name",
    "sign",
    "storage_of",
    "storage_scope",
    "write_atomic",
]


@runtime_checkable
class ResultStorage(Protocol):
    """Where results are written: ``flowkit.filesystems.LocalFileSystem`` is one.

    ``write_path`` must replace the file whole or not at all (write elsewhere, then
    rename), so that a reader never sees part of a result.
    """

    def read_path(self, path: str, /) -> bytes:
        """The content of the file ``path``; ``FileNotFoundError`` if there is none."""
        ...

    def write_path(self, path: str, content: bytes, /) -> object:
        """Write ``content`` to ``path``; what it returns (a ``str``) says where it went."""
        ...


@runtime_checkable
class ResultSerializer(Protocol):
    """How results become bytes: ``flowkit.serializers.PickleSerializer`` is one."""

    def dumps(self, obj: Any, /) -> bytes:
        """``obj`` as bytes."""
        ...

    def loads(self, blob: bytes, /) -> Any:
        """The value in ``blob``."""
        ...


SerializerOption = Literal["json", "pickle", "cloudpickle"] | ResultSerializer
StorageOption = str | PurePath | ResultStorage


def _temporary(path: Path, data: bytes) -> str:
    """A temporary file beside ``path`` holding ``data``, flushed to disk; mode 0600."""
    import tempfile  # here, not at the top: only runs that persist write files

    make_private_directory(path.parent)
    sweep_once(path.parent)  # temporaries a killed process left here
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f"{TEMPORARY_PREFIX}{path.name}.", suffix=TEMPORARY_SUFFIX
    )
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file in the same
    directory, flushed to disk, then renamed over ``path``. Files are made 0600."""
    tmp = _temporary(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_atomic(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` unless it exists, whole or not at all.

    Returns:
        Whether this call created it (another process may have been first).
    """
    tmp = _temporary(path, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)
    return True


def contained(root: Path, path: str | os.PathLike[str], *, owner: str) -> Path:
    """``path`` resolved under ``root`` (itself resolved).

    Raises:
        ValueError: ``path`` leads outside ``root`` (``..``, an absolute path, a link).
    """
    resolved = (root / Path(path).expanduser()).resolve()
    if not resolved.is_relative_to(root):
        raise ValueError(
            f"{owner}: path {str(path)!r} is outside the base path {str(root)!r}; "
            "give a path inside it"
        )
    return resolved


def check_name(name: str) -> str:
    """Check a result's name: relative, with no ``..`` part.

    Raises:
        ValueError: The name is empty, absolute, or climbs out with ``..``.
    """
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not name or name.startswith(("/", "\\")) or ".." in parts or ":" in name[:2]:
        raise ValueError(
            f"result name {name!r} must be a relative path inside the result storage, without '..'"
        )
    return name


@attrs.frozen
class _Directory:
    """A directory as result storage: what a ``result_storage`` path means."""

    root: Path

    def read_path(self, path: str, /) -> bytes:
        return contained(self.root.resolve(), path, owner="result storage").read_bytes()

    def write_path(self, path: str, content: bytes, /) -> str:
        root = make_private_directory(self.root).resolve()
        target = contained(root, path, owner="result storage")
        write_atomic(target, content)
        return str(target)


def storage_of(option: StorageOption | None) -> ResultStorage:
    """The storage a ``result_storage`` option names; ``None``: ``FLOWKIT_HOME/results``."""
    if option is None:
        return _Directory(home() / "results")
    if isinstance(option, str | PurePath):
        return _Directory(Path(option).expanduser())
    return option


def serializer_name(serializer: SerializerOption) -> str:
    """How records and messages name a serializer: ``"json"``, or a serializer's
    ``type`` attribute (else its class name)."""
    if isinstance(serializer, str):
        return serializer
    kind = getattr(serializer, "type", None)
    return kind if isinstance(kind, str) else type(serializer).__qualname__


def dump(value: Any, serializer: SerializerOption | None) -> tuple[str, bytes]:
    """Serialize ``value``: with ``serializer``, or (``None``) as JSON when it holds the
    value exactly, else with cloudpickle. Returns the serializer's name and the bytes.

    Raises:
        TypeError: ``serializer`` is ``"json"`` and JSON cannot hold the value exactly.
        Exception: Whatever the serializer raised for the value.
    """
    if serializer is None or serializer == "json":
        try:
            structured = unstructure(value)
            text = json.dumps(structured, allow_nan=True)
            if json.loads(text) == structured and type(structured) is type(value):
                return "json", text.encode()
        except (TypeError, ValueError):
            pass
        if serializer == "json":
            raise TypeError(f"JSON cannot hold a {type(value).__name__} value exactly")
        # Prefect's default pickles with cloudpickle, which also holds instances of
        # classes defined inside functions (stdlib pickle refuses them); the cost is a
        # couple of microseconds a value.
        serializer = "cloudpickle"
    if serializer == "pickle":
        import pickle  # here, not at the top: start-up time, and most results are JSON

        return "pickle", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    if serializer == "cloudpickle":
        return "cloudpickle", cloudpickle().dumps(value)
    data = serializer.dumps(value)
    if not isinstance(data, bytes):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(f"its dumps() returned {type(data).__name__}, not bytes")
    return serializer_name(serializer), data


def load(data: bytes, name: str, serializer: SerializerOption | None) -> Any:
    """The value in ``data``, written by the serializer called ``name``; ``serializer``
    is the one configured now. Call only on bytes whose HMAC was checked.

    Raises:
        ValueError: ``name`` is not the configured serializer's.
        Exception: Whatever the serializer raised for the bytes.
    """
    if name == "json" and (serializer is None or serializer == "json"):
        return json.loads(data)
    if name == "pickle" and (serializer is None or serializer == "pickle"):
        import pickle

        return pickle.loads(data)  # our own bytes: the HMAC says so
    if name == "cloudpickle" and (serializer is None or serializer == "cloudpickle"):
        return cloudpickle().loads(data)  # the default's fallback, or asked for by name
    if (
        serializer is not None
        and not isinstance(serializer, str)
        and name == serializer_name(serializer)
    ):
        return serializer.loads(data)
    configured = "the default" if serializer is None else repr(serializer_name(serializer))
    raise ValueError(f"it was written by serializer {name!r}, and {configured} reads it now")


class _Pickler(Protocol):
    def dumps(self, obj: Any, /) -> bytes: ...
    def loads(self, blob: bytes, /) -> Any: ...


def cloudpickle() -> _Pickler:
    """The ``cloudpickle`` module.

    Raises:
        ModuleNotFoundError: cloudpickle is not installed.
    """
    try:
        # Imported on use: an optional dependency, and most results are not cloudpickled.
        import cloudpickle as module  # type: ignore[import-untyped]  # pyright: ignore[reportMissingImports]
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "result_serializer='cloudpickle' needs the cloudpickle package: "
            "pip install cloudpickle, or use 'pickle'",
            name="cloudpickle",
        ) from None
    return module  # type: ignore[no-any-return]  # pyright: ignore[reportUnknownVariableType]


_SECRETS: dict[Path, bytes] = {}
_SECRETS_LOCK = threading.Lock()


def _secret() -> bytes:
    """The HMAC key of this ``FLOWKIT_HOME``: made on first use, mode 0600."""
    path = home() / "results.key"
    with _SECRETS_LOCK:
        key = _SECRETS.get(path)
        if key is not None:
            return key
        # Made whole or not at all: another process never reads a key half written.
        key = secrets.token_bytes(32)
        if not create_atomic(path, key):
            key = path.read_bytes()
        if len(key) < 32:  # a truncated key (a crash while it was made) signs nothing
            raise ValueError(f"{path} is not a flowkit result key; delete it to make a new one")
        _SECRETS[path] = key
        return key


def sign(data: bytes, *, name: str, key: str, serializer: str) -> str:
    """The HMAC that vouches for a result: its bytes, its name, the cache key it answers
    (``""`` for none) and the serializer that reads it."""
    header = json.dumps([name, key, serializer]).encode()
    mac = hmac.new(_secret(), header, hashlib.sha256)
    mac.update(b"\0")
    mac.update(data)
    return mac.hexdigest()


def verify(data: bytes, mac: str, *, name: str, key: str, serializer: str) -> None:
    """Check the HMAC of a result read back.

    Raises:
        ValueError: The HMAC does not match: the result or its record was forged or altered.
    """
    if not hmac.compare_digest(sign(data, name=name, key=key, serializer=serializer), mac):
        raise ValueError("its HMAC does not match: the result was altered or forged")


@attrs.frozen
class StoredResult(ResultReference):
    """A persisted result that is not kept in memory (``cache_result_in_memory=False``).

    ``State.result()`` reads it back, checking its HMAC.

    Attributes:
        storage: Where it was written.
        name: Its name in that storage.
        serializer: The serializer that wrote it (its name for the built-in ones).
        mac: Its HMAC.
        key: The cache key it answers, or ``""``.
        location: Where it lives, as people read it.
    """

    storage: ResultStorage
    name: str
    serializer: SerializerOption | None
    written_by: str
    mac: str
    key: str
    location: str

    def load(self) -> Any:
        """Read the value back.

        Raises:
            MissingResult: It is gone from its storage.
            ValueError: The result was altered since it was written.
            OSError: It cannot be read.
        """
        try:
            data = self.storage.read_path(self.name)
        except FileNotFoundError:
            raise MissingResult(
                f"the result was persisted at {self.location} and kept nowhere else "
                "(cache_result_in_memory=False), and that file is gone; run the task again"
            ) from None
        verify(data, self.mac, name=self.name, key=self.key, serializer=self.written_by)
        return load(data, self.written_by, self.serializer)


@attrs.frozen
class Results:
    """How a task's or flow's results are kept, read from its options.

    Attributes:
        persist: Whether results are written; ``None``: as the calling run.
        asked: Whether the definition's own options ask for persistence, so that a result
            that cannot be written fails the run (else it stays in memory, with a WARNING).
        storage: Where results are written; ``None``: the calling run's, else the default.
        serializer: How; ``None``: the calling run's, else JSON or pickle per value.
        storage_key: The template naming a task's result (and its cache key), if any.
        in_memory: Whether the final state keeps the value (else only where it is).
    """

    persist: bool | None = None
    asked: bool = False
    storage: StorageOption | None = None
    serializer: SerializerOption | None = None
    storage_key: str | None = None
    in_memory: bool = True

    def within(self, outer: Results | None) -> Results:
        """The settings of a run called by a run with ``outer`` settings (in force)."""
        if self.persist is not None or outer is None or not outer.persist:
            return self  # nothing to inherit: no allocation on the common path
        return attrs.evolve(
            self,
            persist=True,
            storage=self.storage if self.storage is not None else outer.storage,
            serializer=self.serializer if self.serializer is not None else outer.serializer,
        )


NO_RESULTS = Results()


def results_of(run: Any) -> Results:
    """The result settings in force for ``run``: its definition's, and what those leave
    open taken from the run that called it (a task in a flow that persists persists)."""
    own: Results = run.definition.policy.results
    if own.persist is not None or run.parent is None:
        return own
    return own.within(results_of(run.parent))


def persist(value: Any, stem: str, results: Results) -> StoredResult:
    """Write ``value`` to the storage of ``results`` as ``<stem>.<serializer>``.

    Raises:
        Exception: The serializer cannot write the value, or the storage the bytes.
    """
    kind, data = dump(value, results.serializer)
    name = check_name(f"{stem}.{kind}")
    storage = storage_of(results.storage)
    mac = sign(data, name=name, key="", serializer=kind)
    where = storage.write_path(name, data)
    location = where if isinstance(where, str) else name
    return StoredResult(storage, name, results.serializer, kind, mac, "", location)


def render_storage_key(template: str, run: Any) -> str:
    """A task's ``result_storage_key`` for ``run``: the template over its parameters
    and the run itself (``task_run``) and its flow run (``flow_run``).

    Raises:
        ValueError: The template names something the run does not have, or gives a
            name that is not a relative path inside the storage.
    """
    try:
        name = template.format(parameters=run.parameters, task_run=run, flow_run=run.flow_run)
    except (KeyError, AttributeError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(
            f"task {run.definition.name!r}: result_storage_key {template!r} cannot be "
            f"filled in for run {run.name!r}: {type(exc).__name__}: {exc}; use the names "
            f"of its parameters ({', '.join(run.parameters) or 'it has none'}) as "
            "{parameters[name]}"
        ) from None
    try:
        return check_name(name)
    except ValueError as exc:
        raise ValueError(
            f"task {run.definition.name!r}: result_storage_key {template!r} gives {exc}"
        ) from None


def storage_scope(storage: StorageOption | None) -> str:
    """Who shares records of results named by ``result_storage_key``: the tasks that
    write to the same storage."""
    if storage is None:
        where = "default"
    elif isinstance(storage, str | PurePath):
        where = str(Path(storage).expanduser().resolve())
    else:
        where = f"{type(storage).__module__}.{type(storage).__qualname__}:{storage!r}"
    return "storage-" + hashlib.sha256(where.encode()).hexdigest()[:32]
