"""Binding a call's arguments to a signature: the fast path agrees with ``inspect``."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowkit._engine.definition.signature import bind, plain_parameters

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)


# Binding arguments to parameters (the fast path must agree with inspect)


def _sig_a(a: int, b: int = 2, *, c: int = 3) -> None: ...
def _sig_b(x: int, /, y: int) -> None: ...
def _sig_c(*args: int, **kwargs: int) -> None: ...
def _sig_d(a: int, *, k: int) -> None: ...
def _sig_e(a: int, b: int = 2) -> None: ...  # all by position: the fastest path


@given(
    fn=st.sampled_from([_sig_a, _sig_b, _sig_c, _sig_d, _sig_e]),
    args=st.lists(st.integers(), max_size=4),
    kwargs=st.dictionaries(st.sampled_from(["a", "b", "c", "k", "x", "y", "z"]), st.integers()),
)
def test_binding_agrees_with_inspect(fn: Any, args: list[int], kwargs: dict[str, int]) -> None:
    signature = inspect.signature(fn)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        with pytest.raises(TypeError):
            bind(signature, plain_parameters(signature), tuple(args), kwargs)
        return
    bound.apply_defaults()
    assert bind(signature, plain_parameters(signature), tuple(args), kwargs) == dict(
        bound.arguments
    )


def test_a_call_giving_every_parameter_by_position_binds_each_to_its_name() -> None:
    signature = inspect.signature(_sig_e)
    assert bind(signature, plain_parameters(signature), (1, 5), {}) == {"a": 1, "b": 5}
    assert list(bind(signature, plain_parameters(signature), (1, 5), {})) == ["a", "b"]


def test_run_ids_are_random_uuids_never_shared_with_a_forked_child() -> None:
    import multiprocessing
    import uuid

    from flowkit._engine.ids import new_id

    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert {i.version for i in ids} == {4}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    parent, child = multiprocessing.get_context("fork").Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=lambda: child.send([new_id() for _ in range(10)])
    )
    process.start()
    in_child = parent.recv()
    process.join()
    in_parent = [new_id() for _ in range(10)]
    assert not set(in_child) & set(in_parent)
