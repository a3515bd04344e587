"""Cache policies: Prefect 3's names, their algebra, and the keys they make."""

from __future__ import annotations

import ast
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowkit.cache_policies as cp
from flowkit import flow, task
from flowkit._engine.results.cache import RESULTS
from flowkit.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NO_CACHE,
    NONE,
    RUN_ID,
    TASK_SOURCE,
    CacheContext,
    CacheKeyFn,
    CacheKeyFnPolicy,
    CachePolicy,
    CompoundCachePolicy,
    Inputs,
)
from flowkit.runtime import flow_run


@pytest.fixture(autouse=True)
def fresh_memo() -> Iterator[None]:
    RESULTS.forget_memo()
    yield
    RESULTS.forget_memo()


@task(name="plain")
def plain(x: Any = None, debug: Any = None) -> None: ...


def key_of(policy: CachePolicy, inputs: dict[str, Any], flow_parameters: Any = None) -> Any:
    return policy.compute_key(CacheContext(plain), inputs, flow_parameters or {})


# The algebra


def test_default_is_inputs_task_source_and_run_id() -> None:
    assert DEFAULT == INPUTS + TASK_SOURCE + RUN_ID
    assert isinstance(DEFAULT, CompoundCachePolicy)
    assert DEFAULT.policies == (TASK_SOURCE, RUN_ID, INPUTS)
    assert NONE == NO_CACHE


def test_subtracting_a_name_excludes_it_from_the_inputs() -> None:
    assert Inputs(exclude=["debug"]) == INPUTS - "debug"
    assert Inputs(exclude=["a", "b"]) == INPUTS - "b" - "a"
    assert (INPUTS - "a").exclude == ["a"]
    assert TASK_SOURCE + RUN_ID + Inputs(exclude=["debug"]) == DEFAULT - "debug"


def test_subtracting_from_a_policy_without_inputs_changes_nothing() -> None:
    assert TASK_SOURCE - "x" is TASK_SOURCE
    assert TASK_SOURCE + RUN_ID - "x" == TASK_SOURCE + RUN_ID


def test_only_a_name_can_be_subtracted() -> None:
    with pytest.raises(TypeError, match=r"INPUTS - 3; write e.g. INPUTS - 'client'"):
        INPUTS - 3  # type: ignore[operator]
    with pytest.raises(TypeError, match="exclude=\\['client'\\]"):
        Inputs(exclude="client")  # type: ignore[arg-type]


def test_no_cache_adds_nothing() -> None:
    assert INPUTS + NO_CACHE == INPUTS
    assert NO_CACHE + TASK_SOURCE == TASK_SOURCE
    assert NO_CACHE + NONE == NO_CACHE
    assert key_of(NO_CACHE, {"x": 1}) is None


def test_nested_compounds_are_flattened_and_inputs_merged() -> None:
    nested = CompoundCachePolicy(
        [INPUTS - "a", CompoundCachePolicy([RUN_ID, Inputs(exclude=["b"])]), TASK_SOURCE]
    )
    assert nested.policies == (RUN_ID, TASK_SOURCE, Inputs(exclude=["a", "b"]))
    assert nested == RUN_ID + TASK_SOURCE + INPUTS - "a" - "b"


def test_a_compound_ignores_parts_without_a_key() -> None:
    policy = INPUTS + FLOW_PARAMETERS
    assert key_of(policy, {"x": 1}) == key_of(policy, {"x": 1})
    assert key_of(policy, {"x": 1}) != key_of(policy, {"x": 1}, {"n": 1})
    assert key_of(policy, {}) is None  # no inputs, no flow parameters: no key at all


def test_excluded_inputs_do_not_change_the_key() -> None:
    policy = INPUTS - "debug"
    assert key_of(policy, {"x": 1, "debug": True}) == key_of(policy, {"x": 1, "debug": False})
    assert key_of(policy, {"x": 1, "debug": object()}) is not None
    assert key_of(policy, {"x": 1}) != key_of(policy, {"x": 2})


def test_policies_are_values() -> None:
    assert Inputs(exclude=["a", "b"]) == Inputs(exclude=("b", "a", "a"))
    assert hash(INPUTS - "a" + RUN_ID) == hash(RUN_ID + (INPUTS - "a"))
    assert cp.TaskSource() == TASK_SOURCE
    assert cp.RunId() != cp.FlowParameters()


def test_the_base_policy_and_an_empty_compound_are_made_bare() -> None:
    assert repr(CachePolicy()) == "CachePolicy()"
    assert CompoundCachePolicy().policies == ()
    assert key_of(CompoundCachePolicy(), {"x": 1}) is None


def test_the_base_policy_has_no_key_to_compute() -> None:
    with pytest.raises(NotImplementedError, match="overrides compute_key"):
        key_of(CachePolicy(), {"x": 1})


@pytest.mark.parametrize("policy", [RUN_ID, TASK_SOURCE])
def test_run_id_and_task_source_give_no_key_without_a_task_context(policy: CachePolicy) -> None:
    assert policy.compute_key(None, {"x": 1}, {}) is None


@pytest.mark.parametrize("given", [("b", "a"), iter(["b", "a", "b"]), {"a", "b"}, ["b", "a"]])
def test_inputs_exclude_is_a_list_whatever_iterable_is_given(given: Any) -> None:
    policy = Inputs(exclude=given)
    assert type(policy.exclude) is list
    assert policy.exclude == ["a", "b"]
    assert type((INPUTS - "a").exclude) is list


def test_task_source_reads_the_function_of_a_flow_made_into_a_task() -> None:
    def body() -> int:
        return 1

    assert key_of(TASK_SOURCE, {}) is not None
    assert TASK_SOURCE.compute_key(CacheContext(task(flow(body))), {}, {}) == (
        TASK_SOURCE.compute_key(CacheContext(task(body)), {}, {})
    )


def test_persist_result_false_over_a_cache_policy_logs_prefects_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @task(cache_policy=INPUTS, persist_result=False)
    def dropped(x: int) -> int:
        return x

    (record,) = [r for r in caplog.records if "Ignoring" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        "task 'dropped': Ignoring `cache_policy` because `persist_result` is False"
    )
    assert dropped.cache_policy == NO_CACHE


@pytest.mark.parametrize(
    "options",
    [
        {"persist_result": False},
        {"persist_result": False, "cache_policy": NO_CACHE},
        {"persist_result": False, "cache_policy": None},
        {"cache_policy": INPUTS},
    ],
)
def test_no_warning_when_no_cache_policy_is_dropped(
    options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    task(plain.fn, **options)
    assert [r for r in caplog.records if "Ignoring" in r.getMessage()] == []


def test_persist_result_false_over_a_cache_key_fn_logs_the_warning_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task(plain.fn, cache_key_fn=fn_key, persist_result=False)
    assert any("Ignoring `cache_policy`" in r.getMessage() for r in caplog.records)


def fn_key(ctx: CacheContext, inputs: dict[str, Any]) -> str:
    return "same"


def test_cache_key_fn_policies() -> None:
    assert CacheKeyFn is CacheKeyFnPolicy
    assert CachePolicy.from_cache_key_fn(fn_key) == CacheKeyFnPolicy(cache_key_fn=fn_key)
    assert repr(CacheKeyFnPolicy(fn_key) + INPUTS) == "CacheKeyFnPolicy(fn_key) + INPUTS"
    with pytest.raises(TypeError, match="cache_key_fn must be a function"):
        CacheKeyFnPolicy("same")  # type: ignore[arg-type]


atoms = st.sampled_from([INPUTS, TASK_SOURCE, RUN_ID, FLOW_PARAMETERS, NO_CACHE])
names = st.sampled_from(["a", "b", "c"])


@st.composite
def policies(draw: st.DrawFn) -> CachePolicy:
    policy = draw(atoms)
    for _ in range(draw(st.integers(0, 3))):
        policy = policy + draw(atoms) if draw(st.booleans()) else policy - draw(names)
    return policy


@given(policies(), policies(), policies())
def test_addition_is_associative(a: CachePolicy, b: CachePolicy, c: CachePolicy) -> None:
    assert (a + b) + c == a + (b + c)


@given(policies(), policies())
def test_a_sum_is_flat_with_one_inputs_part_last(a: CachePolicy, b: CachePolicy) -> None:
    total = a + b
    parts = total.policies if isinstance(total, CompoundCachePolicy) else (total,)
    assert not any(isinstance(p, CompoundCachePolicy) for p in parts)
    inputs = [i for i, p in enumerate(parts) if isinstance(p, Inputs)]
    assert inputs in ([], [len(parts) - 1])
    assert len(set(map(repr, parts))) == len(parts)
    assert total + a == total  # adding a part again changes nothing


@given(policies(), names, names)
def test_exclusion_holds_in_any_order(policy: CachePolicy, x: str, y: str) -> None:
    assert policy - x - y == policy - y - x
    excluded = policy - x
    parts = excluded.policies if isinstance(excluded, CompoundCachePolicy) else (excluded,)
    for part in parts:
        if isinstance(part, Inputs):
            assert x in part.exclude


@given(policies())
def test_the_repr_is_the_expression(policy: CachePolicy) -> None:
    assert eval(repr(policy), vars(cp)) == policy


# Keys


literals = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
    | st.binary(max_size=3)
    | st.frozensets(st.integers(), max_size=3).map(set),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)

KEY_SCRIPT = """
import ast, sys
from flowkit import task
from flowkit.cache_policies import INPUTS, CacheContext
@task(name="plain")
def plain(x=None, debug=None): ...
for line in sys.stdin:
    print(INPUTS.compute_key(CacheContext(plain), {"x": ast.literal_eval(line)}, {}))
"""


@settings(max_examples=3)
@given(st.lists(literals, min_size=1, max_size=20))
def test_keys_are_the_same_in_other_processes(values: list[Any]) -> None:
    here = [key_of(INPUTS, {"x": v}) for v in values]
    assert here == [key_of(INPUTS, {"x": ast.literal_eval(repr(v))}) for v in values]
    lines = "".join(f"{v!r}\n" for v in values)
    for seed in ("1", "2"):  # str and set hashing differ between these processes
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", KEY_SCRIPT], input=lines, env=env,
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert out.split() == here


@given(st.dictionaries(st.text(max_size=3), literals, min_size=2, max_size=4))
def test_argument_order_does_not_change_the_key(inputs: dict[str, Any]) -> None:
    reordered = dict(reversed(list(inputs.items())))
    for policy in (INPUTS, FLOW_PARAMETERS, DEFAULT):
        assert key_of(policy, inputs, inputs) == key_of(policy, reordered, reordered)


# In runs


def test_an_unencodable_input_runs_uncached_and_says_how_to_exclude_it(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[object] = []

    @task(name="uses_lock", cache_policy=INPUTS)
    def uses_lock(x: int, lock: object) -> int:
        calls.append(x)
        return x

    lock = object()
    uses_lock(1, lock)
    uses_lock(1, lock)
    assert calls == [1, 1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "task 'uses_lock': parameter 'lock' (type object)" in warnings[0]
    assert "cache_policy=INPUTS - 'lock'" in warnings[0]
    with pytest.raises(ValueError, match="parameter 'lock'"):
        INPUTS.compute_key(CacheContext(uses_lock), {"x": 1, "lock": lock}, {})


def test_excluding_the_unencodable_input_caches(backend: str) -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS - "lock")
    def uses_lock(x: int, lock: object) -> int:
        calls.append(x)
        return x

    @flow
    def main() -> list[str]:
        return [uses_lock(1, object(), return_state=True).name for _ in range(2)]

    assert main() == ["Completed", "Cached"]
    assert calls == [1]


def test_flow_parameters_key_on_the_flow_run(backend: str) -> None:
    calls: list[int] = []

    @task(cache_policy=FLOW_PARAMETERS)
    def step() -> int:
        calls.append(1)
        return 1

    @flow
    def main(n: int) -> None:
        step()

    main(1)
    main(1)
    main(2)
    assert len(calls) == 2


def test_an_unencodable_flow_parameter_is_named(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    @task(name="step", cache_policy=FLOW_PARAMETERS)
    def step() -> None: ...

    @flow
    def main(lock: object) -> None:
        step()

    main(object())
    assert any(
        "task 'step': flow parameter 'lock' (type object)" in r.getMessage()
        and "Take FLOW_PARAMETERS out" in r.getMessage()
        for r in caplog.records
    )


def test_inputs_alone_do_not_cache_a_call_without_arguments(backend: str) -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS)
    def bare() -> None:
        calls.append(1)

    @task(cache_policy=DEFAULT)
    def bare_default() -> None:
        calls.append(2)

    @flow
    def main() -> None:
        bare()
        bare()
        bare_default()
        bare_default()

    main()
    assert calls == [1, 1, 2]


@dataclass
class FunctionInFlowRun(CachePolicy):
    """A policy written for Prefect: it reads the task's function and the run's ids."""

    seen: list[tuple[Any, Any, Any]]

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        run = task_ctx.task_run
        self.seen.append((task_ctx.task.fn, run.flow_run_id, run.id))
        return f"{task_ctx.task.fn.__name__}:{run.flow_run_id}"


def test_a_prefect_policy_reads_the_task_and_its_run(backend: str) -> None:
    seen: list[tuple[Any, Any, Any]] = []

    def body() -> str:
        return "done"

    tracked = task(body, cache_policy=FunctionInFlowRun(seen))

    @flow
    def main() -> tuple[list[str], str | None]:
        return [tracked(return_state=True).name for _ in range(2)], flow_run.id

    names, flow_run_id = main()
    assert names == ["Completed", "Cached"]
    assert [fn for fn, _, _ in seen] == [body, body]
    assert {str(f) for _, f, _ in seen} == {flow_run_id}
    first, second = (run_id for _, _, run_id in seen)
    assert isinstance(first, UUID)
    assert first != second


def test_run_id_outside_a_flow_is_the_task_runs_own(backend: str) -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS + RUN_ID)
    def alone(x: int) -> None:
        calls.append(x)

    alone(1)
    alone(1)
    assert calls == [1, 1]


def test_a_cache_key_fn_returning_a_non_str_is_named(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    @task(name="numbered", cache_key_fn=lambda ctx, inputs: 7)  # type: ignore[arg-type,return-value]
    def numbered() -> None: ...

    numbered()
    assert any(
        "task 'numbered': cache_key_fn must return a str or None, got 7" in r.getMessage()
        for r in caplog.records
    )


def test_explain_cache_shows_each_part_and_how_to_exclude() -> None:
    @task(cache_policy=TASK_SOURCE + INPUTS)
    def area(w: int, h: Any) -> int:
        return w

    parts = area.explain_cache(2, 3).parts
    assert list(parts) == ["TASK_SOURCE", "INPUTS"]
    assert all(isinstance(p, str) for p in parts.values())
    explanation = area.explain_cache(2, object())
    assert explanation.key is None
    assert "cache_policy=INPUTS - 'h'" in explanation.reason


def test_explain_cache_in_a_flow_run_sees_its_run_id(backend: str) -> None:
    @task(cache_policy=DEFAULT - "verbose")
    def area(w: int, verbose: bool = False) -> int:
        return w

    @flow
    def main() -> tuple[bool, bool, list[str]]:
        before = area.explain_cache(2)
        area(2)
        after = area.explain_cache(2, verbose=True)
        return before.hit, after.hit, list(after.parts)

    assert main() == (False, True, ["TASK_SOURCE", "RUN_ID", "INPUTS - 'verbose'"])
