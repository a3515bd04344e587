"""``flowkit.serializers``: bytes in the formats the engine writes its result files in."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowkit import task
from flowkit.serializers import CloudPickleSerializer, JSONSerializer, PickleSerializer
from flowkit.tasks import task_input_hash

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(value=json_values)
def test_json_round_trips_json_values(value: Any) -> None:
    serializer = JSONSerializer()
    assert serializer.loads(serializer.dumps(value)) == value


@given(value=json_values | st.sets(st.integers()) | st.tuples(st.integers(), st.text()))
def test_pickle_round_trips_any_value(value: Any) -> None:
    serializer = PickleSerializer()
    assert serializer.loads(serializer.dumps(value)) == value


def test_json_refuses_a_value_it_would_not_read_back() -> None:
    with pytest.raises(TypeError, match=r"cannot write a set value.*use PickleSerializer"):
        JSONSerializer().dumps({1, 2})


def test_json_writes_utf8_json_bytes() -> None:
    blob = JSONSerializer().dumps({"a": [1, "é"]})
    assert json.loads(blob.decode()) == {"a": [1, "é"]}


def test_pickle_writes_stdlib_pickles() -> None:
    assert pickle.loads(PickleSerializer().dumps({3})) == {3}


def test_serializers_name_their_type() -> None:
    assert (JSONSerializer.type, PickleSerializer.type) == ("json", "pickle")


@pytest.mark.parametrize(
    ("name", "serializer", "value"),
    [("json", JSONSerializer(), {"rows": [1, 2]}), ("pickle", PickleSerializer(), {1, 2})],
)
def test_a_result_file_of_the_engine_is_read_by_the_serializer(
    tmp_path: Path, name: str, serializer: JSONSerializer | PickleSerializer, value: Any
) -> None:
    @task(cache_key_fn=task_input_hash, result_serializer=name, result_storage=tmp_path)  # type: ignore[call-overload]
    def produce(x: int) -> Any:
        return value

    produce(1)
    (result,) = [p for p in tmp_path.iterdir() if p.suffix == f".{name}"]
    assert serializer.loads(result.read_bytes()) == value
    assert serializer.dumps(value) == result.read_bytes()


def test_cloudpickle_serializer_reads_what_the_default_pickles(tmp_path: Path) -> None:
    def point_class() -> type[Any]:
        class Point:  # defined in a function: the default falls back to cloudpickle
            def __init__(self, x: int) -> None:
                self.x = x

        return Point

    point = point_class()

    @task(cache_key_fn=task_input_hash, result_storage=tmp_path)
    def make(x: int) -> Any:
        return point(x)

    make(4)
    (result,) = [p for p in tmp_path.iterdir() if p.suffix == ".cloudpickle"]
    assert CloudPickleSerializer().loads(result.read_bytes()).x == 4
