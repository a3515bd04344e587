"""What the engine does around a body: deadline, retries, hooks, caching, run settings.

The options (``options.TaskOptions``, ``options.FlowOptions``) validate each value as it
is given; ``Policy.of`` turns them into the one typed object the engine reads, once per
task or flow, not once per call.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from numbers import Real
from typing import Any, cast

import attrs

from ...states import State, StateType
from ..results.policies import DEFAULT, NO_CACHE, CacheKeyFn, CachePolicy
from ..results.storage import NO_RESULTS, Results
from .options import (
    MAX_DELAY_SECONDS,
    MAX_DELAYS,
    NOT_SET,
    CacheKeyFunction,
    FlowOptions,
    Hook,
    NotSet,
    RunName,
    TaskOptions,
    as_delay_list,
    check_delays,
)
from .task_runner import TaskRunner

__all__ = [
    "Caching",
    "Policy",
    "exponential_backoff",
    "resolve_caching",
]

# The hook each kind of final state calls.
_FINAL_HOOK = {
    StateType.COMPLETED: "on_completion",
    StateType.FAILED: "on_failure",
    StateType.CANCELLED: "on_cancellation",
    StateType.CRASHED: "on_crashed",
}


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """Retry delays that double each time: ``backoff_factor * 2 ** n`` seconds for retry n.

    Pass it as ``retry_delay_seconds=exponential_backoff(backoff_factor=10)``: 10, 20, 40 s...
    Doubling stops at ``MAX_DELAY_SECONDS`` (a day).

    Raises:
        ValueError: ``backoff_factor`` is negative, NaN, or over a day.
    """
    if (
        not isinstance(backoff_factor, Real)
        or isinstance(backoff_factor, bool)
        or not 0 <= backoff_factor <= MAX_DELAY_SECONDS
    ):
        raise ValueError(
            f"backoff_factor must be a number of seconds from 0 to {MAX_DELAY_SECONDS:.0f} "
            f"(a day), got {backoff_factor!r}"
        )

    def delays(retries: int) -> list[float]:
        return [
            min(backoff_factor * 2**n, MAX_DELAY_SECONDS) for n in range(min(retries, MAX_DELAYS))
        ]

    return delays


def resolve_caching(
    cache_policy: CachePolicy | NotSet | None,
    cache_key_fn: CacheKeyFunction | None,
    persist_result: bool | None,
    *,
    stores: bool,
    storage_key: bool = False,
) -> tuple[CachePolicy | None, bool | None]:
    """The cache policy and ``persist_result`` in force, by Prefect's rules.

    A ``cache_key_fn`` is the policy; ``persist_result`` left out is true when anything
    asks for caching or storage (``stores``: a ``result_storage`` or serializer was
    given; ``storage_key``: a ``result_storage_key`` was); ``persist_result=False``
    means ``NO_CACHE``; a ``result_storage_key`` replaces the policy (``None``); a policy
    left out is ``DEFAULT``.

    Raises:
        ValueError: Both ``cache_policy`` and ``cache_key_fn`` were given.
    """
    if cache_key_fn is not None:
        if cache_policy is not NOT_SET and cache_policy is not None:
            raise ValueError(
                "give cache_key_fn or cache_policy, not both (a cache_key_fn is a policy: "
                "add it to others with flowkit.cache_policies.CacheKeyFn(fn) + ...)"
            )
        cache_policy = CacheKeyFn(cache_key_fn)
    if persist_result is None and (
        stores
        or storage_key
        or (isinstance(cache_policy, CachePolicy) and cache_policy is not NO_CACHE)
    ):
        persist_result = True
    if persist_result is False:
        return (None if cache_policy is None else NO_CACHE), False
    if storage_key:
        return None, persist_result
    if cache_policy is NOT_SET:
        return DEFAULT, persist_result
    return cache_policy, persist_result


@attrs.frozen
class Caching:
    """How a task's results are cached, once they are persisted.

    Attributes:
        key: The policy that makes the cache key; ``None`` when ``storage_key`` is it.
        storage_key: The ``result_storage_key`` template: the key, and the result's name.
        expiration: How long a cached result may be reused; ``None`` for ever.
        refresh: Whether to run anyway and overwrite the cached result.
    """

    key: CachePolicy | None
    storage_key: str | None = None
    expiration: timedelta | None = None
    refresh: bool = False

    @classmethod
    def of(cls, options: TaskOptions) -> Caching | None:
        """Read the caching options of a task whose ``cache_policy`` and
        ``persist_result`` are resolved (see ``resolve_caching``); ``None`` if it never
        caches: ``persist_result=False``, or no key (``NO_CACHE``, ``None``)."""
        key = options.cache_policy
        if not isinstance(key, CachePolicy) or key is NO_CACHE:
            key = None
        if options.persist_result is False or (key is None and not options.result_storage_key):
            return None
        return cls(
            key=key,
            storage_key=options.result_storage_key,
            expiration=options.cache_expiration,
            refresh=bool(options.refresh_cache),
        )


def _results(options: TaskOptions | FlowOptions) -> Results:
    storage_key = options.result_storage_key if isinstance(options, TaskOptions) else None
    return Results(
        persist=options.persist_result,
        asked=options.persist_result is True
        and (
            _given(options).get("persist_result") is True
            or options.result_storage is not None
            or options.result_serializer is not None
            or storage_key is not None
        ),
        storage=options.result_storage,
        serializer=options.result_serializer,
        storage_key=storage_key,
        in_memory=options.cache_result_in_memory,
    )


def _given(options: object) -> Mapping[str, Any]:
    """The options given explicitly (a definition keeps them as ``given``)."""
    given = getattr(options, "given", None)
    return cast("Mapping[str, Any]", given) if isinstance(given, Mapping) else {}


@attrs.frozen
class Policy:
    """What the engine works out from a task's or flow's options, once per definition.

    Only what is derived is here: from several options, from a function the options
    give, or spelled differently for tasks and flows. An option the engine uses as it was
    given (``timeout_seconds``, ``retries``, ``log_prints``, ``max_concurrency``, and a
    flow's ``task_runner``, ``progress`` and ``validate_parameters``) is read from the
    definition itself.

    Attributes:
        delays: Seconds to wait before retry 1, 2, ...; the last repeats (a
            ``retry_delay_seconds`` function called once, its list checked).
        jitter: Each delay is drawn from ``delay * (1 ± jitter)``; ``None`` for exact
            (a flow has none).
        retry_condition: ``(task, run, state) -> bool``; retry only when it says so (a
            flow has none).
        hooks: Functions to call by hook name, e.g. ``"on_failure"``; only names with
            hooks.
        caching: How results are cached, if they are (when they are persisted).
        results: How results are kept.
        run_name: The template or function naming runs (``task_run_name`` or
            ``flow_run_name``); ``None`` for the default name.
        tags: The definition's own tags (a flow has none).
        thread_limit: For a flow: its worker-thread limit, its own or its task runner's.
        plain: Whether there is nothing to do around the body (no timeout, retries or
            hooks): it may run inline.
    """

    delays: Sequence[float] = ()
    jitter: float | None = None
    retry_condition: Callable[[Any, Any, State[Any]], object] | None = None
    hooks: dict[str, tuple[Hook, ...]] = attrs.field(factory=dict)
    caching: Caching | None = None
    results: Results = NO_RESULTS
    run_name: RunName | None = None
    tags: frozenset[str] = frozenset()
    thread_limit: int | None = None
    plain: bool = True

    @classmethod
    def of(cls, options: TaskOptions | FlowOptions) -> Policy:
        """Read ``options``.

        Raises:
            ValueError: A ``retry_delay_seconds`` function returned something that is not a
                list of delays (checked as the option would be).
        """
        delays: object = options.retry_delay_seconds
        if callable(delays):
            delays = delays(options.retries)
            check_delays("retry_delay_seconds", delays)
        hooks = {
            "on_running": options.on_running_hooks,
            "on_completion": options.on_completion_hooks,
            "on_failure": options.on_failure_hooks,
        }
        common: dict[str, Any] = {
            "delays": tuple(as_delay_list(delays)),
            "results": _results(options),
        }
        if isinstance(options, TaskOptions):
            given = {name: h for name, h in hooks.items() if h}
            return cls(
                **common,
                jitter=options.retry_jitter_factor,
                retry_condition=options.retry_condition_fn,
                hooks=given,
                plain=_plain(options, given),
                caching=Caching.of(options),
                run_name=options.task_run_name,
                tags=options.tags,
            )
        hooks |= {
            "on_cancellation": options.on_cancellation_hooks,
            "on_crashed": options.on_crashed_hooks,
        }
        given = {name: h for name, h in hooks.items() if h}
        return cls(
            **common,
            hooks=given,
            plain=_plain(options, given),
            run_name=options.flow_run_name,
            thread_limit=_thread_limit(options.thread_limit, options.task_runner),
        )

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (from 1), jitter included."""
        if not self.delays:
            return 0.0
        base = float(self.delays[min(retry, len(self.delays)) - 1])
        if not self.jitter:
            return base
        varied = random.uniform(max(0.0, base * (1 - self.jitter)), base * (1 + self.jitter))
        return min(varied, MAX_DELAY_SECONDS)

    def final_hook(self, state: State[Any]) -> tuple[Callable[..., Any], ...]:
        """The hooks a run that ended in ``state`` calls (none for ``NotReady``, as in
        Prefect: the run never started)."""
        hook = _FINAL_HOOK.get(state.type)
        return self.hooks.get(hook, ()) if hook is not None else ()


def _plain(options: TaskOptions | FlowOptions, hooks: Mapping[str, object]) -> bool:
    return options.timeout_seconds is None and not options.retries and not hooks


def _thread_limit(thread_limit: int | None, runner: TaskRunner | None) -> int | None:
    """The flow's thread limit: ``thread_limit``, or its task runner's ``max_workers``.

    Raises:
        ValueError: Both are given, and differ.
    """
    workers = runner.thread_limit if runner is not None else None
    if workers is not None and thread_limit is not None and workers != thread_limit:
        raise ValueError(
            f"thread_limit={thread_limit} and task_runner={runner!r} set two different "
            "worker-thread limits; give only one of them"
        )
    return thread_limit if thread_limit is not None else workers
