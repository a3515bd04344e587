"""A task run's cache and result: its cache key, looking it up, and writing the result.

Policies compute keys from what they are given (``results.policies``, which knows no
run); this module gives them a run's task, inputs and flow run, and reads and writes the
results a run's options ask for.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, cast

import attrs

from ... import states
from ...exceptions import SerializationError
from ...states import State
from ..definition.policy import Caching
from ..definition.signature import Definition
from ..ids import new_id
from ..results import cache
from ..results.cache import RESULTS, CacheRecord
from ..results.policies import (
    CacheContext,
    CacheKeyFnPolicy,
    CachePolicy,
    TaskRunInfo,
    parts_of,
)
from ..results.storage import Results, persist, render_storage_key, storage_scope
from .runs import NOT_HANDED, FlowRun, Run, current_run
from .venue import Venue

__all__ = [
    "CacheExplanation",
    "cache_key",
    "explain",
    "from_cache",
    "persisted",
    "task_key_of",
]

_log = logging.getLogger("flowkit.engine")
_cache_log = logging.getLogger("flowkit.cache")


class _Cacheable(Definition, Protocol):
    """A definition whose runs may cache: a task."""

    @property
    def task_key(self) -> str: ...


def task_key_of(definition: Definition) -> str:
    """The task key of a task."""
    return cast("_Cacheable", definition).task_key


async def from_cache(
    run: Run, venue: Venue, caching: Caching, results: Results
) -> tuple[State[Any] | None, tuple[str, str] | None]:
    """Look for a cached result: its ``Cached`` state on a hit; on a miss, the claim on
    computing it (another run computing the same key is waited for, then looked up)."""
    if caching.storage_key is not None:
        try:
            key: str | None = render_storage_key(caching.storage_key, run)
        except ValueError as exc:
            return run.failed_state(exc), None
        # A result_storage_key names a file of the storage: any task writing that name
        # to that storage shares it, as in Prefect.
        scope = storage_scope(results.storage)
    else:
        assert caching.key is not None  # Caching.of: a policy, or a storage key
        key, scope = cache_key(caching.key, run), task_key_of(run.definition)
    if key is None:
        run.progress.cache_note = "not cached: the cache policy gave no key for this call"
        return None, None
    while True:
        reason = "refresh_cache is set"
        if not caching.refresh:
            found = cache.RESULTS.lookup(
                scope, key, cache.now(), storage=results.storage, serializer=results.serializer
            )
            if found.hit:
                run.progress.cache_note = f"hit: {found.reason} (key {key[:12]})"
                assert found.record is not None
                run.progress.result_location = found.record.location
                return states.Cached(f"Cache hit: {found.reason}", data=found.value), None
            reason = found.reason
        busy = cache.RESULTS.claim(scope, key)
        if busy is None:
            run.progress.cache_note = f"miss: {reason} (key {key[:12]})"
            return None, (scope, key)
        await venue.wait_event(busy)  # single flight: the other run may cache it for us


def persisted(
    run: Run,
    final: State[Any],
    results: Results,
    caching: Caching | None,
    flight: tuple[str, str] | None,
) -> State[Any]:
    """Write the result of a completed run to its storage (and its cache record, when
    the run holds a cache key); return the final state, the result's place in it if it
    is not kept in memory. A result that cannot be written fails the run when its own
    options asked for persistence; else it stays in memory, with a WARNING."""
    value = final.data
    try:
        if flight is not None and caching is not None:
            now = cache.now()
            expires = now + caching.expiration if caching.expiration is not None else None
            storage_key = caching.storage_key is not None
            record = cache.RESULTS.save(
                cache.CacheRecord(
                    key=flight[1], task_key=task_key_of(run.definition),
                    task_name=run.definition.name,
                    run_id=run.key, created=now, expires=expires, serializer="",
                    result=flight[1] if storage_key else "", mac="", location="",
                ),
                value, scope=flight[0], storage=results.storage,
                serializer=results.serializer, in_memory=results.in_memory,
            )  # fmt: skip
            stored = cache.stored_result(record, results)
        else:
            stored = persist(value, f"{run.key}", results)
    except Exception as exc:
        kind = "flow" if isinstance(run, FlowRun) else "task"
        serializer = "default" if results.serializer is None else results.serializer
        message = (
            f"{kind} {run.definition.name!r}: its result, a {type(value).__name__}, cannot be "
            f"persisted with result_serializer={serializer!r}: {type(exc).__name__}: {exc}. "
            "Choose a result_serializer that can write it (e.g. 'pickle'), or set "
            "persist_result=False"
        )
        if results.asked:
            run.attempt.handed_back = NOT_HANDED  # the call raises what failed the run
            error = SerializationError(message)
            error.__cause__ = exc
            return states.Failed(message, exception=error)
        _log.warning("%s (run %r keeps it in memory only)", message, run.name)
        return final
    run.progress.result_location = stored.location
    if results.in_memory:
        return final
    return attrs.evolve(final, data=stored)


def cache_key(policy: CachePolicy, run: Run) -> str | None:
    """The cache key of task run ``run``; ``None`` for none, with a WARNING if the policy
    failed (as Prefect, the run then goes on uncached)."""
    flow_run = run.flow_run
    # A cache_key_fn sees a method's self or cls, as in Prefect; the policies that encode
    # inputs do not (an instance rarely has a canonical encoding).
    inputs = run.arguments if isinstance(policy, CacheKeyFnPolicy) else run.parameters
    info = TaskRunInfo(run.id, flow_run.id if flow_run is not None else None)
    context = CacheContext(run.definition, info, inputs)
    try:
        return policy.compute_key(
            context, inputs, flow_run.parameters if flow_run is not None else {}
        )
    except Exception as exc:
        _cache_log.warning("%s: %s (run %r is not cached)", type(exc).__name__, exc, run.name)
        return None


@attrs.frozen
class CacheExplanation:
    """Why a call would (or would not) use a cached result.

    Attributes:
        key: The cache key, or ``None`` if the call is not cached.
        parts: Each policy's part of the key, by the policy's ``repr``.
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
    """Explain the cache decision for calling ``task`` with ``parameters`` here, now.

    The call is taken as a new run in the current flow run, if any: under ``RUN_ID``
    outside a flow, its key is new each time.
    """
    if policy is None:
        return CacheExplanation(None, {}, False, f"task {task.name!r} does not cache its results")
    here = current_run.get()
    flow_run = here.flow_run if here is not None else None
    info = TaskRunInfo(new_id(), flow_run.id if flow_run is not None else None)
    context = CacheContext(task, info, parameters)
    flow_parameters = flow_run.parameters if flow_run is not None else {}
    parts: dict[str, str | None] = {}
    try:
        for part in parts_of(policy):
            parts[repr(part)] = part.compute_key(context, parameters, flow_parameters)
        key = policy.compute_key(context, parameters, flow_parameters)
    except Exception as exc:
        return CacheExplanation(None, parts, False, f"no cache key: {exc}")
    if key is None:
        return CacheExplanation(None, parts, False, "no cache key: no part of the policy gave one")
    found = RESULTS.lookup(
        task.task_key, key, cache.now(),
        storage=task.result_storage, serializer=task.result_serializer,
    )  # fmt: skip
    return CacheExplanation(key, parts, found.hit, found.reason, found.record)
