"""Hostile input: odd options fail at decoration with a documented error, and odd
argument values never cost the store a row."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowkit import flow, store, task
from flowkit._engine.definition.options import MAX_DELAY_SECONDS
from flowkit.tasks import exponential_backoff

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)

odd_numbers = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.sampled_from([0, -0.0, 1e-320, 86_400, 86_400.0001, 10**20, True])
)
odd_options = st.fixed_dictionaries(
    {},
    optional={
        "retries": odd_numbers,
        "retry_delay_seconds": odd_numbers | st.lists(odd_numbers, max_size=60),
        "retry_jitter_factor": odd_numbers,
        "timeout_seconds": odd_numbers,
        "max_concurrency": odd_numbers,
        "task_run_name": st.text(max_size=8),
    },
)


def _body(x: int) -> int:
    return x


@settings(max_examples=300)
@given(options=odd_options)
def test_odd_options_are_refused_at_decoration_or_run_within_bounds(
    options: dict[str, Any],
) -> None:
    try:
        defined = task(**options)(_body)
    except (TypeError, ValueError) as exc:
        refused = str(exc)
    else:
        refused = None
    if refused is not None:
        assert refused.startswith("task '_body': ")
        return
    policy = defined.policy
    for retry in range(1, 4):
        delay = policy.delay(retry)
        assert 0 <= delay <= MAX_DELAY_SECONDS
    timeout = defined.timeout_seconds
    assert timeout is None or timeout > 0


surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1)


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


odd_values = st.recursive(
    st.none()
    | odd_numbers
    | st.text()
    | surrogates
    | st.binary(max_size=20)
    | st.builds(Unprintable)
    | st.builds(bytearray, st.binary(max_size=8)),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3)
        | st.builds(set, st.lists(st.integers(), max_size=3))
        | st.builds(tuple, st.lists(inner, max_size=3))
    ),
    max_leaves=8,
)


@task
def accept(value: Any) -> None:
    pass


@task(task_run_name="got-{value}")
def named(value: Any) -> None:
    pass


@flow
def hostile(values: list[Any]) -> None:
    for value in values:
        accept(value)
    for value in values:
        named(value)


def _shapes(value: Any) -> set[str]:
    """The type names in ``value``, nested ones too."""
    found = {type(value).__name__}
    if isinstance(value, dict):
        for k, v in value.items():
            found |= _shapes(k) | _shapes(v)
    elif isinstance(value, list | tuple | set):
        for v in value:
            found |= _shapes(v)
    return found


@settings(max_examples=25)
@given(values=st.lists(odd_values, min_size=1, max_size=5))
def test_odd_arguments_lose_no_row(values: list[Any]) -> None:
    unprintable = "Unprintable" in _shapes(values)
    if unprintable:  # an argument whose repr raises cannot name a run
        with pytest.raises(RuntimeError, match="no repr for you"):
            hostile(values)
    else:
        hostile(values)
    store.flush()
    db = sqlite3.connect(store.default_path())
    try:
        accepted = [
            json.loads(row[0])
            for row in db.execute("SELECT parameters FROM runs WHERE definition = 'accept'")
        ]
        unfinished = db.execute("SELECT count(*) FROM runs WHERE end_time IS NULL").fetchone()[0]
        assert len(accepted) == len(values)
        assert all(set(p) in ({"value"}, {"<unrecorded>"}) for p in accepted)
        assert unfinished == 0
        db.execute("DELETE FROM runs")  # the next example counts afresh
        db.commit()
    finally:
        db.close()


@pytest.mark.parametrize("template", ["{x.nope}", "{x[3]}", "{x:d}", "{x[k]}"])
def test_a_template_the_arguments_cannot_fill_is_the_missing_key_error(
    backend: str, template: str
) -> None:
    @flow(flow_run_name=template)
    def named_flow(x: Any) -> None:
        pass

    with pytest.raises(KeyError, match=f"template '{re.escape(template)}' cannot be filled"):
        named_flow("ab")


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"retry_delay_seconds": math.nan}, "from 0 to 86400 seconds (a day) each"),
        ({"retry_delay_seconds": [1, math.inf]}, "from 0 to 86400 seconds (a day) each"),
        ({"retry_delay_seconds": 86_401}, "from 0 to 86400 seconds (a day) each"),
        ({"retry_delay_seconds": lambda n: [math.nan]}, "from 0 to 86400 seconds"),
        ({"retry_jitter_factor": math.nan}, "retry_jitter_factor must be from 0 to 100"),
        ({"retry_jitter_factor": math.inf}, "retry_jitter_factor must be from 0 to 100"),
        ({"timeout_seconds": math.nan}, "timeout_seconds must be above 0 seconds"),
    ],
)
def test_options_that_would_fail_later_are_refused_at_decoration(
    options: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValueError, match=f"^task '_body': .*{re.escape(says)}"):
        task(**options)(_body)


def test_exponential_backoff_stops_doubling_at_a_day() -> None:
    backoff = task(retries=20, retry_delay_seconds=exponential_backoff(backoff_factor=60))
    delays = backoff(_body).policy.delays
    assert max(delays) == MAX_DELAY_SECONDS
    assert list(delays[:3]) == [60, 120, 240]
    with pytest.raises(ValueError, match="backoff_factor must be a number of seconds"):
        exponential_backoff(backoff_factor=math.nan)


def test_an_unknown_conversion_in_a_template_is_refused_at_decoration() -> None:
    with pytest.raises(ValueError, match=r"^task '_body': .*conversion '!z' is none of"):
        task(task_run_name="{x!z}")(_body)
