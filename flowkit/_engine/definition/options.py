"""Every option of ``@task`` and ``@flow``, declared once: name, type, default, check, doc.

``Options`` holds what tasks and flows share; ``TaskOptions`` and ``FlowOptions`` add the
rest. ``Task`` and ``Flow`` inherit from them, so each option is an attribute of the
definition under Prefect's name. The keyword signatures (``OptionsDict``,
``TaskOptionsDict``, ``FlowOptionsDict``: ``Unpack`` needs a TypedDict, which attrs
cannot give) sit beside them, and a test keeps their keys and types the same. A new
option is declared here, read where it is used, and documented: nothing else.

Validators raise ``TypeError``/``ValueError`` naming the option, the bad value and what
is accepted; ``definitions`` prefixes the task or flow.
"""

from __future__ import annotations

import enum
import inspect
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from numbers import Real
from pathlib import PurePath
from typing import Any, Final, TypedDict, cast

import attrs

from ...states import State
from ..loops import BACKENDS, Backend
from ..results.policies import CacheContext, CachePolicy
from ..results.storage import (
    ResultSerializer,
    ResultStorage,
    SerializerOption,
    StorageOption,
    cloudpickle,
)
from .task_runner import TaskRunner

__all__ = [
    "MAX_DELAYS",
    "MAX_DELAY_SECONDS",
    "MAX_EXPIRATION",
    "MAX_JITTER",
    "NOT_SET",
    "CacheKeyFunction",
    "FlowOptions",
    "FlowOptionsDict",
    "Hook",
    "NotSet",
    "Options",
    "OptionsDict",
    "RetryCondition",
    "RetryDelays",
    "RunName",
    "TaskOptions",
    "TaskOptionsDict",
    "TransactionHook",
    "as_delay_list",
    "check_delays",
    "check_transaction_hook",
]

MAX_DELAYS = 50
MAX_DELAY_SECONDS = 86_400.0
"""The longest wait before a retry, jitter included: a day. Longer is a schedule's job."""
MAX_JITTER = 100
"""The largest ``retry_jitter_factor``: a delay varies by at most a hundred times itself."""
MAX_EXPIRATION = timedelta(days=100 * 366)
"""The longest ``cache_expiration``: a century (``None`` is for ever)."""


class NotSet(enum.Enum):
    """The type of ``NOT_SET``: an option left out, as opposed to set to ``None``."""

    NOT_SET = "NOT_SET"

    def __repr__(self) -> str:
        return "NOT_SET"


NOT_SET: Final = NotSet.NOT_SET

Hook = Callable[[Any, Any, State[Any]], object]
# ``fn(transaction)``: a task's on_commit or on_rollback hook.
TransactionHook = Callable[[Any], object]
RetryDelays = float | Sequence[float] | Callable[[int], Sequence[float]]
# A function returning a bool, or an awaitable of one (an async function).
RetryCondition = Callable[[Any, Any, State[Any]], object]
CacheKeyFunction = Callable[[CacheContext, dict[str, Any]], str | None]
# A template over the arguments, or a function of nothing or of ``parameters``.
RunName = str | Callable[[], str] | Callable[[dict[str, Any]], str]


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _optional(kind: type | tuple[type, ...], what: str) -> Callable[..., None]:
    """A validator: ``None`` or an instance of ``kind``, described as ``what``."""

    def validate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not isinstance(value, kind):
            raise TypeError(f"{attribute.name} must be {what} or None, got {value!r}")

    return validate


_optional_str = _optional(str, "a str")
_optional_bool = _optional(bool, "True or False")


def _bool(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be True or False, got {value!r}")


def _name(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{attribute.name} must be a non-empty str, got {value!r}")


def _positive_int(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be a positive int or None, got {value!r}")
    if value < 1:
        raise ValueError(
            f"{attribute.name} must be at least 1, or None for no bound, got {value!r}"
        )


def _timeout(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not _is_number(value):
        raise TypeError(f"{attribute.name} must be a number of seconds or None, got {value!r}")
    if not value > 0:  # type: ignore[operator]  # NaN too
        raise ValueError(f"{attribute.name} must be above 0 seconds, or None, got {value!r}")


def _retry_count(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be an int (0 or more) or None, got {value!r}")
    if value < 0:
        raise ValueError(f"{attribute.name} must be 0 or more, got {value!r}")


def as_delay_list(value: object) -> list[Any]:
    """A list or tuple as a list; anything else as a list of one."""
    if isinstance(value, list | tuple):
        return list(cast("Iterable[Any]", value))
    return [value]


def check_delays(name: str, value: object) -> None:
    """Check a number of seconds, or a list of up to ``MAX_DELAYS`` of them.

    Raises:
        TypeError: Something other than numbers.
        ValueError: A delay that is negative, NaN, or over ``MAX_DELAY_SECONDS``; or
            too many delays.
    """
    delays = as_delay_list(value)
    if not all(_is_number(d) for d in delays):
        raise TypeError(
            f"{name} must be a number of seconds, a list of them, or a function of the "
            f"retry count returning a list, got {value!r}"
        )
    if not all(0 <= d <= MAX_DELAY_SECONDS for d in delays):  # NaN fails both
        raise ValueError(
            f"{name} must be from 0 to {MAX_DELAY_SECONDS:.0f} seconds (a day) each, got {value!r}"
        )
    if len(delays) > MAX_DELAYS:
        raise ValueError(f"{name} may list at most {MAX_DELAYS} delays, got {len(delays)}")


def _retry_delays(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        check_delays(attribute.name, value)


def _jitter(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not _is_number(value):
        raise TypeError(f"{attribute.name} must be a number or None, got {value!r}")
    if not 0 <= value <= MAX_JITTER:  # type: ignore[operator]  # NaN fails it too
        raise ValueError(f"{attribute.name} must be from 0 to {MAX_JITTER}, got {value!r}")


def _callable(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{attribute.name} must be a function or None, got {value!r}")


def _run_name(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str) and not callable(value):
        raise TypeError(
            f"{attribute.name} must be a str.format template, a function returning a str, "
            f"or None, got {value!r}"
        )


def _expiration(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, timedelta):
        raise TypeError(f"{attribute.name} must be a datetime.timedelta or None, got {value!r}")
    if value < timedelta(0):
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")
    if value > MAX_EXPIRATION:
        # Larger values overflow the expiry date (timedelta.max did, at every run).
        raise ValueError(
            f"{attribute.name} must be at most {MAX_EXPIRATION.days} days, got {value!r}; "
            "use None for results that never expire"
        )


def _cache_policy(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and value is not NOT_SET and not isinstance(value, CachePolicy):
        raise TypeError(
            f"{attribute.name} must be a cache policy such as flowkit.cache_policies.INPUTS, "
            f"or None, got {value!r}"
        )


def _serializer(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None or isinstance(value, ResultSerializer):
        return
    if value == "cloudpickle":
        cloudpickle()  # refuse it now, not at the first result, if it is not installed
        return
    if value not in ("json", "pickle"):
        raise ValueError(
            f"{attribute.name} must be 'json', 'pickle', 'cloudpickle', an object with "
            f"dumps(value) -> bytes and loads(bytes) methods, or None, got {value!r}"
        )


def _storage(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None or isinstance(value, str | PurePath | ResultStorage):
        return
    raise TypeError(
        f"{attribute.name} must be a directory path, an object with read_path(path) and "
        f"write_path(path, content) methods such as flowkit.filesystems.LocalFileSystem, "
        f"or None, got {value!r}"
    )


_STORAGE_KEY_FIELDS = frozenset({"parameters", "task_run", "flow_run"})


def _storage_key(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise TypeError(f"{attribute.name} must be a non-empty str template or None, got {value!r}")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
    except ValueError as exc:
        raise ValueError(
            f"{attribute.name} {value!r} is not a str.format template: {exc}"
        ) from None
    for field in fields:
        root = re.split(r"[.\[]", field, maxsplit=1)[0]
        if root not in _STORAGE_KEY_FIELDS:
            raise ValueError(
                f"{attribute.name} {value!r} uses {{{field}}}; a template may use "
                "{parameters[name]}, {task_run.<attribute>} and {flow_run.<attribute>}"
            )


def _backend(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and value not in BACKENDS:
        raise ValueError(
            f"{attribute.name} must be 'asyncio', 'trio', 'asyncio+uvloop' or None, got {value!r}"
        )


def _task_runner(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, type) and issubclass(value, TaskRunner):
        raise TypeError(
            f"{attribute.name} must be a task runner instance, got the class {value.__name__}; "
            f"write {value.__name__}()"
        )
    if value is not None and not isinstance(value, TaskRunner):
        raise TypeError(
            f"{attribute.name} must be a runner from flowkit.task_runners, such as "
            f"ThreadPoolTaskRunner(max_workers=8), or None, got {value!r}"
        )


def _tags(value: Iterable[str] | None) -> frozenset[str]:
    """A collection of strings (a lone string is a mistake)."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        raise TypeError(f"tags must be a collection of strings, got {value!r}; write [{value!r}]")
    if not isinstance(value, Iterable):
        raise TypeError(f"tags must be a collection of strings, got {value!r}")
    tags = frozenset(cast("Iterable[object]", value))
    for tag in tags:
        if not isinstance(tag, str):
            raise TypeError(f"tags must be strings, got {tag!r} in {value!r}")
    return cast("frozenset[str]", tags)


def _hooks(value: Iterable[Hook] | None, option: str) -> tuple[Hook, ...]:
    """``None`` or a list of callables, as a tuple.

    Raises:
        TypeError: ``value`` is not a list of functions; the message names ``option``.
    """
    if value is None:
        return ()
    single = callable(value)
    if single or isinstance(value, str | Mapping) or not isinstance(value, Iterable):
        fix = f"; pass {option}=[{value!r}] for a single function" if single else ""
        raise TypeError(f"{option} must be a list of functions, got {value!r}{fix}")
    found = tuple(cast("Iterable[object]", value))
    for hook in found:
        if not callable(hook):
            raise TypeError(f"{option} must hold functions only, got {hook!r} in {value!r}")
    return cast("tuple[Hook, ...]", found)


def check_transaction_hook(hook: object) -> None:
    """Refuse an ``on_commit``/``on_rollback`` hook a transaction cannot call.

    Raises:
        TypeError: ``hook`` is not callable, or is an async function: a transaction
            calls its hooks synchronously, with itself, as Prefect's does.
    """
    if not callable(hook):
        raise TypeError(f"hooks must be functions, got {hook!r}")
    if inspect.iscoroutinefunction(hook):
        raise TypeError(
            "on_commit and on_rollback hooks are called synchronously, with the "
            f"transaction; {hook!r} is an async function: make it a plain function"
        )


def _transaction_hooks(
    value: Iterable[TransactionHook] | None, option: str
) -> tuple[TransactionHook, ...]:
    """``_hooks``, of plain functions only."""
    hooks = _hooks(cast("Iterable[Hook] | None", value), option)
    found = cast("tuple[TransactionHook, ...]", hooks)
    for hook in found:
        check_transaction_hook(hook)
    return found


def _default_true(value: bool | None) -> bool:
    return True if value is None else value


def _retries(value: int | None) -> int:
    return 0 if value is None else value


def _delays(value: RetryDelays | None) -> RetryDelays:
    return 0 if value is None else value


def _hooks_field(option: str) -> Any:
    # The attribute is ``on_failure_hooks`` (as in Prefect): ``on_failure`` is the
    # decorator that adds one.
    def converter(value: Iterable[Hook] | None) -> tuple[Hook, ...]:
        return _hooks(value, option)

    return attrs.field(default=(), converter=converter, alias=option)


def _transaction_hooks_field(option: str) -> Any:
    def converter(value: Iterable[TransactionHook] | None) -> tuple[TransactionHook, ...]:
        return _transaction_hooks(value, option)

    return attrs.field(default=(), converter=converter, alias=option)


class OptionsDict(TypedDict, total=False):
    """The keywords of the options tasks and flows share (``Options`` declares them).

    ``TaskOptionsDict`` and ``FlowOptionsDict`` add each kind's own; a test keeps the
    keys and types the same as the declarations.
    """

    name: str | None
    description: str | None
    version: str | None
    log_prints: bool | None
    timeout_seconds: float | None
    retries: int | None
    retry_delay_seconds: RetryDelays | None
    max_concurrency: int | None
    on_completion: Iterable[Hook] | None
    on_failure: Iterable[Hook] | None
    on_running: Iterable[Hook] | None
    persist_result: bool | None
    result_storage: StorageOption | None
    result_serializer: SerializerOption | None
    cache_result_in_memory: bool | None


@attrs.frozen(kw_only=True, slots=False)
class Options:
    """What tasks and flows share.

    Attributes:
        name: The name. Default: the function's name (for a flow, with ``_`` as ``-``).
        description: What it does. Default: the function's docstring.
        version: A version string of your choosing.
        log_prints: Whether ``print`` in the body becomes an INFO log record of the run.
            ``None`` (the default) takes the setting of the calling run (else off).
        timeout_seconds: How long one attempt may run; past it the run ends ``TimedOut``
            and the caller gets ``TaskTimeoutError``/``FlowTimeoutError``. ``None``: no limit.
        retries: How many times to try again after a failure. Default 0.
        retry_delay_seconds: Seconds to wait before a retry: a number, a list with one
            delay per retry (the last repeats), or a function of ``retries`` returning
            such a list, such as ``exponential_backoff(backoff_factor=2)``. Default 0.
            Each delay is from 0 to ``MAX_DELAY_SECONDS`` (a day).
        max_concurrency: How many task runs one run may have submitted and unfinished at
            once; ``None`` (the default) for no bound.
        on_completion_hooks: ``fn(definition, run, state)`` called when a run completes
            (option ``on_completion``).
        on_failure_hooks: The same, when a run fails after its last retry (``on_failure``).
        on_running_hooks: The same, when an attempt starts running (``on_running``).
        persist_result: Whether results are written to the result storage (caching
            needs it). ``None`` (the default): yes when ``result_storage`` or
            ``result_serializer`` is given (for a task also a cache policy,
            ``cache_key_fn`` or ``result_storage_key``), else as the calling run
            (a task in a flow run that persists persists), else no.
        result_storage: Where results are written: a directory (``str`` or
            ``pathlib.Path``), or an object with ``read_path(path) -> bytes`` and
            ``write_path(path, content)`` such as ``flowkit.filesystems.LocalFileSystem``.
            ``None``: the calling run's, else ``$FLOWKIT_HOME/results``.
        result_serializer: How results are written: ``"json"`` (through cattrs),
            ``"pickle"``, ``"cloudpickle"`` (if installed), or an object with
            ``dumps(value) -> bytes`` and ``loads(bytes)``. ``None``: the calling run's,
            else JSON when it holds the value exactly, and cloudpickle otherwise.
        cache_result_in_memory: ``False``: once a result is persisted, the run's state
            keeps only where it is, and ``state.result()`` reads it back. Default ``True``.
    """

    name: str = attrs.field(validator=_name)
    description: str | None = attrs.field(default=None, validator=_optional_str)
    version: str | None = attrs.field(default=None, validator=_optional_str)
    log_prints: bool | None = attrs.field(default=None, validator=_optional_bool)
    timeout_seconds: float | None = attrs.field(default=None, validator=_timeout)
    retries: int = attrs.field(default=0, converter=_retries, validator=_retry_count)
    retry_delay_seconds: RetryDelays = attrs.field(
        default=0, converter=_delays, validator=_retry_delays
    )
    max_concurrency: int | None = attrs.field(default=None, validator=_positive_int)
    on_completion_hooks: tuple[Hook, ...] = _hooks_field("on_completion")
    on_failure_hooks: tuple[Hook, ...] = _hooks_field("on_failure")
    on_running_hooks: tuple[Hook, ...] = _hooks_field("on_running")
    persist_result: bool | None = attrs.field(default=None, validator=_optional_bool)
    result_storage: StorageOption | None = attrs.field(default=None, validator=_storage)
    result_serializer: SerializerOption | None = attrs.field(default=None, validator=_serializer)
    cache_result_in_memory: bool = attrs.field(default=True, validator=_bool)


@attrs.frozen(kw_only=True, slots=False)
class TaskOptions(Options):
    """The options only tasks have.

    Attributes:
        tags: Labels for the task's runs, added to those of enclosing ``tags()`` blocks.
        task_run_name: Names each run: a ``str.format`` template over the call's
            arguments (``"fetch-{url}"``, ``"{self.name}-{x}"`` for a method), or a
            function returning the name, called with ``parameters=`` if it has such a
            parameter (else with nothing; it may read ``flowkit.runtime``). Default:
            ``"<name>-<n>"``, ``n`` counting runs of the task from 0 in each flow run.
        retry_jitter_factor: Vary each delay at random by up to this fraction of it
            (0 to ``MAX_JITTER``; a varied delay is a day at most). ``None``: exact delays.
        retry_condition_fn: ``fn(task, task_run, state) -> bool``, or an async function
            (awaited); a failed attempt is retried only when it returns true. ``None``:
            every failure is retried.
        cache_policy: What the cache key is made of, such as ``INPUTS + TASK_SOURCE``.
            Read back, it is the policy in force: ``cache_key_fn``'s when given,
            ``NO_CACHE`` when ``persist_result=False``, ``DEFAULT`` when left out.
        cache_key_fn: ``fn(context, parameters) -> str | None``: the cache key. A call
            whose key matches a completed run (not expired) returns its result, in
            state ``Cached``; ``None`` from the function: do not cache this call.
        cache_expiration: How long a cached result may be reused. ``None``: for ever.
        refresh_cache: Run even on a cache hit, and overwrite the cached result.
        result_storage_key: The result's file name in its storage, a ``str.format``
            template over ``parameters`` (``"report-{parameters[day]}.json"``),
            ``task_run`` and ``flow_run``. It is the cache key: a run whose name holds
            a result (not expired) returns it, ``Cached``, whatever the cache policy.
        buffer: For a generator task: how many values its body may produce ahead of the
            reader. ``None`` (the default): none, the body runs one step per value read.
        viz_return_value: Accepted for Prefect's UI; it has no effect in flowkit.
        on_commit_hooks: ``fn(transaction)`` called when the transaction a completed run
            took part in commits (option ``on_commit``); see ``flowkit.transactions``.
        on_rollback_hooks: ``fn(transaction)`` called when it rolls back, after the run
            completed (option ``on_rollback``).
    """

    tags: frozenset[str] = attrs.field(default=frozenset(), converter=_tags)
    task_run_name: RunName | None = attrs.field(default=None, validator=_run_name)
    retry_jitter_factor: float | None = attrs.field(default=None, validator=_jitter)
    retry_condition_fn: RetryCondition | None = attrs.field(default=None, validator=_callable)
    cache_policy: CachePolicy | NotSet | None = attrs.field(
        default=NOT_SET, validator=_cache_policy
    )
    cache_key_fn: CacheKeyFunction | None = attrs.field(default=None, validator=_callable)
    cache_expiration: timedelta | None = attrs.field(default=None, validator=_expiration)
    refresh_cache: bool | None = attrs.field(default=None, validator=_optional_bool)
    result_storage_key: str | None = attrs.field(default=None, validator=_storage_key)
    buffer: int | None = attrs.field(default=None, validator=_positive_int)
    viz_return_value: object = None
    # The attribute is ``on_commit_hooks``: ``on_commit`` is the decorator that adds one.
    on_commit_hooks: tuple[TransactionHook, ...] = _transaction_hooks_field("on_commit")
    on_rollback_hooks: tuple[TransactionHook, ...] = _transaction_hooks_field("on_rollback")


class TaskOptionsDict(OptionsDict, total=False):
    """The options of ``@task``, ``Task(...)`` and ``Task.with_options`` as keywords.

    Each is declared (type, default, meaning) in ``TaskOptions``; a test keeps these
    keys and types the same. ``None`` keeps ``name``, ``description``, ``tags`` and the
    hooks in ``with_options``, and sets any other option to ``None`` (its default).
    """

    tags: Iterable[str] | None
    task_run_name: RunName | None
    retry_jitter_factor: float | None
    retry_condition_fn: RetryCondition | None
    cache_policy: CachePolicy | None
    cache_key_fn: CacheKeyFunction | None
    cache_expiration: timedelta | None
    refresh_cache: bool | None
    result_storage_key: str | None
    buffer: int | None
    viz_return_value: object
    on_commit: Iterable[TransactionHook] | None
    on_rollback: Iterable[TransactionHook] | None


@attrs.frozen(kw_only=True, slots=False)
class FlowOptions(Options):
    """The options only flows have.

    Attributes:
        flow_run_name: Names each run: a template over the arguments or a function, as
            ``task_run_name``. Default: a generated name such as ``"great-ammonite"``.
        backend: The event loop a *sync* flow starts for its run when called outside
            any flow: ``"asyncio"``, ``"trio"`` or ``"asyncio+uvloop"`` (asyncio on
            uvloop, the ``uvloop`` extra). ``None`` (the default) reads
            ``FLOWKIT_BACKEND``, else asyncio. An async flow runs on the loop awaiting it.
        thread_limit: How many sync task bodies of this flow may run in worker threads
            at once. ``None`` (the default) shares the parent flow's limit, or reads
            ``FLOWKIT_THREAD_LIMIT``, else 40.
        on_cancellation_hooks: ``fn(flow, flow_run, state)`` called when a run is
            cancelled (option ``on_cancellation``).
        on_crashed_hooks: The same, when a run crashes (``on_crashed``).
        progress: Whether a run called outside any flow shows a live progress line
            (task runs finished, running and failed; time elapsed) when stderr is a
            terminal. ``None`` (the default) reads ``FLOWKIT_PROGRESS``, else off.
        task_runner: Where the flow's submitted task runs execute: a runner from
            ``flowkit.task_runners``. ``None`` (the default): ``ThreadPoolTaskRunner()``,
            sync bodies in worker threads and async bodies on the flow's loop. Plain
            calls always run in the flow's process, whatever the runner.
        validate_parameters: Whether the call's arguments are checked and coerced
            against the function's type hints before the run starts (``"3"`` becomes
            ``3`` for an ``int`` parameter); an argument that does not fit fails the
            run with ``ParameterTypeError``. Default ``True``.
    """

    flow_run_name: RunName | None = attrs.field(default=None, validator=_run_name)
    backend: Backend | None = attrs.field(default=None, validator=_backend)
    thread_limit: int | None = attrs.field(default=None, validator=_positive_int)
    on_cancellation_hooks: tuple[Hook, ...] = _hooks_field("on_cancellation")
    on_crashed_hooks: tuple[Hook, ...] = _hooks_field("on_crashed")
    progress: bool | None = attrs.field(default=None, validator=_optional_bool)
    validate_parameters: bool = attrs.field(default=True, converter=_default_true, validator=_bool)
    task_runner: TaskRunner | None = attrs.field(default=None, validator=_task_runner)


class FlowOptionsDict(OptionsDict, total=False):
    """The options of ``@flow``, ``Flow(...)`` and ``Flow.with_options`` as keywords.

    Each is declared (type, default, meaning) in ``FlowOptions``; a test keeps these
    keys and types the same. ``None`` keeps ``name``, ``description`` and the hooks in
    ``with_options``, and sets any other option to ``None`` (its default).
    """

    flow_run_name: RunName | None
    backend: Backend | None
    thread_limit: int | None
    on_cancellation: Iterable[Hook] | None
    on_crashed: Iterable[Hook] | None
    progress: bool | None
    validate_parameters: bool | None
    task_runner: TaskRunner | None
