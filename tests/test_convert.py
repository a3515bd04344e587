"""The records' JSON (``_engine/convert.py``): snapshots of arguments, encoded once."""

from __future__ import annotations

import json
import logging
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowkit._engine.convert import Encoded, parameters_json, snapshot, to_json

plain_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), plain_json, max_size=5))
def test_a_snapshot_written_as_json_reads_back_as_the_values(values: dict[str, Any]) -> None:
    assert json.loads(parameters_json(snapshot(values))) == values


def test_scalars_are_kept_and_anything_else_is_encoded_now() -> None:
    items = ["given"]
    taken = snapshot({"n": 3, "s": "x", "items": items})
    items.append("grown")  # what the body does later changes nothing recorded
    assert taken["n"] == 3
    assert taken["s"] == "x"
    assert type(taken["items"]) is Encoded
    assert taken["items"].value() == ["given"]


def test_an_attrs_value_is_encoded_through_cattrs() -> None:
    @attrs.frozen
    class Point:
        x: int
        y: int

    assert snapshot({"p": Point(1, 2)})["p"].value() == {"x": 1, "y": 2}


def test_what_json_cannot_hold_is_recorded_as_its_repr() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<a thing>"

    assert snapshot({"t": Thing()})["t"].value() == "<a thing>"
    assert json.loads(to_json({"t": Thing()})) == {"t": "<a thing>"}


def test_a_value_that_cannot_be_encoded_gets_a_placeholder_of_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    with caplog.at_level(logging.WARNING, logger="flowkit.engine"):
        taken = snapshot({"bad": Hostile(), "good": [1]})
    assert taken["bad"] == "<unrecorded: could not be encoded: RuntimeError: no repr for you>"
    assert taken["good"].value() == [1]
    assert json.loads(parameters_json(taken))["good"] == [1]
