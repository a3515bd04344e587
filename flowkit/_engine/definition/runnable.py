"""What ``Task`` and ``Flow`` share: wrapping a callable, validating options, binding
to instances and classes, registering hooks, and the policy the engine reads."""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, NoReturn, ParamSpec, Self, TypeVar, cast

import attrs

from ...exceptions import ReservedArgumentError
from ..naming import check_template
from .options import FlowOptions, Hook, Options, TaskOptions
from .policy import Policy
from .signature import PlainParameters, plain_parameters

__all__ = [
    "RESERVED_PARAMETERS",
    "Binding",
    "Runnable",
    "default_name",
    "introspected",
    "refuse_assignment",
    "source_file_hash",
    "unwrap_callable",
]

P = ParamSpec("P")
# Covariant: pyright types an async function as returning CoroutineType, and the async
# overloads (submit, return_state) ask for a Runnable returning some Coroutine.
R = TypeVar("R", covariant=True)

# Keywords that every call takes for itself, so a function cannot have them.
RESERVED_PARAMETERS = ("return_state", "wait_for")

Binding = Literal["instance", "class", "static"]
H = TypeVar("H", bound=Hook)


def unwrap_callable(fn: object, decorator: str) -> tuple[Callable[..., Any], Binding]:
    """What a decorator was applied to: the callable, and how lookups bind it.

    Raises:
        TypeError: ``fn`` is not callable.
    """
    if isinstance(fn, classmethod):
        return _checked(cast("object", fn.__func__), decorator), "class"
    if isinstance(fn, staticmethod):
        return _checked(cast("object", fn.__func__), decorator), "static"
    return _checked(fn, decorator), "instance"


def _checked(fn: object, decorator: str) -> Callable[..., Any]:
    if not callable(fn) or isinstance(fn, type):
        raise TypeError(
            f"{decorator} needs a function or another callable object, got {fn!r} of type "
            f"{type(fn).__name__}"
        )
    return fn


_NO_NAME = object()


def introspected(fn: object) -> object:
    """What to read a callable's name, docstring and source from: a partial's function,
    and for a task or flow wrapped again (``task(my_flow)``), the function it wraps."""
    while True:
        if isinstance(fn, functools.partial):
            fn = fn.func  # pyright: ignore[reportUnknownMemberType]
        elif isinstance(fn, Runnable):
            fn = fn.fn  # pyright: ignore[reportUnknownMemberType]
        else:
            return fn


def default_name(fn: Callable[..., Any], decorator: str) -> str:
    """The name of a callable: its ``__name__``, a partial's function's, a task's or
    flow's function's, or its type's.

    Raises:
        TypeError: The callable has no name to take (give ``name=``).
    """
    target = introspected(fn)
    name = getattr(target, "__name__", _NO_NAME)
    if name is _NO_NAME and not inspect.isroutine(target):
        name = type(target).__name__  # a callable object: named after its class
    if not isinstance(name, str) or not name:
        raise TypeError(f"{decorator} cannot take a name from {fn!r}; pass name='...'")
    return name


def source_file_hash(fn: Callable[..., Any]) -> str | None:
    """A flow's default ``version``, as Prefect computes it: the MD5 hex digest of the
    file that defines ``fn``; ``None`` when there is no such file to read (a REPL, a
    notebook cell, ``exec``, a partial or a callable object)."""
    try:
        path = inspect.getsourcefile(fn)
        if path is None:
            return None
        # The same digest as Prefect's, so a ported flow keeps its version strings.
        return hashlib.md5(Path(path).read_bytes(), usedforsecurity=False).hexdigest()
    except (TypeError, OSError):  # no source file, or one that cannot be read now
        return None


def func_name(fn: object) -> str:
    """A name for ``fn`` in messages, whatever it is."""
    return str(getattr(introspected(fn), "__name__", None) or type(fn).__name__)


def _signature(fn: Callable[..., Any], owner: str) -> inspect.Signature:
    if isinstance(fn, Runnable):  # task(my_flow): the flow's parameters, not (*args, **kwargs)
        wrapped = cast("Runnable[..., Any]", fn)
        parameters = list(wrapped.signature.parameters.values())[len(wrapped.bound) :]
        return wrapped.signature.replace(parameters=parameters)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{owner}: cannot read the parameters of {fn!r} ({exc})") from None
    for reserved in RESERVED_PARAMETERS:
        if reserved in signature.parameters:
            raise ReservedArgumentError(
                f"{owner}: parameter {reserved!r} of {fn!r} is reserved: every call takes "
                f"{reserved}= for itself ({', '.join(RESERVED_PARAMETERS)}); rename it"
            )
    return signature


def _streams(fn: Callable[..., Any]) -> Literal["sync", "async"] | None:
    if inspect.isgeneratorfunction(fn):
        return "sync"
    if inspect.isasyncgenfunction(fn):
        return "async"
    return None


def _is_async(fn: Callable[..., Any]) -> bool:
    if isinstance(fn, Runnable):  # task(my_async_flow): calling it gives an awaitable
        return cast("Runnable[..., Any]", fn).is_async
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - a callable object's method
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(call)


@attrs.frozen(init=False, eq=False, kw_only=True, slots=False)
class Runnable(Generic[P, R]):
    """A callable wrapped as a task or flow; its options are the subclass's fields.

    Subclasses set ``kind`` and inherit their options class; everything else is shared.
    """

    fn: Callable[P, R]
    """The wrapped callable."""
    binding: Binding = "instance"
    """How looking the definition up on a class or instance binds it."""
    # For a method looked up on an instance (or any lookup, for a classmethod): the
    # object passed as its first argument.
    bound: tuple[Any, ...] = attrs.field(default=(), repr=False)
    # The options as the user gave them, which with_options starts from.
    given: Mapping[str, Any] = attrs.field(repr=False)

    kind: ClassVar[str]  # "task" or "flow", for messages
    # The options (besides hooks) whose ``None`` in ``with_options`` keeps the current
    # value rather than the default: Prefect's ``x or self.x`` and ``x if x is not None``.
    kept_on_none: ClassVar[frozenset[str]]
    hook_names: ClassVar[tuple[str, ...]]  # the hooks this kind of definition has
    options_type: ClassVar[type[Options]]  # the declaration of its options

    # What is worked out from the function and the options: once, when first read
    # (every one is read as the definition is made, so that a bad one is said then).

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        """The function's signature, without a bound method's ``self`` or ``cls``."""
        return _signature(self.fn, self.owner)

    @functools.cached_property
    def policy(self) -> Policy:
        """The engine's reading of the options: what runs need, derived once."""
        try:
            return Policy.of(self)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{self.owner}: {exc}") from None

    @functools.cached_property
    def plain_parameters(self) -> PlainParameters:
        """How calls bind, when the signature is plain (read on every call)."""
        return plain_parameters(self.signature)

    @functools.cached_property
    def is_async(self) -> bool:
        """Whether calls must be awaited: the function is a coroutine function."""
        return _is_async(self.fn)

    @functools.cached_property
    def streams(self) -> Literal["sync", "async"] | None:
        """``"sync"`` for a generator function, ``"async"`` for an async one, else ``None``."""
        return _streams(self.fn)

    @classmethod
    def default_name(cls, fn: Callable[..., Any]) -> str:
        """The name of a task or flow made from ``fn`` without a ``name`` option.

        Raises:
            TypeError: ``fn`` has no name to take.
        """
        return default_name(fn, f"@{cls.kind}")

    def _define(self, fn: object, options: Mapping[str, Any], bound: tuple[Any, ...] = ()) -> None:
        """What the constructor does: check ``fn`` and the options, then set them."""
        func, binding = unwrap_callable(fn, f"@{self.kind}")
        name = options.get("name")
        name = self.default_name(func) if name is None else name
        try:
            values: dict[str, Any] = {
                "description": inspect.getdoc(introspected(func)), **options, "name": name,
            }  # fmt: skip
            # The options in force: checked by their declaration first, then settled.
            values |= self._settled(self.options_type(**values), func)
            # Made by attrs for a class with its own __init__ (unknown to pyright).
            self.__attrs_init__(  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
                fn=func, binding=binding, bound=bound, given=dict(options), **values
            )
        except (TypeError, ValueError) as exc:
            label = name if isinstance(name, str) and name else func_name(func)
            prefix = f"{self.kind} {label!r}: "
            if str(exc).startswith(prefix):  # __attrs_post_init__'s checks name it already
                raise
            raise type(exc)(f"{prefix}{exc}") from None

    def __attrs_post_init__(self) -> None:
        owner = self.owner
        if self.kind == "flow" and self.streams is not None:
            raise TypeError(
                f"{owner}: @flow cannot wrap generator function {self.fn!r}: only tasks "
                "can stream; make it a @task, or return a list"
            )
        run_name = self.run_name
        if isinstance(run_name, str):
            check_template(run_name, self.signature, owner=owner, option=f"{self.kind}_run_name")
        _ = self.plain_parameters, self.is_async, self.policy  # said now, if wrong

    def _settled(self, options: Options, fn: Callable[..., Any]) -> dict[str, Any]:
        """The options that depend on others, in force (for a flow, ``persist_result``
        turned on by a storage or serializer, as in Prefect); ``options`` are checked.

        Raises:
            ValueError: The options cannot go together.
        """
        if options.persist_result is None and (
            options.result_storage is not None or options.result_serializer is not None
        ):
            return {"persist_result": True}
        return {}

    @property
    def run_name(self) -> object:
        """The template or function that names runs, if one was given."""
        if isinstance(self, TaskOptions):
            return self.task_run_name
        if isinstance(self, FlowOptions):
            return self.flow_run_name
        return None

    @property
    def owner(self) -> str:
        """How error messages name this task or flow."""
        return f"{self.kind} {self.name!r}"  # type: ignore[attr-defined]

    def _evolve(self, changes: Mapping[str, Any]) -> Self:
        """A copy with ``changes`` to the options given (``with_options``)."""
        given = dict(self.given)
        for option, value in changes.items():
            kept = option in self.kept_on_none or option.removeprefix("on_") in self.hook_names
            if value is None and kept:
                continue  # as in Prefect: ``None`` keeps these
            given[option] = value
        # A new cache policy replaces a cache_key_fn, and the other way round.
        if changes.get("cache_key_fn") is not None:
            given.pop("cache_policy", None)
        elif "cache_policy" in changes:
            given.pop("cache_key_fn", None)
        for hook in self.hook_names:  # hooks registered with the decorators stay
            if f"on_{hook}" not in changes:
                given[f"on_{hook}"] = getattr(self, f"on_{hook}_hooks")
        fn = self.fn
        wrapped = {"class": classmethod, "static": staticmethod}.get(self.binding)
        new = object.__new__(type(self))
        new._define(wrapped(cast("Any", fn)) if wrapped is not None else fn, given, self.bound)
        return new

    def _add_hook(self, hook: str, fn: Hook) -> None:
        """Register a hook on this definition: the decorators' one change in place."""
        if not callable(fn):
            raise TypeError(f"{self.owner}: @.on_{hook} needs a function, got {fn!r}")
        name = f"on_{hook}_hooks"
        # The one change a definition takes after it is made (see ``on_completion``);
        # with_options copies take the hooks of the moment.
        object.__setattr__(self, name, (*getattr(self, name), fn))
        vars(self).pop("policy", None)  # read again with the new hook

    def on_completion(self, fn: H) -> H:
        """Decorator: call ``fn(task_or_flow, run, state)`` when a run completes.

        The hook is added to this task or flow itself (it is the one change a definition
        accepts after it is made, so that a decorator below the definition takes effect);
        copies made earlier with ``with_options`` do not get it.

        Raises:
            TypeError: ``fn`` is not callable.
        """
        self._add_hook("completion", fn)
        return fn

    def on_failure(self, fn: H) -> H:
        """Decorator: call ``fn(task_or_flow, run, state)`` when a run fails (after its
        last retry). See ``on_completion``.

        Raises:
            TypeError: ``fn`` is not callable.
        """
        self._add_hook("failure", fn)
        return fn

    def on_running(self, fn: H) -> H:
        """Decorator: call ``fn(task_or_flow, run, state)`` when an attempt starts
        running. See ``on_completion``.

        Raises:
            TypeError: ``fn`` is not callable.
        """
        self._add_hook("running", fn)
        return fn

    def __get__(self, instance: object, owner: type | None = None) -> Self:
        # Looked up on an instance: bind it, so that ``obj.method()`` passes ``obj``.
        # A class method binds the class, however it was looked up; a static method
        # binds nothing. The copy shares everything else (it is a value).
        if self.binding == "static" or (instance is None and self.binding == "instance"):
            return self
        bound = copy.copy(self)
        target: object = instance
        if self.binding == "class":
            target = owner if owner is not None else type(instance)
        object.__setattr__(bound, "bound", (target,))
        return bound


def refuse_assignment(self: Runnable[Any, Any], name: str, value: object) -> NoReturn:
    """``__setattr__`` of tasks and flows: they are values.

    Raises:
        AttributeError: Always, pointing to ``with_options``.
    """
    raise AttributeError(
        f"{self.owner} cannot be changed ({name} = {value!r}): tasks and flows are "
        f"immutable; make a changed copy with .with_options({name}=...)"
    )
