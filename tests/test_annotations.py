"""Annotations: ``allow_failure``, ``quote`` and ``unmapped`` wrap one argument of a run."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import flowkit
from flowkit import allow_failure, flow, quote, task, unmapped
from flowkit.utilities import annotations

KINDS: list[type[annotations.BaseAnnotation[Any]]] = [allow_failure, quote, unmapped]
values = st.none() | st.integers() | st.text() | st.lists(st.integers())


@pytest.mark.parametrize("kind", KINDS)
def test_annotation_unwraps_to_its_value(kind: type[annotations.BaseAnnotation[Any]]) -> None:
    box = [1, 2]
    assert kind(box).unwrap() is box


def test_quote_unquotes_to_its_value() -> None:
    box = {"a": 1}
    assert quote(box).unquote() is box


@pytest.mark.parametrize("kind", KINDS)
def test_rewrap_keeps_the_kind(kind: type[annotations.BaseAnnotation[Any]]) -> None:
    rewrapped = kind(1).rewrap(2)
    assert (type(rewrapped), rewrapped.value) == (kind, 2)


@given(value=values)
def test_annotations_of_one_kind_compare_by_value(value: Any) -> None:
    assert quote(value) == quote(value)
    assert unmapped(value) == unmapped(value)


@given(value=values)
def test_annotations_of_different_kinds_differ(value: Any) -> None:
    assert quote(value) != unmapped(value)
    assert allow_failure(value) != quote(value)


def test_utilities_annotations_are_the_top_level_classes() -> None:
    assert (annotations.allow_failure, annotations.quote, annotations.unmapped) == (
        flowkit.allow_failure,
        flowkit.quote,
        flowkit.unmapped,
    )


def test_every_annotation_is_a_base_annotation() -> None:
    assert all(issubclass(kind, annotations.BaseAnnotation) for kind in KINDS)


def test_a_quoted_argument_reaches_the_task_whole(backend: str) -> None:
    @task
    def identity(x: Any) -> Any:
        return x

    @flow
    def main() -> Any:
        future = identity.submit(1)
        return identity(quote([future]))[0] is future

    assert main()
