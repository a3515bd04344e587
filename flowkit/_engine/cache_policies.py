"""Cache policies: what a task run's cache key is made of.

A policy computes a key part from a ``CacheContext`` and the call's parameters, or
``None`` for "do not cache this call". Policies add up: ``INPUTS + TASK_SOURCE`` keys on
both, and is ``None`` if either part is. ``cache_key_fn`` is the simple path: a function
wrapped in a policy.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import attrs

from . import cache
from .cache import (
    RESULTS,
    CacheRecord,
    Unencodable,
    canonical,
    canonical_dict,
    digest,
    digest_canonical,
)

__all__ = [
    "DEFAULT",
    "FLOW_PARAMETERS",
    "INPUTS",
    "NONE",
    "NO_CACHE",
    "RUN_ID",
    "TASK_SOURCE",
    "CacheContext",
    "CacheExplanation",
    "CacheKeyFn",
    "CachePolicy",
    "CompoundPolicy",
    "FlowParameters",
    "Inputs",
    "NoCache",
    "RunId",
    "TaskSource",
    "explain",
    "inputs_digest",
    "task_input_hash",
]

_log = logging.getLogger("flowkit.cache")


@attrs.frozen
class CacheContext:
    """What a cache key function or policy can look at.

    Attributes:
        task: The task being called.
        task_run: The run (``None`` when explaining a call that is not running).
    """

    task: Any
    task_run: Any = None

    @property
    def flow_parameters(self) -> dict[str, Any]:
        """The parameters of the enclosing flow run, or ``{}``."""
        flow_run = self.task_run.flow_run if self.task_run is not None else None
        return dict(flow_run.parameters) if flow_run is not None else {}


def inputs_digest(context: CacheContext, parameters: dict[str, Any]) -> str | None:
    """A digest of the task's key and its inputs; ``None`` (with a WARNING) if one cannot be
    encoded canonically."""
    encoded: dict[str, Any] = {}
    for name, value in parameters.items():
        try:
            encoded[name] = canonical(value)
        except Unencodable as exc:
            _log.warning(
                "task %r: argument %r cannot be part of a cache key (%s); this call is not "
                "cached. Pass a value of a plain type, or give the task a cache_key_fn",
                context.task.name, name, exc,
            )  # fmt: skip
            return None
    return digest_canonical([context.task.task_key, canonical_dict(encoded)])


def task_input_hash(context: CacheContext, parameters: dict[str, Any]) -> str | None:
    """A ``cache_key_fn``: the same for calls of the same task with equal arguments.

    Deterministic across processes and machines: arguments are encoded canonically
    (dict order does not matter), never through ``id()`` or pickle. An argument that has
    no canonical encoding makes the key ``None`` (not cached) and logs a WARNING.
    """
    return inputs_digest(context, parameters)


class CachePolicy:
    """Base of the cache policies; add them up with ``+``."""

    name = "policy"

    def compute_key(self, context: CacheContext, parameters: dict[str, Any]) -> str | None:
        """The key part of this policy, or ``None`` for "do not cache"."""
        raise NotImplementedError

    def parts(self) -> tuple[CachePolicy, ...]:
        """The policies this one is made of."""
        return (self,)

    def __add__(self, other: CachePolicy) -> CompoundPolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return CompoundPolicy((*self.parts(), *other.parts()))

    def __repr__(self) -> str:
        return " + ".join(p.name for p in self.parts())


@attrs.frozen(repr=False)
class CompoundPolicy(CachePolicy):
    """Several policies: the key is made of all their parts."""

    policies: tuple[CachePolicy, ...]
    name = "compound"

    def parts(self) -> tuple[CachePolicy, ...]:
        return self.policies

    def compute_key(self, context: CacheContext, parameters: dict[str, Any]) -> str | None:
        keys = [p.compute_key(context, parameters) for p in self.policies]
        if any(k is None for k in keys):
            return None
        return digest(keys)


class Inputs(CachePolicy):
    """The task's arguments (and the task's own key)."""

    name = "INPUTS"

    def compute_key(self, context: CacheContext, parameters: dict[str, Any]) -> str | None:
        return inputs_digest(context, parameters)


class TaskSource(CachePolicy):
    """The source code of the task's function: editing it invalidates the cache."""

    name = "TASK_SOURCE"

    def compute_key(self, context: CacheContext, parameters: dict[str, Any]) -> str | None:
        fn = context.task.fn
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):  # no source file: fall back on the code itself
            source = f"{fn.__module__}.{fn.__qualname__}:{fn.__code__.co_code.hex()}"
        return digest(source)


class FlowParameters(CachePolicy):
    """The parameters of the enclosing flow run."""

    name = "FLOW_PARAMETERS"

    def compute_key(self, context: CacheContext, parameters: dict[str, Any]) -> str | None:
        try:
            return digest(context.flow_parameters)
        except Unencodable:
            return None


class RunId(CachePolicy):
    """The enclosing flow run's id: results are reused only within one flow run."""

    name = "RUN_ID"

    def compute_key(self, context: CacheContext, parameters: dict[str, Any]) -> str | None:
        run = context.task_run
        if run is None:
            return None
        flow_run = run.flow_run
        return str((flow_run or run).id)


class NoCache(CachePolicy):
    """Never cache."""

    name = "NONE"

    def compute_key(self, context: CacheContext, parameters: dict[str, Any]) -> str | None:
        return None


@attrs.frozen(repr=False)
class CacheKeyFn(CachePolicy):
    """A ``cache_key_fn(context, parameters) -> str | None`` as a policy."""

    fn: Callable[[CacheContext, dict[str, Any]], str | None]
    name = "cache_key_fn"

    def compute_key(self, context: CacheContext, parameters: dict[str, Any]) -> str | None:
        key = self.fn(context, parameters)
        if key is not None and not isinstance(key, str):
            raise TypeError(
                f"task {context.task.name!r}: cache_key_fn must return a str or None, got {key!r}"
            )
        return key


INPUTS = Inputs()
TASK_SOURCE = TaskSource()
FLOW_PARAMETERS = FlowParameters()
RUN_ID = RunId()
NONE = NO_CACHE = NoCache()
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID


@attrs.frozen
class CacheExplanation:
    """Why a call would (or would not) use a cached result.

    Attributes:
        key: The cache key, or ``None`` if the call is not cached.
        parts: Each policy's part of the key, by policy name.
        hit: Whether a usable cached result exists now.
        reason: How it hits, or why it misses.
        record: The cache record found, if any.
    """

    key: str | None
    parts: dict[str, str | None]
    hit: bool
    reason: str
    record: CacheRecord | None = None


def explain(task: Any, policy: CachePolicy | None, parameters: dict[str, Any]) -> CacheExplanation:
    """Explain the cache decision for calling ``task`` with ``parameters`` now."""
    if policy is None:
        return CacheExplanation(None, {}, False, f"task {task.name!r} does not cache its results")
    context = CacheContext(task)
    parts = {p.name: p.compute_key(context, parameters) for p in policy.parts()}
    key = policy.compute_key(context, parameters)
    if key is None:
        missing = [name for name, part in parts.items() if part is None]
        return CacheExplanation(
            None, parts, False, f"no cache key: {', '.join(missing)} gave none for this call"
        )
    found = RESULTS.lookup(task.task_key, key, cache.now())
    return CacheExplanation(key, parts, found.hit, found.reason, found.record)
