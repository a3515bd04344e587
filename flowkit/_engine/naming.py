"""Run names: generated two-word flow run names, and ``*_run_name`` templates."""

from __future__ import annotations

import inspect
import random
import string
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["check_names_with", "check_template", "generate_name", "render_run_name"]

ADJECTIVES = (
    "able", "amber", "ancient", "arctic", "ardent", "autumn", "azure", "bold", "brave",
    "bright", "brisk", "calm", "candid", "careful", "cheerful", "clever", "cobalt", "cosmic",
    "crimson", "curious", "dapper", "daring", "dazzling", "deft", "diligent", "dreamy",
    "eager", "earnest", "electric", "elegant", "emerald", "epic", "fearless", "festive",
    "fine", "fluffy", "fond", "gallant", "gentle", "gifted", "glad", "golden", "graceful",
    "grand", "great", "happy", "hardy", "hearty", "helpful", "honest", "humble", "icy",
    "intrepid", "jolly", "jovial", "keen", "kind", "lively", "loyal", "lucky", "lunar",
    "mellow", "merry", "mighty", "modest", "nimble", "noble", "olive", "patient", "peppy",
    "placid", "plucky", "polite", "proud", "quick", "quiet", "radiant", "rapid", "rare",
    "ruby", "rustic", "sage", "scarlet", "serene", "sharp", "shiny", "silver", "sincere",
    "smart", "snowy", "solar", "spry", "steady", "stellar", "sunny", "swift", "tidy",
    "tranquil", "true", "upbeat", "valiant", "vivid", "warm", "wise", "witty", "zealous",
)  # fmt: skip

ANIMALS = (
    "albatross", "alpaca", "ammonite", "anteater", "armadillo", "axolotl", "badger",
    "barracuda", "beaver", "bison", "bobcat", "buffalo", "butterfly", "camel", "capybara",
    "caribou", "cassowary", "chameleon", "cheetah", "chinchilla", "cormorant", "coua",
    "coyote", "crane", "cuttlefish", "dingo", "dolphin", "dormouse", "dragonfly", "eagle",
    "echidna", "eel", "egret", "elk", "falcon", "ferret", "finch", "flamingo", "fox",
    "gazelle", "gecko", "gibbon", "giraffe", "gopher", "grebe", "grouse", "hamster", "hare",
    "hedgehog", "heron", "hippo", "ibex", "ibis", "iguana", "impala", "jackal", "jaguar",
    "jellyfish", "kangaroo", "kestrel", "kingfisher", "kiwi", "koala", "lemur", "leopard",
    "lobster", "lynx", "macaw", "manatee", "mandrill", "marmot", "meerkat", "mink", "mole",
    "mongoose", "moose", "narwhal", "newt", "ocelot", "octopus", "okapi", "oriole", "otter",
    "owl", "panda", "pangolin", "parrot", "pelican", "penguin", "petrel", "puffin", "quail",
    "quokka", "rabbit", "raccoon", "raven", "reindeer", "robin", "salamander", "seahorse",
    "seal", "shrew", "skunk", "sloth", "squid", "starling", "stork", "swan", "tapir",
    "tortoise", "toucan", "turtle", "vicuna", "walrus", "weasel", "wombat", "wren", "yak",
    "zebra",
)  # fmt: skip

_random = random.SystemRandom()  # names must not repeat across forked processes
_checks: list[Callable[[str], bool]] = []
# Names handed out lately in this process, which a store may not have recorded yet.
_RECENT = 4096
_recent: deque[str] = deque()
_recent_set: set[str] = set()
_lock = threading.Lock()


def check_names_with(check: Callable[[str], bool]) -> None:
    """Have ``check(name)`` say whether a generated flow run name is free (a run store
    checks its own runs); names it refuses are not handed out."""
    _checks.append(check)


def generate_name() -> str:
    """Return a readable run name such as ``"great-ammonite"``, unique among the names
    handed out lately in this process and those the name checks know.

    Two words while they last; when several draws are taken, a number is added
    (``"great-ammonite-4821"``), as a store of many thousand runs needs.
    """
    for draw in range(64):
        name = f"{_random.choice(ADJECTIVES)}-{_random.choice(ANIMALS)}"
        if draw >= 8:
            name += f"-{_random.randrange(2, 10_000)}"
        with _lock:
            if name in _recent_set:
                continue
        if not all(check(name) for check in _checks):
            continue
        with _lock:
            if name in _recent_set:  # another thread took it meanwhile
                continue
            _recent.append(name)
            _recent_set.add(name)
            if len(_recent) > _RECENT:
                _recent_set.discard(_recent.popleft())
        return name
    raise RuntimeError("flowkit could not find a free flow run name in 64 draws")


def _fields(template: str) -> list[str]:
    """The replacement fields of a format string, including those nested in format specs."""
    fields: list[str] = []
    for _, field, spec, conversion in string.Formatter().parse(template):
        if conversion not in (None, "r", "s", "a"):
            raise ValueError(f"conversion '!{conversion}' is none of !r, !s, !a")
        if field is not None:
            fields.append(field)
        if spec:
            fields += _fields(spec)
    return fields


def check_template(
    template: str, signature: inspect.Signature, *, owner: str, option: str = "run name"
) -> None:
    """Check at decoration time that a run name template names only real parameters;
    errors name ``owner`` and the ``option`` that gave the template.

    Raises:
        ValueError: The template is malformed, or names a parameter the function lacks.
    """
    try:
        fields = _fields(template)
    except ValueError as exc:
        raise ValueError(f"{owner}: {option} template {template!r} is malformed: {exc}") from None
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # any keyword may arrive; checked when the run is named
    for field in fields:
        root = field.split(".", 1)[0].split("[", 1)[0]
        if root == "" or root.isdigit():
            raise ValueError(
                f"{owner}: {option} template {template!r} uses a positional field; "
                f"name parameters instead, e.g. '{{{next(iter(params), 'x')}}}'"
            )
        if root not in params:
            raise ValueError(
                f"{owner}: {option} template {template!r} names {root!r}, which is not a "
                f"parameter of the function (parameters: {', '.join(params) or 'none'})"
            )


def _takes_parameters(fn: Callable[..., Any]) -> bool:
    """Whether a run name function takes the call's ``parameters`` (as Prefect passes them)."""
    try:
        return "parameters" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # no signature to read: call it with nothing
        return False


def _unfillable(template: str, exc: Exception, owner: str) -> KeyError:
    return KeyError(
        f"{owner}: run name template {template!r} cannot be filled from this call's "
        f"arguments ({type(exc).__name__}: {exc}); change the template or the arguments"
    )


def render_run_name(
    template: str | Callable[..., str], parameters: Mapping[str, Any], *, owner: str
) -> str:
    """Return the run name given by a template or a callable; a callable with a
    ``parameters`` parameter is passed the call's arguments by name.

    Raises:
        TypeError: A callable returned something other than a non-empty string.
        KeyError: The template names an argument the call did not receive, or reads
            from an argument an attribute, item or format it does not have.
    """
    if isinstance(template, str):
        try:
            return template.format(**parameters)
        except KeyError as exc:
            if not isinstance(field := exc.args[0], str) or field not in _fields(template):
                raise _unfillable(template, exc, owner) from None  # a key inside a value
            raise KeyError(
                f"{owner}: run name template {template!r} needs argument {field!r}, "
                "which this call did not receive"
            ) from None
        except (LookupError, AttributeError, TypeError, ValueError) as exc:
            # "{x.nope}", "{x[9]}", "{x:d}" on a str: the argument lacks what the
            # template reads from it, which is the same mistake as a missing argument.
            raise _unfillable(template, exc, owner) from None
    name = template(parameters=dict(parameters)) if _takes_parameters(template) else template()
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"{owner}: run name function {template!r} returned {name!r}; "
            "it must return a non-empty string"
        )
    return name
