"""The options of ``@task`` and ``@flow`` (``flowkit._engine.definition.options``): one
declaration per option, which the keyword signatures follow, and a check of each value
whose error names the task or flow, shows the bad value and says what to give instead."""

from __future__ import annotations

import re
import typing
from datetime import timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowkit import flow, task
from flowkit._engine.definition.options import (
    MAX_DELAY_SECONDS,
    MAX_DELAYS,
    MAX_EXPIRATION,
    MAX_JITTER,
    FlowOptions,
    NotSet,
    TaskOptions,
)
from flowkit.cache_policies import INPUTS
from flowkit.flows import FlowOptionsDict
from flowkit.task_runners import ThreadPoolTaskRunner
from flowkit.tasks import TaskOptionsDict, task_input_hash


def add(x: int, y: int = 1) -> int:
    """Add two numbers."""
    return x + y


def fragile(x: int = 1) -> int:
    return x


async def committed(transaction: object) -> None: ...


# One declaration per option


def _union(tp: Any) -> set[Any]:
    return (
        set(typing.get_args(tp))
        if typing.get_origin(tp) in (typing.Union, type(int | None))
        else {tp}
    )


def _accepted(options: type[Any]) -> dict[str, set[Any]]:
    """What each option's keyword accepts, read from the attrs fields: the converter's
    argument type where there is one, else the field's type; ``None`` always (keep or
    reset), never the internal ``NOT_SET``."""
    hints = typing.get_type_hints(options)
    accepted = {}
    for field in attrs.fields(options):
        tp = hints[field.name]
        if field.converter is not None:
            tp = typing.get_type_hints(field.converter)["value"]
        accepted[field.alias] = (_union(tp) | {type(None)}) - {NotSet}
    return accepted


@pytest.mark.parametrize(
    ("options", "keywords"), [(TaskOptions, TaskOptionsDict), (FlowOptions, FlowOptionsDict)]
)
def test_keyword_signatures_match_the_option_declarations(options: type, keywords: type) -> None:
    hints = typing.get_type_hints(keywords)
    assert set(hints) == set(_accepted(options))
    for name, accepted in _accepted(options).items():
        assert _union(hints[name]) | {type(None)} == accepted, name


# Bad input: acceptance or a documented error naming the task, option and value

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(-2, 2, allow_nan=False),
    st.text(max_size=3), st.just([1, "a"]), st.just(["a"]), st.just(add),
    st.just(timedelta(seconds=-1)), st.just(INPUTS), st.just({"a": 1}),
)  # fmt: skip
OPTIONS = {**_accepted(TaskOptions), **_accepted(FlowOptions)}


@given(option=st.sampled_from(sorted(OPTIONS)), value=VALUES, on_flow=st.booleans())
def test_any_option_value_is_accepted_or_refused_clearly(
    option: str, value: object, on_flow: bool
) -> None:
    known = _accepted(FlowOptions if on_flow else TaskOptions)
    make: Any = flow if on_flow else task
    try:
        definition = make(**{"name": "subject", option: value})(add)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        if option not in known:
            assert option in message
            return
        owner = "'subject'"
        if option == "name":  # a bad name: the function's, unless a flow name's characters
            owner = repr(value) if isinstance(value, str) and value else "'add'"
        assert message.startswith(f"{'flow' if on_flow else 'task'} {owner}: ")
        # A transaction hook's own check names both hooks: "on_commit and on_rollback".
        assert option in message or option.removeprefix("on_") in message
        return
    assert option in known
    copy = definition.with_options(**{option: value})  # what was accepted stays accepted
    assert copy.name == (value if option == "name" and value is not None else definition.name)


# Each check's error, word for word: the definition, the bad value, what to give instead


def _refused(options: dict[str, Any], error: type[Exception], said: str, kind: str = "task") -> Any:
    shown = ",".join(f"{option}={value!r}"[:40] for option, value in options.items())
    return pytest.param(kind, options, error, said, id=f"{kind}-{shown}")


REFUSED = [
    _refused({"name": ""}, TypeError, "name must be a non-empty str, got ''"),
    _refused({"description": 3}, TypeError, "description must be a str or None, got 3"),
    _refused({"version": 3}, TypeError, "version must be a str or None, got 3"),
    _refused({"log_prints": "yes"}, TypeError,
             "log_prints must be True or False or None, got 'yes'"),
    _refused({"timeout_seconds": "1"}, TypeError,
             "timeout_seconds must be a number of seconds or None, got '1'"),
    _refused({"timeout_seconds": 0}, ValueError,
             "timeout_seconds must be above 0 seconds, or None, got 0"),
    _refused({"timeout_seconds": -1}, ValueError,
             "timeout_seconds must be above 0 seconds, or None, got -1"),
    _refused({"timeout_seconds": -1}, ValueError,
             "timeout_seconds must be above 0 seconds, or None, got -1", "flow"),
    _refused({"timeout_seconds": float("nan")}, ValueError,
             "timeout_seconds must be above 0 seconds, or None, got nan"),
    _refused({"retries": 1.5}, TypeError, "retries must be an int (0 or more) or None, got 1.5"),
    _refused({"retries": -1}, ValueError, "retries must be 0 or more, got -1"),
    _refused({"retries": -1}, ValueError, "retries must be 0 or more, got -1", "flow"),
    _refused({"retry_delay_seconds": "soon"}, TypeError,
             "retry_delay_seconds must be a number of seconds, a list of them, or a function of "
             "the retry count returning a list, got 'soon'"),
    _refused({"retry_delay_seconds": -2}, ValueError,
             "retry_delay_seconds must be from 0 to 86400 seconds (a day) each, got -2"),
    _refused({"retry_delay_seconds": [1, 90_000]}, ValueError,
             "retry_delay_seconds must be from 0 to 86400 seconds (a day) each, got [1, 90000]"),
    _refused({"retry_delay_seconds": [1] * 51}, ValueError,
             "retry_delay_seconds may list at most 50 delays, got 51"),
    _refused({"retry_jitter_factor": "x"}, TypeError,
             "retry_jitter_factor must be a number or None, got 'x'"),
    _refused({"retry_jitter_factor": -0.1}, ValueError,
             "retry_jitter_factor must be from 0 to 100, got -0.1"),
    _refused({"retry_jitter_factor": 101}, ValueError,
             "retry_jitter_factor must be from 0 to 100, got 101"),
    _refused({"max_concurrency": 0}, ValueError,
             "max_concurrency must be at least 1, or None for no bound, got 0"),
    _refused({"max_concurrency": "2"}, TypeError,
             "max_concurrency must be a positive int or None, got '2'"),
    _refused({"on_failure": print}, TypeError,
             "on_failure must be a list of functions, got <built-in function print>; pass "
             "on_failure=[<built-in function print>] for a single function"),
    _refused({"on_completion": [3]}, TypeError,
             "on_completion must hold functions only, got 3 in [3]"),
    _refused({"on_running": "log_it"}, TypeError,
             "on_running must be a list of functions, got 'log_it'"),
    _refused({"on_crashed": print}, TypeError,
             "on_crashed must be a list of functions, got <built-in function print>; pass "
             "on_crashed=[<built-in function print>] for a single function", "flow"),
    _refused({"tags": "abc"}, TypeError,
             "tags must be a collection of strings, got 'abc'; write ['abc']"),
    _refused({"tags": [1]}, TypeError, "tags must be strings, got 1 in [1]"),
    _refused({"tags": 3}, TypeError, "tags must be a collection of strings, got 3"),
    _refused({"task_run_name": 3}, TypeError,
             "task_run_name must be a str.format template, a function returning a str, or None, "
             "got 3"),
    _refused({"flow_run_name": 3}, TypeError,
             "flow_run_name must be a str.format template, a function returning a str, or None, "
             "got 3", "flow"),
    _refused({"retry_condition_fn": 3}, TypeError,
             "retry_condition_fn must be a function or None, got 3"),
    _refused({"cache_policy": "inputs"}, TypeError,
             "cache_policy must be a cache policy such as flowkit.cache_policies.INPUTS, or None, "
             "got 'inputs'"),
    _refused({"cache_key_fn": 3}, TypeError, "cache_key_fn must be a function or None, got 3"),
    _refused({"cache_key_fn": task_input_hash, "cache_policy": INPUTS}, ValueError,
             "give cache_key_fn or cache_policy, not both (a cache_key_fn is a policy: add it to "
             "others with flowkit.cache_policies.CacheKeyFn(fn) + ...)"),
    _refused({"cache_expiration": 3600}, TypeError,
             "cache_expiration must be a datetime.timedelta or None, got 3600"),
    _refused({"cache_expiration": timedelta(seconds=-1)}, ValueError,
             "cache_expiration must not be negative, got "
             "datetime.timedelta(days=-1, seconds=86399)"),
    _refused({"cache_expiration": timedelta.max}, ValueError,
             f"cache_expiration must be at most 36600 days, got {timedelta.max!r}; use None for "
             "results that never expire"),
    _refused({"refresh_cache": "y"}, TypeError,
             "refresh_cache must be True or False or None, got 'y'"),
    _refused({"result_storage_key": 3}, TypeError,
             "result_storage_key must be a non-empty str template or None, got 3"),
    _refused({"result_storage_key": "r-{x}"}, ValueError,
             "result_storage_key 'r-{x}' uses {x}; a template may use {parameters[name]}, "
             "{task_run.<attribute>} and {flow_run.<attribute>}"),
    _refused({"result_storage_key": "r-{"}, ValueError,
             "result_storage_key 'r-{' is not a str.format template: Single '{' encountered in "
             "format string"),
    _refused({"buffer": 0}, ValueError, "buffer must be at least 1, or None for no bound, got 0"),
    _refused({"persist_result": "yes"}, TypeError,
             "persist_result must be True or False or None, got 'yes'"),
    _refused({"result_serializer": "yaml"}, ValueError,
             "result_serializer must be 'json', 'pickle', 'cloudpickle', an object with "
             "dumps(value) -> bytes and loads(bytes) methods, or None, got 'yaml'"),
    _refused({"result_storage": 3}, TypeError,
             "result_storage must be a directory path, an object with read_path(path) and "
             "write_path(path, content) methods such as flowkit.filesystems.LocalFileSystem, or "
             "None, got 3"),
    _refused({"cache_result_in_memory": "no"}, TypeError,
             "cache_result_in_memory must be True or False, got 'no'", "flow"),
    _refused({"on_commit": [committed]}, TypeError,
             "on_commit and on_rollback hooks are called synchronously, with the transaction; "
             f"{committed!r} is an async function: make it a plain function"),
    _refused({"on_rollback": [3]}, TypeError, "on_rollback must hold functions only, got 3 in [3]"),
    _refused({"backend": "curio"}, ValueError,
             "backend must be 'asyncio', 'trio', 'asyncio+uvloop' or None, got 'curio'", "flow"),
    _refused({"thread_limit": 0}, ValueError,
             "thread_limit must be at least 1, or None for no bound, got 0", "flow"),
    _refused({"task_runner": ThreadPoolTaskRunner}, TypeError,
             "task_runner must be a task runner instance, got the class ThreadPoolTaskRunner; "
             "write ThreadPoolTaskRunner()", "flow"),
    _refused({"task_runner": 3}, TypeError,
             "task_runner must be a runner from flowkit.task_runners, such as "
             "ThreadPoolTaskRunner(max_workers=8), or None, got 3", "flow"),
    _refused({"progress": "y"}, TypeError,
             "progress must be True or False or None, got 'y'", "flow"),
    _refused({"validate_parameters": "y"}, TypeError,
             "validate_parameters must be True or False, got 'y'", "flow"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "options", "error", "said"), REFUSED)
def test_a_bad_option_is_refused_naming_the_definition_the_value_and_what_to_give(
    kind: str, options: dict[str, Any], error: type[Exception], said: str
) -> None:
    make: Any = task if kind == "task" else flow
    options = {"name": "fragile", **options} if "name" not in options else options
    with pytest.raises(error) as refused:
        make(**options)(fragile)
    assert str(refused.value) == f"{kind} 'fragile': {said}"


@pytest.mark.parametrize(
    "options",
    [
        {"retries": 0},
        {"retry_delay_seconds": MAX_DELAY_SECONDS},
        {"retry_delay_seconds": [0] * MAX_DELAYS},
        {"retry_jitter_factor": 0},
        {"retry_jitter_factor": MAX_JITTER},
        {"cache_expiration": timedelta(days=3650)},
        {"cache_expiration": MAX_EXPIRATION},
        {"timeout_seconds": 0.001},
        {"max_concurrency": 1},
    ],
    ids=lambda options: ",".join(f"{k}={v!r}"[:40] for k, v in options.items()),
)
def test_values_at_the_bounds_are_accepted(options: dict[str, Any]) -> None:
    made = task(**options)(fragile)
    assert [getattr(made, option) for option in options] == list(options.values())


def test_a_bad_option_is_refused_by_with_options_too() -> None:
    with pytest.raises(ValueError, match=re.escape("task 'fragile': retries must be 0 or more")):
        task(fragile).with_options(retries=-1)
