"""What ``Task`` and ``Flow`` share: wrapping a function, validating options, binding
to instances, and starting runs through the one engine."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Generic, Literal, ParamSpec, Self, TypeVar

import attrs

from .naming import check_template
from .policy import Policy
from .runs import PlainParameters, plain_parameters

__all__ = ["Runnable", "check_callable", "option_error", "to_tags"]

P = ParamSpec("P")
# Covariant: pyright types an async function as returning CoroutineType, and the async
# overloads (submit, return_state) ask for a Runnable returning some Coroutine.
R = TypeVar("R", covariant=True)


def check_callable(fn: object, decorator: str, *, generators: bool) -> Callable[..., Any]:
    """Check what a decorator was applied to.

    Raises:
        TypeError: ``fn`` is not a plain callable, a class/static method wrapper applied in
            the wrong order, or a generator function where ``generators`` is false.
    """
    if isinstance(fn, classmethod | staticmethod):
        kind = "classmethod" if isinstance(fn, classmethod) else "staticmethod"
        raise TypeError(
            f"{decorator} was applied to a {kind} object; put @{kind} above {decorator}:\n"
            f"    @{kind}\n    {decorator}\n    def method(...): ..."
        )
    if not callable(fn):
        raise TypeError(f"{decorator} needs a function, got {fn!r} of type {type(fn).__name__}")
    if not generators and (inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)):
        raise TypeError(
            f"{decorator} cannot wrap generator function {getattr(fn, '__qualname__', fn)!r}: "
            "only tasks can stream; make it a @task, or return a list"
        )
    return fn


def to_tags(value: Iterable[str] | None) -> frozenset[str]:
    """Converter for ``tags=``: a collection of strings (a lone string is a mistake)."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        raise TypeError(f"tags must be a collection of strings, got {value!r}; write [{value!r}]")
    tags = frozenset(value)
    for tag in tags:
        if not isinstance(tag, str):
            raise TypeError(f"tags must be strings, got {tag!r}")
    return tags


def option_error(owner: str, exc: TypeError | ValueError) -> TypeError | ValueError:
    """The same error, prefixed with the task or flow it concerns."""
    return type(exc)(f"{owner}: {exc}")


def instance_of_or_none(kind: type | tuple[type, ...], what: str) -> Callable[..., None]:
    """An attrs validator: ``None`` or an instance of ``kind``, with a readable message."""

    def validate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not isinstance(value, kind):
            raise TypeError(f"{attribute.name} must be {what} or None, got {value!r}")

    return validate


def positive_int_or_none(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """An attrs validator: ``None`` or an integer of at least 1."""
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be a positive int or None, got {value!r}")
    if value < 1:
        raise ValueError(
            f"{attribute.name} must be at least 1, or None for no bound, got {value!r}"
        )


def non_empty_str(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """An attrs validator: a non-empty string."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"{attribute.name} must be a non-empty string, got {value!r}")


def run_name_option(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """An attrs validator for ``task_run_name``/``flow_run_name``."""
    if value is not None and not isinstance(value, str) and not callable(value):
        raise TypeError(
            f"{attribute.name} must be a str.format template, a function returning a str, "
            f"or None, got {value!r}"
        )


def _streams(fn: Callable[..., Any]) -> Literal["sync", "async"] | None:
    if inspect.isgeneratorfunction(fn):
        return "sync"
    if inspect.isasyncgenfunction(fn):
        return "async"
    return None


@attrs.frozen(eq=False)
class Runnable(Generic[P, R]):
    """A function wrapped as a task or flow, with its options.

    Subclasses set ``kind`` and name their options class; everything else is shared.
    """

    fn: Callable[P, R]
    options: Any
    # For a method looked up on an instance (or a class, for a classmethod): the object
    # passed as its first argument.
    bound: tuple[Any, ...] = ()
    signature: inspect.Signature = attrs.field(
        default=attrs.Factory(lambda self: inspect.signature(self.fn), takes_self=True),
        repr=False,
    )
    policy: Policy = attrs.field(
        default=attrs.Factory(lambda self: Policy.of(self.options), takes_self=True),
        repr=False,
    )
    # Read on every call, so worked out once.
    plain_parameters: PlainParameters = attrs.field(
        default=attrs.Factory(lambda self: plain_parameters(self.signature), takes_self=True),
        repr=False,
    )
    is_async: bool = attrs.field(
        default=attrs.Factory(lambda self: inspect.iscoroutinefunction(self.fn), takes_self=True),
        repr=False,
    )
    """Whether the function is a coroutine function, so calls must be awaited."""
    streams: Literal["sync", "async"] | None = attrs.field(
        default=attrs.Factory(lambda self: _streams(self.fn), takes_self=True), repr=False
    )
    """``"sync"`` for a generator function, ``"async"`` for an async one, else ``None``."""

    kind: ClassVar[str]  # "task" or "flow", for messages
    run_name_option: ClassVar[str]  # the option that names runs: "task_run_name", ...
    options_class: ClassVar[type]

    @classmethod
    def default_name(cls, fn: Callable[..., Any]) -> str:
        """The name of a task or flow made from ``fn`` without a ``name`` option."""
        return fn.__name__

    @classmethod
    def wrap(cls, fn: object, options: Mapping[str, Any]) -> Self:
        """Make a task or flow of ``fn``: what the decorators do.

        Raises:
            TypeError: ``fn`` cannot be wrapped, or an option has the wrong type.
            ValueError: An option has a bad value.
        """
        fn = check_callable(fn, f"@{cls.kind}", generators=cls.kind == "task")
        name = options.get("name", cls.default_name(fn))
        try:
            opts = cls.options_class(**{"description": inspect.getdoc(fn), **options, "name": name})
            policy = Policy.of(opts)
        except (TypeError, ValueError) as exc:
            raise option_error(f"{cls.kind} {name!r}", exc) from None
        return cls(fn, opts, policy=policy)

    def __attrs_post_init__(self) -> None:
        template = self.run_name
        if isinstance(template, str):
            check_template(template, self.signature, owner=self.owner)

    @property
    def name(self) -> str:
        """The task's or flow's name."""
        return self.options.name  # type: ignore[no-any-return]

    @property
    def description(self) -> str | None:
        """The description: given, or the function's docstring."""
        return self.options.description  # type: ignore[no-any-return]

    @property
    def version(self) -> str | None:
        """The version given to the decorator, if any."""
        return self.options.version  # type: ignore[no-any-return]

    @property
    def run_name(self) -> str | Callable[[], str] | None:
        """The template or function that names runs, if one was given."""
        return getattr(self.options, self.run_name_option)  # type: ignore[no-any-return]

    @property
    def owner(self) -> str:
        """How error messages name this task or flow."""
        return f"{self.kind} {self.name!r}"

    def _evolve_options(self, changes: dict[str, Any]) -> Self:
        try:
            options = attrs.evolve(self.options, **changes)
            return attrs.evolve(self, options=options, policy=Policy.of(options))
        except (TypeError, ValueError) as exc:
            raise option_error(self.owner, exc) from None

    def __get__(self, instance: object, owner: type | None = None) -> Self:
        # Looked up on an instance: bind it, so that ``obj.method()`` passes ``obj``.
        # A classmethod above the decorator binds the class the same way.
        if instance is None:
            return self
        return attrs.evolve(self, bound=(instance,))
