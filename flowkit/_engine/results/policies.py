"""Cache policies: what a task run's cache key is made of, with Prefect 3's names.

A policy's ``compute_key(task_ctx, inputs, flow_parameters)`` gives a key, or ``None``
for "no key from me". Policies add up with ``+``: the key is made of the parts' keys
that are not ``None``, and is ``None`` (do not cache) only if every part's is. ``policy -
"name"`` leaves a parameter out of the inputs part. A ``cache_key_fn`` is the simple path:
a function wrapped in a policy.

Keys come from ``cache.canonical``, never from pickles: a value that has no canonical
encoding makes ``compute_key`` raise a ``ValueError`` that says how to leave it out; the
engine logs it as a WARNING and runs the call uncached, as Prefect does.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

import attrs

from .cache import (
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
    "CacheKeyFn",
    "CacheKeyFnPolicy",
    "CachePolicy",
    "CompoundCachePolicy",
    "FlowParameters",
    "Inputs",
    "NoCache",
    "RunId",
    "TaskRunInfo",
    "TaskSource",
    "task_input_hash",
]

_log = logging.getLogger("flowkit.cache")


@attrs.frozen
class TaskRunInfo:
    """The task run a key is computed for: what a policy reads of Prefect's ``TaskRun``.

    Attributes:
        id: The task run's id.
        flow_run_id: The id of the flow run it belongs to; ``None`` outside any flow run.
    """

    id: UUID
    flow_run_id: UUID | None = None


@attrs.frozen
class CacheContext:
    """What a policy or ``cache_key_fn`` gets as ``task_ctx`` (Prefect's ``TaskRunContext``).

    Attributes:
        task: The task being called: ``.fn``, ``.name``, ``.task_key``.
        task_run: The run: ``.id`` and ``.flow_run_id``. ``None`` only when a context is
            made by hand, e.g. to test a key function.
        parameters: The call's arguments by parameter name.
    """

    task: Any
    task_run: TaskRunInfo | None = None
    parameters: dict[str, Any] = attrs.field(factory=dict)


class CachePolicy:
    """Base of the cache policies. Add them with ``+``; leave a parameter out with ``-``.

    A policy of your own subclasses this and implements ``compute_key``. As in Prefect,
    the base class can be made (``CachePolicy()``), but has no key to give.
    """

    def compute_key(
        self,
        task_ctx: CacheContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """This policy's key for a call, or ``None`` for no key.

        Args:
            task_ctx: The task and its run.
            inputs: The call's arguments by parameter name.
            flow_parameters: The enclosing flow run's parameters (``{}`` outside a flow).
            **kwargs: Reserved for later arguments; pass them on to the policies you call.

        Raises:
            NotImplementedError: Always, in the base class: a policy of your own
                overrides this method.
            ValueError: A value the key depends on has no canonical encoding.
        """
        raise NotImplementedError(
            f"{type(self).__name__}.compute_key is not implemented: a cache policy of your "
            "own subclasses CachePolicy and overrides compute_key(task_ctx, inputs, "
            "flow_parameters, **kwargs)"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @classmethod
    def from_cache_key_fn(
        cls, cache_key_fn: Callable[[CacheContext, dict[str, Any]], str | None]
    ) -> CacheKeyFnPolicy:
        """The policy of a ``cache_key_fn(task_ctx, inputs) -> str | None``."""
        return CacheKeyFnPolicy(cache_key_fn)

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return _combined((self, other))

    def __sub__(self, other: str) -> CachePolicy:
        """Leave parameter ``other`` out of the key: a policy that does not read the
        inputs is returned as it is.

        Raises:
            TypeError: ``other`` is not a parameter name.
        """
        _parameter_name(self, other)
        return self


def _parameter_name(policy: CachePolicy, name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(
            f"only a parameter name can be subtracted from a cache policy, got "
            f"{policy!r} - {name!r}; write e.g. INPUTS - 'client'"
        )
    return name


def _names(value: Iterable[str]) -> list[str]:
    """An ``exclude=`` iterable as a sorted list of distinct names (a list, as Prefect's
    attribute is), so that equal sets make equal policies.

    Raises:
        TypeError: ``value`` is a str, or holds something other than str.
    """
    names = None if isinstance(value, str) else list(value)
    if names is None or not all(isinstance(n, str) for n in names):
        raise TypeError(
            f"Inputs(exclude=...) takes a list of parameter names, got {value!r}; "
            "write e.g. exclude=['client']"
        )
    return sorted(set(names))


def _encoded(task_ctx: CacheContext, values: dict[str, Any], what: str, fix: str) -> Any:
    """The canonical form of ``values``, by name.

    Raises:
        ValueError: A value has no canonical encoding; the message names the task, the
            parameter, the value's type and ``fix``.
    """
    encoded: dict[str, Any] = {}
    for name, value in values.items():
        try:
            encoded[name] = canonical(value)
        except Unencodable as exc:
            fixed = fix.format(name=name)
            raise ValueError(
                f"task {task_ctx.task.name!r}: {what} {name!r} (type {type(value).__name__}) "
                f"cannot be part of a cache key: {exc}. {fixed}, or pass a value of a "
                "plain type (str, number, list, dict, attrs or dataclass instance)"
            ) from exc
    return canonical_dict(encoded)


@attrs.frozen(repr=False)
class Inputs(CachePolicy):
    """The call's arguments, except those named in ``exclude``.

    No key for a call without arguments. Prefect's ``Inputs``: ``INPUTS - "client"`` is
    ``Inputs(exclude=["client"])``.

    Attributes:
        exclude: The parameters left out of the key: a sorted list of distinct names.
    """

    # Compared and hashed as a tuple: a list field would make the policy unhashable.
    exclude: list[str] = attrs.field(factory=list, converter=_names, eq=tuple)

    def compute_key(
        self,
        task_ctx: CacheContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """The digest of the arguments not excluded; ``None`` if the call has none.

        Raises:
            ValueError: An argument has no canonical encoding.
        """
        if not inputs:
            return None
        kept = {k: v for k, v in inputs.items() if k not in self.exclude}
        return digest_canonical(
            _encoded(
                task_ctx, kept, "parameter", "Leave it out with cache_policy=INPUTS - {name!r}"
            )
        )

    def __sub__(self, other: str) -> CachePolicy:
        return Inputs([*self.exclude, _parameter_name(self, other)])

    def __repr__(self) -> str:
        return " - ".join(["INPUTS", *map(repr, self.exclude)])


@attrs.frozen(repr=False)
class TaskSource(CachePolicy):
    """The source code of the task's function: editing it invalidates the cache."""

    def compute_key(
        self,
        task_ctx: CacheContext | None,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """The digest of the function's source (of its bytecode, if it has no source);
        ``None`` without a task context, as in Prefect."""
        if task_ctx is None:
            return None
        fn = task_ctx.task.fn
        while getattr(fn, "kind", None) in ("task", "flow"):  # task(my_flow): its function
            fn = fn.fn
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):  # no source file: the code itself still tells edits
            source = f"{fn.__module__}.{fn.__qualname__}:{fn.__code__.co_code.hex()}"
        return digest(source)

    def __repr__(self) -> str:
        return "TASK_SOURCE"


@attrs.frozen(repr=False)
class FlowParameters(CachePolicy):
    """The parameters of the enclosing flow run. No key outside a flow or without any."""

    def compute_key(
        self,
        task_ctx: CacheContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """The digest of the flow parameters; ``None`` if there are none.

        Raises:
            ValueError: A flow parameter has no canonical encoding.
        """
        if not flow_parameters:
            return None
        fix = "Take FLOW_PARAMETERS out of the task's cache_policy"
        return digest_canonical(_encoded(task_ctx, flow_parameters, "flow parameter", fix))

    def __repr__(self) -> str:
        return "FLOW_PARAMETERS"


@attrs.frozen(repr=False)
class RunId(CachePolicy):
    """The enclosing flow run's id (the task run's own, outside a flow): results are reused
    only within one flow run."""

    def compute_key(
        self,
        task_ctx: CacheContext | None,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """The flow run's id, else the task run's; ``None`` without a task context or
        run, as in Prefect."""
        if task_ctx is None:
            return None
        run = task_ctx.task_run
        if run is None:
            return None
        return str(run.flow_run_id if run.flow_run_id is not None else run.id)

    def __repr__(self) -> str:
        return "RUN_ID"


@attrs.frozen(repr=False)
class NoCache(CachePolicy):
    """Never a key: adding it to a policy changes nothing; alone, nothing is cached."""

    def compute_key(
        self,
        task_ctx: CacheContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """Always ``None``."""
        return None

    def __repr__(self) -> str:
        return "NO_CACHE"


def _callable(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise TypeError(
            f"{attribute.name} must be a function (task_ctx, inputs) -> str | None, got {value!r}"
        )


@attrs.frozen(repr=False)
class CacheKeyFnPolicy(CachePolicy):
    """A ``cache_key_fn(task_ctx, inputs) -> str | None`` as a policy, to add to others.

    Attributes:
        cache_key_fn: The function; ``None`` from it means no key.
    """

    cache_key_fn: Callable[[CacheContext, dict[str, Any]], str | None] = attrs.field(
        validator=_callable
    )

    def compute_key(
        self,
        task_ctx: CacheContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """What the function returns.

        Raises:
            TypeError: The function returned something other than a str or ``None``.
        """
        key = self.cache_key_fn(task_ctx, inputs)
        if key is not None and not isinstance(key, str):
            raise TypeError(
                f"task {task_ctx.task.name!r}: cache_key_fn must return a str or None, got {key!r}"
            )
        return key

    def __repr__(self) -> str:
        fn = self.cache_key_fn
        return f"CacheKeyFnPolicy({getattr(fn, '__qualname__', None) or repr(fn)})"


CacheKeyFn = CacheKeyFnPolicy
"""flowkit's earlier name of ``CacheKeyFnPolicy``."""


def _flattened(policies: Iterable[CachePolicy]) -> tuple[CachePolicy, ...]:
    """The parts of ``policies``: compounds opened, ``NO_CACHE`` and repeats dropped, and
    the ``Inputs`` parts merged into one, last (so ``INPUTS + X == X + INPUTS``)."""
    flat: list[CachePolicy] = []
    excluded: list[str] = []
    inputs = False
    for policy in policies:
        if not isinstance(policy, CachePolicy):
            raise TypeError(
                f"a compound cache policy is made of cache policies such as "
                f"flowkit.cache_policies.INPUTS, got {policy!r}"
            )
        for part in parts_of(policy):
            if isinstance(part, Inputs):
                inputs = True
                excluded.extend(part.exclude)
            elif not isinstance(part, NoCache) and part not in flat:
                flat.append(part)
    if inputs:
        flat.append(Inputs(excluded))
    return tuple(flat)


@attrs.frozen(repr=False)
class CompoundCachePolicy(CachePolicy):
    """Several policies: the key is made of the keys of those that give one.

    ``a + b`` makes one. Nested compounds are flattened and the ``Inputs`` parts merged.

    Attributes:
        policies: The parts, in order.
    """

    policies: tuple[CachePolicy, ...] = attrs.field(factory=tuple, converter=_flattened)

    def compute_key(
        self,
        task_ctx: CacheContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """The digest of the parts' keys; ``None`` if no part gives one.

        Raises:
            ValueError: A part could not encode a value it depends on.
        """
        keys = [
            key
            for policy in self.policies
            if (key := policy.compute_key(task_ctx, inputs, flow_parameters, **kwargs)) is not None
        ]
        return digest(*keys) if keys else None

    def __sub__(self, other: str) -> CachePolicy:
        name = _parameter_name(self, other)
        if not any(isinstance(p, Inputs) for p in self.policies):
            return self  # the key does not depend on the inputs already
        return CompoundCachePolicy((*self.policies, Inputs((name,))))

    def __repr__(self) -> str:
        return " + ".join(map(repr, self.policies)) if self.policies else "NO_CACHE"


def parts_of(policy: CachePolicy) -> tuple[CachePolicy, ...]:
    return policy.policies if isinstance(policy, CompoundCachePolicy) else (policy,)


def _combined(policies: Iterable[CachePolicy]) -> CachePolicy:
    """The sum of ``policies``: a single part as itself, no part as ``NO_CACHE``."""
    parts = _flattened(policies)
    if len(parts) == 1:
        return parts[0]
    return CompoundCachePolicy(parts) if parts else NO_CACHE


INPUTS = Inputs()
TASK_SOURCE = TaskSource()
FLOW_PARAMETERS = FlowParameters()
RUN_ID = RunId()
NONE = NO_CACHE = NoCache()
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID


def task_input_hash(context: CacheContext, arguments: dict[str, Any]) -> str | None:
    """A ``cache_key_fn``: the same for calls of the same task, with the same code, with
    equal arguments.

    Deterministic across processes and machines: arguments are encoded canonically (dict
    order does not matter), never through ``id()`` or pickle. An argument with no
    canonical encoding makes the key ``None`` (the call runs uncached) and logs a WARNING.
    """
    task = context.task
    code = getattr(getattr(task.fn, "__code__", None), "co_code", b"")
    fix = "Leave it out with cache_policy=INPUTS - {name!r} in place of this cache_key_fn"
    try:
        encoded = _encoded(context, arguments, "parameter", fix)
    except ValueError as exc:
        _log.warning("%s; the call runs uncached", exc)
        return None
    return digest_canonical([task.task_key, code.hex(), encoded])
