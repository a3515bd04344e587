"""What the engine does around a body: deadline, retries, hooks. Read from the options.

The options classes validate each value as it is given; ``Policy.of`` turns them into
the form the engine uses, once per task or flow, not once per call.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from numbers import Real
from pathlib import Path, PurePath
from types import SimpleNamespace
from typing import Any, Literal, cast

import attrs

from ..states import State, StateType
from .cache_policies import CacheKeyFn, CachePolicy

__all__ = [
    "HOOKS",
    "MAX_DELAYS",
    "Caching",
    "Policy",
    "cache_expiration",
    "cache_policy",
    "callable_or_none",
    "exponential_backoff",
    "hooks",
    "is_async_hook",
    "jitter_factor",
    "retry_count",
    "retry_delays",
    "serializer",
    "storage",
    "timeout",
]

MAX_DELAYS = 50

HOOKS = ("on_running", "on_completion", "on_failure", "on_cancellation", "on_crashed")

# The hook each kind of final state calls.
_FINAL_HOOK = {
    StateType.COMPLETED: "on_completion",
    StateType.FAILED: "on_failure",
    StateType.CANCELLED: "on_cancellation",
    StateType.CRASHED: "on_crashed",
}


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


# attrs validators and converters for the options; messages name the option, and
# definitions.option_error adds the task or flow.


def timeout(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """``None`` or a number of seconds above 0."""
    if value is None:
        return
    if not _is_number(value):
        raise TypeError(f"{attribute.name} must be a number of seconds or None, got {value!r}")
    if not value > 0:  # type: ignore[operator]
        raise ValueError(f"{attribute.name} must be above 0 seconds, or None, got {value!r}")


def retry_count(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """An int of 0 or more."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"{attribute.name} must be 0 or more, got {value!r}")


def retry_delays(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Seconds: a number, a list of up to 50 numbers, or a callable making such a list."""
    if callable(value):
        return
    delays = _as_list(value)
    if not all(_is_number(d) for d in delays):
        raise TypeError(
            f"{attribute.name} must be a number of seconds, a list of them, or a function "
            f"of the retry count returning a list, got {value!r}"
        )
    if any(d < 0 for d in delays):
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")
    if len(delays) > MAX_DELAYS:
        raise ValueError(
            f"{attribute.name} may list at most {MAX_DELAYS} delays, got {len(delays)}"
        )


def _as_list(value: object) -> list[Any]:
    """A list or tuple as a list; anything else as a list of one."""
    if isinstance(value, list | tuple):
        return list(cast("Iterable[Any]", value))
    return [value]


def jitter_factor(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """``None`` or a number of 0 or more."""
    if value is None:
        return
    if not _is_number(value):
        raise TypeError(f"{attribute.name} must be a number or None, got {value!r}")
    if value < 0:  # type: ignore[operator]
        raise ValueError(f"{attribute.name} must be 0 or more, got {value!r}")


def callable_or_none(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """``None`` or a callable."""
    if value is not None and not callable(value):
        raise TypeError(f"{attribute.name} must be a function or None, got {value!r}")


def hooks(value: Iterable[Callable[..., Any]] | None) -> tuple[Callable[..., Any], ...]:
    """A converter: ``None`` or an iterable of callables, as a tuple.

    Raises:
        TypeError: The value is a single function, or holds something not callable.
    """
    if value is None:
        return ()
    if callable(value) or not isinstance(value, Iterable):
        raise TypeError(f"hooks must be given as a list of functions, got {value!r}")
    found = tuple(value)
    for hook in found:
        if not callable(hook):
            raise TypeError(f"hooks must be functions, got {hook!r}")
    return found


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """Retry delays that double each time: ``backoff_factor * 2 ** n`` seconds for retry n.

    Pass it as ``retry_delay_seconds=exponential_backoff(backoff_factor=10)``: 10, 20, 40 s...

    Raises:
        ValueError: ``backoff_factor`` is negative.
    """
    if not _is_number(backoff_factor) or backoff_factor < 0:
        raise ValueError(f"backoff_factor must be a number of 0 or more, got {backoff_factor!r}")

    def delays(retries: int) -> list[float]:
        return [backoff_factor * 2**n for n in range(min(retries, MAX_DELAYS))]

    return delays


@attrs.frozen
class Caching:
    """How a task's results are cached.

    Attributes:
        key: The policy that makes the cache key.
        expiration: How long a cached result may be reused; ``None`` for ever.
        refresh: Whether to run anyway and overwrite the cached result.
        persist: Whether results are written to disk (else kept in this process only).
        serializer: ``"json"``, ``"pickle"``, or ``None`` to choose per value.
        storage: The directory for result files; ``None`` for ``$FLOWKIT_HOME/results``.
    """

    key: CachePolicy
    expiration: timedelta | None = None
    refresh: bool = False
    persist: bool = True
    serializer: Literal["json", "pickle"] | None = None
    storage: Path | None = None

    @classmethod
    def of(cls, options: Any) -> Caching | None:
        """Read the caching options; ``None`` if the task does not cache."""
        key_fn = getattr(options, "cache_key_fn", None)
        key = CacheKeyFn(key_fn) if key_fn is not None else getattr(options, "cache_policy", None)
        if key is None:
            return None
        storage = getattr(options, "result_storage", None)
        return cls(
            key=key,
            expiration=options.cache_expiration,
            refresh=bool(options.refresh_cache),
            persist=options.persist_result is not False,
            serializer=options.result_serializer,
            storage=Path(storage).expanduser() if storage is not None else None,
        )


def cache_expiration(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """``None`` or a ``timedelta`` of 0 or more."""
    if value is None:
        return
    if not isinstance(value, timedelta):
        raise TypeError(f"{attribute.name} must be a datetime.timedelta or None, got {value!r}")
    if value < timedelta(0):
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


def cache_policy(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """``None`` or a ``CachePolicy``."""
    if value is not None and not isinstance(value, CachePolicy):
        raise TypeError(
            f"{attribute.name} must be a cache policy such as flowkit.cache_policies.INPUTS, "
            f"or None, got {value!r}"
        )


def serializer(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """``None``, ``"json"`` or ``"pickle"``."""
    if value not in (None, "json", "pickle"):
        raise ValueError(f"{attribute.name} must be 'json', 'pickle' or None, got {value!r}")


def storage(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """``None`` or a directory path."""
    if value is not None and not isinstance(value, str | PurePath):
        raise TypeError(f"{attribute.name} must be a directory path or None, got {value!r}")


@attrs.frozen
class Policy:
    """The engine's reading of a task's or flow's options.

    Attributes:
        timeout: Seconds each attempt may take, or ``None``.
        retries: How many times a failed run is tried again.
        delays: Seconds to wait before retry 1, 2, ...; the last repeats.
        jitter: Each delay is drawn from ``delay * (1 ± jitter)``; ``None`` for exact.
        retry_condition: ``(task, run, state) -> bool``; retry only when it says so.
        hooks: Functions to call by hook name, e.g. ``"on_failure"``.
        caching: How results are cached, if they are.
    """

    timeout: float | None = None
    retries: int = 0
    delays: Sequence[float] = ()
    jitter: float | None = None
    retry_condition: Callable[[Any, Any, State[Any]], bool] | None = None
    hooks: dict[str, tuple[Callable[..., Any], ...]] = attrs.field(factory=dict)
    caching: Caching | None = None

    @classmethod
    def of(cls, options: Any) -> Policy:
        """Read ``options`` (a ``TaskOptions`` or ``FlowOptions``).

        Raises:
            ValueError: A ``retry_delay_seconds`` function returned something that is not a
                list of delays (checked as the option would be).
        """
        retries: int = getattr(options, "retries", 0)
        delays: object = getattr(options, "retry_delay_seconds", 0)
        if getattr(options, "cache_key_fn", None) and getattr(options, "cache_policy", None):
            raise ValueError(
                "give cache_key_fn or cache_policy, not both (a cache_key_fn is a policy: "
                "add it to others with flowkit.cache_policies.CacheKeyFn(fn) + ...)"
            )
        if callable(delays):
            delays = delays(retries)
            retry_delays(None, _DELAY_ATTRIBUTE, delays)
        return cls(
            timeout=getattr(options, "timeout_seconds", None),
            retries=retries,
            delays=tuple(_as_list(delays)),
            jitter=getattr(options, "retry_jitter_factor", None),
            retry_condition=getattr(options, "retry_condition_fn", None),
            hooks={name: h for name in HOOKS if (h := getattr(options, name, ()))},
            caching=Caching.of(options),
        )

    @property
    def plain(self) -> bool:
        """Whether there is nothing to do around the body: it may run inline."""
        return self.timeout is None and not self.retries and not self.hooks

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (from 1), jitter included."""
        if not self.delays:
            return 0.0
        base = float(self.delays[min(retry, len(self.delays)) - 1])
        if not self.jitter:
            return base
        return random.uniform(max(0.0, base * (1 - self.jitter)), base * (1 + self.jitter))

    def final_hook(self, state: State[Any]) -> tuple[Callable[..., Any], ...]:
        """The hooks a run in final ``state`` calls."""
        return self.hooks.get(_FINAL_HOOK[state.type], ())


_DELAY_ATTRIBUTE: Any = SimpleNamespace(name="retry_delay_seconds")


def is_async_hook(hook: Callable[..., Any]) -> bool:
    """Whether ``hook`` must be awaited."""
    return inspect.iscoroutinefunction(hook)
