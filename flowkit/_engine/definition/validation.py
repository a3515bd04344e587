"""Flow parameter validation: call arguments checked and coerced against type hints.

Each flow's plan (its annotated parameters and their resolved hints) is worked out at its
first call and kept; a function without annotations has an empty plan and its calls pay
one dictionary lookup. Values are structured with cattrs, through a converter that
coerces where Prefect's validation does (``"3"`` for an ``int``, an ISO string for a
``datetime``) and refuses what would lose information (``"foo"`` or ``2.5`` for an
``int``, ``"maybe"`` for a ``bool``). A value that already has the annotated class is
passed as it is, the same object.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import types
import typing
import weakref
from collections.abc import Callable
from datetime import date, datetime, time
from functools import cache, partial
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import attrs

from ...exceptions import ParameterTypeError
from ..convert import converter

if TYPE_CHECKING:
    import cattrs

    from .signature import Definition

__all__ = ["validated"]

_log = logging.getLogger("flowkit.engine")

Plan = tuple[tuple[str, Any], ...]
_plans: weakref.WeakKeyDictionary[object, Plan] = weakref.WeakKeyDictionary()

_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})


def validated(
    definition: Definition, skip: int, arguments: dict[str, Any]
) -> inspect.BoundArguments | None:
    """Check and coerce the arguments of a call of a flow: the call with the coerced
    arguments, or ``None`` when every argument fits as it is.

    Raises:
        ParameterTypeError: An argument does not fit its parameter's type hint; the
            message names the flow, the parameter, the value and the expected type.
    """
    plan = _plan_of(definition, skip)
    if not plan:
        return None
    changed: dict[str, Any] = {}
    for name, hint in plan:
        if name not in arguments:
            continue
        value = arguments[name]
        try:
            coerced = _structure(value, hint)
        except Exception as exc:
            expected = _type_name(hint)
            raise ParameterTypeError(
                f"flow {definition.name!r}: parameter {name!r} got {_cut(repr(value), 200)}, "
                f"which is not a valid {expected} ({_cut(_reason(exc), 400)}); pass a value "
                f"of type {expected}, or turn checking off with validate_parameters=False"
            ) from None
        if not _unchanged(coerced, value):
            changed[name] = coerced
    if not changed:
        return None
    return inspect.BoundArguments(definition.signature, {**arguments, **changed})


def _plan_of(definition: Definition, skip: int) -> Plan:
    """The plan of ``definition``, kept by its function: definitions with equal options
    compare equal, whatever their functions."""
    fn = definition.fn
    try:
        plan = _plans.get(fn)
    except TypeError:  # a callable that is not hashable or weakly referable: no cache
        return _plan(definition, skip)
    if plan is None:
        plan = _plan(definition, skip)
        with contextlib.suppress(TypeError):
            _plans[fn] = plan
    return plan


def _plan(definition: Definition, skip: int) -> Plan:
    """The parameters to check, with their hints resolved (``*args``/``**kwargs`` as a
    tuple and a dict of the hint)."""
    fn = definition.fn
    try:
        signature = inspect.signature(fn, eval_str=True)
    except Exception as exc:  # a hint names something only a type checker imports
        _log.warning(
            "flow %r: its parameters are not validated: their type hints cannot be "
            "evaluated (%s: %s)", definition.name, type(exc).__name__, exc,
        )  # fmt: skip
        return ()
    parameters = list(signature.parameters.values())
    if len(parameters) == len(definition.signature.parameters) - skip:
        skip = 0  # ``fn`` is already bound: its signature has no ``self``
    plan: list[tuple[str, Any]] = []
    for p in parameters[skip:]:
        hint = p.annotation
        if hint is p.empty or hint is Any or hint is object:
            continue
        if p.kind is p.VAR_POSITIONAL:
            hint = tuple.__class_getitem__((hint, ...))
        elif p.kind is p.VAR_KEYWORD:
            hint = dict.__class_getitem__((str, hint))
        plan.append((p.name, hint))
    return tuple(plan)


def _structure(value: Any, hint: Any) -> Any:
    plain = isinstance(hint, type) and not typing.get_args(hint) and not typing.is_typeddict(hint)
    if plain:
        try:
            right = issubclass(type(value), hint)
        except TypeError:  # a Protocol that cannot be checked at run time: trust the caller
            return value
        if right and (hint is not int or type(value) is not bool):
            return value  # already right: the same object, not a copy
    return _converter().structure(value, cast("type[Any]", hint))


def _unchanged(new: Any, old: Any) -> bool:
    """Whether structuring gave ``old`` back, if in a new container: then the caller's
    own object is passed, not a copy."""
    if new is old:
        return True
    if type(new) is not type(old):
        return False
    if isinstance(old, list | tuple):
        items: list[Any] = list(cast("Any", old))
        news: list[Any] = list(new)
        return len(news) == len(items) and all(map(_unchanged, news, items))
    if isinstance(old, dict):
        mapping: dict[Any, Any] = cast("Any", old)
        return new.keys() == mapping.keys() and all(_unchanged(new[k], mapping[k]) for k in mapping)
    if isinstance(old, set | frozenset):
        return bool(new == old)
    return False


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, for a message that must stay readable."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(hint: Any) -> str:
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__
    return repr(hint).replace("typing.", "")


def _reason(exc: Exception) -> str:
    if isinstance(exc, BaseExceptionGroup):  # cattrs groups the errors of nested fields
        # Not imported at the top: cattrs loads with the converter (see convert.py).
        import cattrs

        return "; ".join(cattrs.transform_error(cast("Any", exc)))
    return f"{type(exc).__name__}: {exc}"


def _union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


@cache
def _converter() -> cattrs.Converter:
    """The shared converter, with the coercions of a parameter check (see the module)."""
    made = converter().copy()
    made.register_structure_hook(int, lambda v, _: _int(v))
    made.register_structure_hook(float, lambda v, _: _float(v))
    made.register_structure_hook(bool, lambda v, _: _bool(v))
    made.register_structure_hook(str, lambda v, _: _exact(v, str))
    made.register_structure_hook(
        UUID, lambda v, _: v if isinstance(v, UUID) else UUID(_exact(v, str))
    )
    for kind in (datetime, date, time):
        made.register_structure_hook(kind, _iso(kind))
    made.register_structure_hook_func(_union, lambda v, hint: _first_fit(made, v, hint))
    made.register_structure_hook_factory(_record_class, partial(_as_is_or, made))
    return made


def _record_class(hint: Any) -> bool:
    """Whether ``hint`` is an attrs class or a dataclass (cattrs makes them from dicts)."""
    import dataclasses

    return isinstance(hint, type) and (attrs.has(hint) or dataclasses.is_dataclass(hint))


def _as_is_or(made: cattrs.Converter, cls: Any) -> Callable[[Any, Any], Any]:
    """An instance of ``cls`` as it is, the same object (also inside a container);
    anything else made from a mapping, as cattrs does."""
    from cattrs.gen import make_dict_structure_fn

    from_mapping = cast("Callable[[Any, Any], Any]", make_dict_structure_fn(cls, made))

    def structure(value: Any, _: Any) -> Any:
        return value if isinstance(value, cls) else from_mapping(value, cls)

    return structure


def _exact(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"expected {kind.__qualname__}, got {type(value).__qualname__}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(f"expected an integer, got {type(value).__qualname__}")


def _float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return float(value.strip())
    raise TypeError(f"expected a number, got {type(value).__qualname__}")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and (text := value.strip().lower()) in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError("expected true or false")


def _iso(kind: type[date] | type[time]) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, kind) and (kind is not date or not isinstance(value, datetime)):
            return value
        return cast("Any", kind).fromisoformat(_exact(value, str))

    return structure


def _first_fit(made: cattrs.Converter, value: Any, hint: Any) -> Any:
    """A union: the value as it is if it has one of the member classes, else the first
    member it can be structured as."""
    members = typing.get_args(hint)
    for member in members:
        if member is type(None) and value is None:
            return None
        if isinstance(member, type) and not typing.get_args(member) and type(value) is member:
            return value
    errors: list[str] = []
    for member in members:
        try:
            return made.structure(value, member)
        except Exception as exc:
            errors.append(f"{_type_name(member)}: {exc}")
    raise ValueError("fits no member of the union (" + "; ".join(errors) + ")")
