"""Signatures: what the engine reads of a definition, and binding a call's arguments to
its parameters (fast for the plain signatures most functions have)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from .policy import Policy

__all__ = ["Definition", "PlainParameters", "bind", "parameters_of", "plain_parameters"]

PlainParameters = tuple[tuple[str, ...], int, dict[str, Any], frozenset[str]] | None


def plain_parameters(signature: inspect.Signature) -> PlainParameters:
    """Names, how many may be given by position, defaults, and the names as a set, for a
    signature without ``*args``, ``**kwargs`` or positional-only parameters (binding is
    then a zip); ``None`` for any other signature."""
    names: list[str] = []
    positional = 0
    defaults: dict[str, Any] = {}
    for name, p in signature.parameters.items():
        if p.kind is p.POSITIONAL_OR_KEYWORD:
            positional += 1
        elif p.kind is not p.KEYWORD_ONLY:
            return None
        names.append(name)
        if p.default is not p.empty:
            defaults[name] = p.default
    return tuple(names), positional, defaults, frozenset(names)


def bind(
    signature: inspect.Signature,
    plain: PlainParameters,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    """``signature.bind(*args, **kwargs)`` with defaults applied, as a dict; fast for plain
    signatures, whose binding this checks the same way.

    Raises:
        TypeError: The arguments do not fit the signature.
    """
    if plain is not None:
        names, positional, defaults, known = plain
        if not kwargs and len(args) == len(names) == positional:  # every one by position
            return dict(zip(names, args, strict=True))
        if len(args) <= positional:
            params = dict(zip(names, args, strict=False))
            if not params.keys() & kwargs.keys() and kwargs.keys() <= known:
                params.update(kwargs)
                if len(params) < len(names):
                    for name in names:
                        if name not in params and name in defaults:
                            params[name] = defaults[name]
                if len(params) == len(names):
                    return {name: params[name] for name in names}
    bound = signature.bind(*args, **kwargs)  # the general case, and the error messages
    bound.apply_defaults()
    return dict(bound.arguments)


def parameters_of(arguments: dict[str, Any], skip: int) -> dict[str, Any]:
    """``arguments`` without the first ``skip`` (a bound method's ``self`` or ``cls``)."""
    return dict(list(arguments.items())[skip:]) if skip else arguments


class Definition(Protocol):
    """What the engine reads from a ``Task`` or ``Flow`` to start a run of it: the
    options both have, as given, and what is worked out once (``policy``)."""

    @property
    def name(self) -> str: ...
    @property
    def timeout_seconds(self) -> float | None: ...
    @property
    def retries(self) -> int: ...
    @property
    def log_prints(self) -> bool | None: ...
    @property
    def max_concurrency(self) -> int | None: ...
    @property
    def fn(self) -> Callable[..., Any]: ...
    @property
    def is_async(self) -> bool: ...
    @property
    def streams(self) -> Literal["sync", "async"] | None: ...
    @property
    def signature(self) -> inspect.Signature: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def plain_parameters(self) -> PlainParameters: ...
