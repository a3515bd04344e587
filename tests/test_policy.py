"""What the engine reads from a task's or flow's options (``definition.policy``, from
``flowkit._engine.definition.policy``): retry delays with their jitter, the hooks each
final state calls, caching and result settings, and the cache policy in force."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowkit import Task, flow, task
from flowkit._engine.definition.options import MAX_DELAY_SECONDS, MAX_DELAYS, NOT_SET
from flowkit._engine.definition.policy import Caching, resolve_caching
from flowkit.cache_policies import DEFAULT, INPUTS, NO_CACHE, CacheKeyFn
from flowkit.states import (
    Cached,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    NotReady,
    Pending,
    Running,
    State,
    TimedOut,
)
from flowkit.task_runners import ThreadPoolTaskRunner
from flowkit.tasks import exponential_backoff


def add(x: int, y: int = 1) -> int:
    """Add two numbers."""
    return x + y


def nothing() -> None: ...


def hook(*_: object) -> None: ...


# Retry delays


def test_a_single_delay_is_waited_before_every_retry() -> None:
    policy = task(retries=3, retry_delay_seconds=7)(nothing).policy
    assert [policy.delay(n) for n in (1, 2, 3)] == [7, 7, 7]


def test_delay_lists_repeat_their_last_value() -> None:
    policy = task(retries=4, retry_delay_seconds=[1, 2])(nothing).policy
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1, 2, 2, 2]


def test_an_empty_delay_list_retries_at_once() -> None:
    policy = task(retries=2, retry_delay_seconds=[])(nothing).policy
    assert [policy.delay(n) for n in (1, 2)] == [0, 0]


def test_exponential_backoff_doubles() -> None:
    assert exponential_backoff(backoff_factor=10)(4) == [10, 20, 40, 80]


def test_exponential_backoff_stops_doubling_at_a_day() -> None:
    assert exponential_backoff(backoff_factor=30_000)(3) == [30_000, 60_000, MAX_DELAY_SECONDS]


def test_exponential_backoff_lists_at_most_the_delays_an_option_may() -> None:
    assert len(exponential_backoff(backoff_factor=1)(MAX_DELAYS + 10)) == MAX_DELAYS


@pytest.mark.parametrize("factor", [-1, float("nan"), MAX_DELAY_SECONDS + 1, True, "2"])
def test_exponential_backoff_refuses_a_factor_that_is_no_delay(factor: Any) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^backoff_factor must be a number of seconds from 0 to 86400 \(a day\), "
        rf"got {factor!r}$",
    ):
        exponential_backoff(backoff_factor=factor)


def test_callable_delays_are_made_once_from_the_retry_count() -> None:
    @task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2))
    def t() -> None: ...

    assert t.policy.delays == (2, 4, 8)


@pytest.mark.parametrize(
    ("made", "error", "said"),
    [
        ("soon", TypeError, "must be a number of seconds, a list of them, or a function"),
        ([-1.0], ValueError, "must be from 0 to 86400 seconds"),
        ([1] * (MAX_DELAYS + 1), ValueError, "may list at most 50 delays, got 51"),
    ],
)
def test_what_a_delay_function_returns_is_checked_as_the_option_would_be(
    made: object, error: type[Exception], said: str
) -> None:
    with pytest.raises(error, match=rf"^task 'fragile': retry_delay_seconds {said}"):
        task(name="fragile", retries=2, retry_delay_seconds=lambda retries: made)(nothing)


def test_without_jitter_delays_are_exact() -> None:
    policy = task(retries=1, retry_delay_seconds=0.25, retry_jitter_factor=None)(nothing).policy
    assert {policy.delay(1) for _ in range(20)} == {0.25}


@given(
    delay=st.floats(min_value=0, max_value=1e4),
    jitter=st.floats(min_value=0, max_value=5),
)
def test_jittered_delays_stay_in_bounds(delay: float, jitter: float) -> None:
    options = {"retries": 1, "retry_delay_seconds": delay, "retry_jitter_factor": jitter}
    got = task(**options)(nothing).policy.delay(1)
    assert max(0.0, delay * (1 - jitter)) - 1e-9 <= got <= delay * (1 + jitter) + 1e-9


def test_jitter_over_one_never_makes_a_delay_negative() -> None:
    # Hypothesis above seeds ``random`` the same for each example: this one draws afresh.
    policy = task(retries=1, retry_delay_seconds=10, retry_jitter_factor=5)(nothing).policy
    assert min(policy.delay(1) for _ in range(100)) >= 0


def test_jittered_delays_vary() -> None:
    policy = task(retries=1, retry_delay_seconds=100, retry_jitter_factor=0.5)(nothing).policy
    assert len({policy.delay(1) for _ in range(20)}) > 1


def test_jitter_never_makes_a_delay_longer_than_a_day() -> None:
    options = {"retries": 1, "retry_delay_seconds": MAX_DELAY_SECONDS, "retry_jitter_factor": 1}
    policy = task(**options)(nothing).policy
    assert max(policy.delay(1) for _ in range(50)) <= MAX_DELAY_SECONDS


# Hooks


TASK_HOOKS = {"on_running": [hook], "on_completion": [add], "on_failure": [nothing]}
FLOW_HOOKS = {**TASK_HOOKS, "on_cancellation": [print], "on_crashed": [repr]}


@pytest.mark.parametrize(
    ("state", "hooks"),
    [(Completed(), (add,)), (Cached(), (add,)), (Failed(), (nothing,)), (TimedOut(), (nothing,))],
    ids=lambda value: value.name if isinstance(value, State) else "",
)
def test_a_task_run_that_ends_calls_the_hooks_of_its_final_state(
    state: State[Any], hooks: tuple[object, ...]
) -> None:
    assert task(**TASK_HOOKS)(nothing).policy.final_hook(state) == hooks


@pytest.mark.parametrize(
    ("state", "hooks"),
    [(Completed(), (add,)), (Failed(), (nothing,)), (Cancelled(), (print,)), (Crashed(), (repr,))],
    ids=lambda value: value.name if isinstance(value, State) else "",
)
def test_a_flow_run_that_ends_calls_the_hooks_of_its_final_state(
    state: State[Any], hooks: tuple[object, ...]
) -> None:
    assert flow(**FLOW_HOOKS)(nothing).policy.final_hook(state) == hooks


@pytest.mark.parametrize("state", [Pending(), NotReady(), Running()], ids=lambda s: s.name)
def test_a_run_that_never_ended_or_never_started_calls_no_final_hook(state: State[Any]) -> None:
    assert flow(**FLOW_HOOKS)(nothing).policy.final_hook(state) == ()


def test_a_final_state_without_hooks_calls_none() -> None:
    assert task(on_failure=[hook])(nothing).policy.final_hook(Completed()) == ()


def test_the_running_hooks_are_the_policys_own() -> None:
    assert flow(**FLOW_HOOKS)(nothing).policy.hooks["on_running"] == (hook,)


# A body with nothing around it


def test_a_definition_without_timeout_retries_or_hooks_is_plain() -> None:
    assert task(nothing).policy.plain
    assert flow(nothing).policy.plain


@pytest.mark.parametrize(
    "options", [{"timeout_seconds": 5}, {"retries": 1}, {"on_running": [hook]}], ids=str
)
def test_a_timeout_retries_or_a_hook_are_work_around_the_body(options: dict[str, Any]) -> None:
    assert not task(**options)(nothing).policy.plain


# The rest of what runs need


def test_a_task_keeps_the_options_runs_read_and_its_policy_what_is_derived() -> None:
    def condition(*_: object) -> bool:
        return True

    made = task(
        timeout_seconds=2.5, retries=3, retry_condition_fn=condition, log_prints=True,
        max_concurrency=4, tags=["a", "b"], task_run_name="run-{x}",
    )(add)  # fmt: skip
    assert (made.timeout_seconds, made.retries) == (2.5, 3)
    assert (made.log_prints, made.max_concurrency) == (True, 4)
    policy = made.policy
    assert policy.retry_condition is condition
    assert (policy.tags, policy.run_name) == ({"a", "b"}, "run-{x}")


def test_a_flow_keeps_the_options_runs_read_and_its_policy_what_is_derived() -> None:
    runner = ThreadPoolTaskRunner()
    made = flow(
        timeout_seconds=9, retries=1, flow_run_name="nightly", thread_limit=3, progress=True,
        task_runner=runner,
    )(add)  # fmt: skip
    assert (made.timeout_seconds, made.retries, made.progress) == (9, 1, True)
    assert made.task_runner is runner
    assert made.validate_parameters is True  # the option's default
    policy = made.policy
    assert (policy.thread_limit, policy.run_name) == (3, "nightly")
    assert (policy.tags, policy.retry_condition, policy.jitter) == (frozenset(), None, None)


def test_a_thread_limit_equal_to_the_runners_max_workers_is_accepted() -> None:
    made = flow(thread_limit=3, task_runner=ThreadPoolTaskRunner(max_workers=3))(nothing)
    assert made.policy.thread_limit == 3


# Caching and results


def test_caching_reads_the_cache_options() -> None:
    options = {
        "cache_policy": INPUTS, "cache_expiration": timedelta(hours=1), "refresh_cache": True,
    }  # fmt: skip
    assert task(**options)(add).policy.caching == Caching(
        key=INPUTS, expiration=timedelta(hours=1), refresh=True
    )


@pytest.mark.parametrize(
    "options",
    [{"persist_result": False}, {"cache_policy": INPUTS, "persist_result": False},
     {"cache_policy": NO_CACHE}, {"cache_policy": None},
     {"result_storage_key": "sum-{parameters[x]}", "persist_result": False}],
    ids=str,
)  # fmt: skip
def test_a_task_that_never_persists_or_has_no_key_never_caches(
    options: dict[str, Any],
) -> None:
    assert task(**options)(add).policy.caching is None


def test_a_task_left_to_its_callers_persistence_caches_by_the_default_policy() -> None:
    assert task(add).policy.caching == Caching(key=DEFAULT)  # once a flow persists


def test_a_result_storage_key_alone_is_the_cache_key() -> None:
    made = task(result_storage_key="sum-{parameters[x]}")(add)
    assert made.policy.caching == Caching(key=None, storage_key="sum-{parameters[x]}")


@pytest.mark.parametrize(
    ("options", "asked"),
    [
        ({"persist_result": True}, True),
        ({"result_serializer": "json"}, True),
        ({"result_storage": "results-of-add"}, True),
        ({"result_storage_key": "sum-{parameters[x]}"}, True),
        ({"cache_policy": INPUTS}, False),  # persisted only because caching needs it
        ({}, False),
    ],
    ids=str,
)
def test_results_are_asked_for_by_the_definitions_own_result_options(
    options: dict[str, Any], asked: bool
) -> None:
    assert task(**options)(add).policy.results.asked is asked


def key_fn(context: object, parameters: dict[str, Any]) -> str:
    return "k"


@pytest.mark.parametrize(
    ("options", "policy", "persist"),
    [
        ({}, DEFAULT, None),
        ({"cache_policy": INPUTS}, INPUTS, True),
        ({"cache_key_fn": key_fn}, CacheKeyFn(key_fn), True),
        ({"persist_result": False}, NO_CACHE, False),
        ({"cache_policy": INPUTS, "persist_result": False}, NO_CACHE, False),
        ({"cache_policy": None}, None, None),
        ({"cache_policy": NO_CACHE}, NO_CACHE, None),
        ({"result_serializer": "json"}, DEFAULT, True),
        ({"persist_result": True}, DEFAULT, True),
    ],
)
def test_cache_policy_follows_prefects_defaults(
    options: dict[str, Any], policy: object, persist: bool | None
) -> None:
    t = Task(add, **options)
    assert (t.cache_policy, t.persist_result) == (policy, persist)


@given(
    policy=st.sampled_from([NOT_SET, None, INPUTS, NO_CACHE, DEFAULT]),
    key=st.sampled_from([None, key_fn]),
    persist=st.sampled_from([None, True, False]),
    stores=st.booleans(),
)
def test_resolved_caching_obeys_prefects_rules(
    policy: Any, key: Any, persist: bool | None, stores: bool
) -> None:
    if key is not None and policy not in (NOT_SET, None):
        with pytest.raises(ValueError, match="not both"):
            resolve_caching(policy, key, persist, stores=stores)
        return
    got, persisted = resolve_caching(policy, key, persist, stores=stores)
    if persist is False:
        assert (got, persisted) == (None if policy is None and key is None else NO_CACHE, False)
    elif key is not None:
        assert (got, persisted) == (CacheKeyFn(key), True)
    else:
        assert got == (DEFAULT if policy is NOT_SET else policy)
        assert persisted == (persist or stores or policy in (INPUTS, DEFAULT) or None)
