"""Parameter validation: a flow's arguments checked and coerced against its type hints
(``definition/validation.py``), on asyncio, trio and uvloop."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypedDict

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowkit import flow
from flowkit._engine.definition.validation import _structure  # pyright: ignore[reportPrivateUsage]
from flowkit.exceptions import (
    ParameterTypeError,
)

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


@attrs.frozen
class Box:
    size: float


class Options(TypedDict):
    depth: int


class Pair(NamedTuple):
    left: int
    right: str


def test_arguments_are_coerced_to_their_type_hints(backend: str) -> None:
    @flow
    def main(
        n: int,
        when: datetime,
        day: date,
        color: Color,
        point: Point,
        box: Box,
        options: Options,
        path: Path,
        ids: list[uuid.UUID],
        pair: tuple[int, str],
        flag: bool,
        maybe: int | None = None,
        mode: Literal["a", "b"] = "a",
    ) -> tuple[Any, ...]:
        return n, when, day, color, point, box, options, path, ids, pair, flag, maybe, mode

    some = uuid.UUID(int=7)
    got = main(
        "3", "2024-05-06T07:08:09", "2024-05-06", "red", {"x": "1", "y": 2}, {"size": "2.5"},
        {"depth": "4"}, "/tmp/x", [str(some)], ["1", "b"], "false", "5", "b",
    )  # fmt: skip
    assert got == (
        3, datetime(2024, 5, 6, 7, 8, 9), date(2024, 5, 6), Color.RED, Point(1, 2), Box(2.5),
        {"depth": 4}, Path("/tmp/x"), [some], (1, "b"), False, 5, "b",
    )  # fmt: skip


def test_a_value_of_the_right_class_is_passed_as_the_same_object(backend: str) -> None:
    given_path = Path("/tmp")

    @flow
    def main(path: Path, items: list[int]) -> tuple[Path, list[int]]:
        return path, items

    path, _ = main(given_path, [1])
    assert path is given_path


def test_a_bad_argument_fails_the_run_naming_flow_parameter_value_and_type(
    backend: str,
) -> None:
    seen: list[str] = []

    @flow(on_failure=[lambda _flow, _run, state: seen.append(state.name)])
    def add_one(x: int) -> int:
        return x + 1

    state = add_one("foo", return_state=True)  # type: ignore[arg-type]
    assert state.is_failed()
    message = state.message or ""
    for part in ("'add-one'", "'x'", "'foo'", "int", "validate_parameters=False"):
        assert part in message
    assert isinstance(state.exception, ParameterTypeError)
    assert isinstance(state.exception, TypeError)
    assert seen == ["Failed"]


def test_a_failed_validation_is_not_retried_and_the_body_never_runs(backend: str) -> None:
    calls: list[int] = []

    @flow(retries=3)
    def main(x: int) -> None:
        calls.append(x)

    with pytest.raises(ParameterTypeError):
        main(2.5)  # type: ignore[arg-type]
    assert calls == []


def test_nested_errors_name_the_field(backend: str) -> None:
    @flow
    def main(point: Point) -> Point:
        return point

    with pytest.raises(ParameterTypeError, match=r"'point'.*Point.*\$\.x"):
        main({"x": "wide", "y": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("hint", "value"),
    [(bool, "maybe"), (int, 2.5), (str, 3), (uuid.UUID, 5), (Literal["a"], "b")],
)
def test_lossy_coercions_are_refused(backend: str, hint: Any, value: Any) -> None:
    def body(x: Any) -> Any:
        return x

    body.__annotations__["x"] = hint
    with pytest.raises(ParameterTypeError):
        flow(body)(value)


@given(st.integers())
def test_an_integer_in_text_or_an_integral_float_becomes_the_int(n: int) -> None:
    assert _structure(str(n), int) == n
    assert _structure(f" {n} ", int) == n
    if abs(n) < 2**53:
        assert _structure(float(n), int) == n


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()))
def test_a_float_with_a_fraction_is_no_int(value: float) -> None:
    with pytest.raises(TypeError):
        _structure(value, int)


@given(st.sampled_from(["true", "False", " yes", "NO", "on", "off", "1", "0", "t", "n"]))
def test_bool_words_become_bools(word: str) -> None:
    assert _structure(word, bool) is (word.strip().lower() in ("true", "yes", "on", "1", "t"))


def test_validate_parameters_false_passes_values_unchecked(backend: str) -> None:
    @flow(validate_parameters=False)
    def main(x: int) -> Any:
        return x

    assert main("foo") == "foo"  # type: ignore[arg-type]
    # None keeps the setting, as in Prefect (``x if x is not None else self.x``).
    assert main.with_options(validate_parameters=None).validate_parameters is False
    assert main.with_options(validate_parameters=True).validate_parameters is True


def test_var_args_and_kwargs_are_validated_each(backend: str) -> None:
    @flow
    def main(*values: int, **named: float) -> tuple[Any, Any]:
        return values, named

    assert main("1", 2, scale="0.5") == ((1, 2), {"scale": 0.5})  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_async_flows_validate_too() -> None:
    @flow
    async def main(x: int) -> int:
        return x

    assert await main("7") == 7  # type: ignore[arg-type]
    with pytest.raises(ParameterTypeError):
        await main("seven")  # type: ignore[arg-type]


def test_a_method_flow_validates_its_parameters_not_self(backend: str) -> None:
    class Job:
        @flow
        def run(self, n: int) -> int:
            return n * 2

    assert Job().run("4") == 8  # type: ignore[arg-type]


def test_an_unresolvable_hint_turns_checking_off_with_a_warning(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    def body(x: int) -> int:
        return x

    body.__annotations__["x"] = "NoSuchType"
    assert flow(body)("raw") == "raw"  # type: ignore[arg-type]
    assert any("not validated" in r.getMessage() for r in caplog.records)


@attrs.frozen
class Step:
    name: str
    tries: int


@dataclasses.dataclass(frozen=True)
class Limit:
    most: int


def test_instances_inside_containers_pass_as_the_same_objects(backend: str) -> None:
    steps = [Step("a", 1), Step("b", 2)]
    limits = {"x": Limit(3)}

    @flow
    def plan(steps: list[Step], limits: dict[str, Limit]) -> tuple[list[Step], dict[str, Limit]]:
        return steps, limits

    got_steps, got_limits = plan(steps, limits)
    assert got_steps is steps
    assert got_limits is limits
    made, _ = plan([{"name": "c", "tries": "4"}], {})  # type: ignore[list-item]
    assert made == [Step("c", 4)]


def test_a_long_bad_value_is_cut_in_the_message(backend: str) -> None:
    @flow
    def counts(xs: list[int]) -> int:
        return len(xs)

    state = counts(["nope"] * 500, return_state=True)  # type: ignore[list-item]
    message = str(state.exception)
    assert message.startswith("flow 'counts': parameter 'xs' got ['nope', 'nope',")
    assert len(message) < 800
    assert message.endswith("or turn checking off with validate_parameters=False")
