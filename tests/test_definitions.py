"""Defining tasks and flows: constructors, options as attributes, with_options, hooks."""

from __future__ import annotations

import functools
import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from flowkit import Flow, Task, flow, runtime, tags, task
from flowkit.cache_policies import INPUTS
from flowkit.exceptions import InvalidNameError, ReservedArgumentError
from flowkit.states import State
from flowkit.tasks import task_input_hash


def add(x: int, y: int = 1) -> int:
    """Add two numbers."""
    return x + y


# Constructors


def test_task_constructor_takes_the_function_and_every_option() -> None:
    t = Task(add, name="adder", retries=2, tags=["math"], timeout_seconds=3)
    assert (t.name, t.retries, t.tags, t.timeout_seconds) == ("adder", 2, {"math"}, 3)
    assert t(1, y=2) == 3


def test_flow_constructor_takes_the_function_and_every_option(backend: str) -> None:
    f = Flow(add, flow_run_name="sum-{x}", retries=1)
    assert f.name == "add"
    assert f(2) == 3


def test_flow_constructor_refuses_an_unknown_option() -> None:
    with pytest.raises(TypeError, match="cache_policy"):
        Flow(add, cache_policy=None)  # type: ignore[call-arg]


def test_partials_and_callable_objects_are_tasks() -> None:
    class Scaler:
        """Scale numbers."""

        def __call__(self, x: int) -> int:
            return 10 * x

    by_partial = task(functools.partial(add, y=5))
    by_object = task(Scaler())
    assert (by_partial.name, by_partial.description) == ("add", "Add two numbers.")
    assert (by_object.name, by_object(2)) == ("Scaler", 20)
    assert by_partial(1) == 6


def test_a_callable_without_a_name_asks_for_one() -> None:
    class Nameless:
        __name__ = None

        def __call__(self) -> None: ...

    with pytest.raises(TypeError, match=r"pass name='\.\.\.'"):
        task(Nameless())
    assert task(name="named")(Nameless()).name == "named"


def test_a_class_is_not_a_task() -> None:
    with pytest.raises(TypeError, match="needs a function or another callable object"):
        task(int)


@pytest.mark.parametrize("reserved", ["return_state", "wait_for"])
@pytest.mark.parametrize("decorator", [task, flow])
def test_reserved_parameter_names_are_refused(reserved: str, decorator: Any) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def f(x, {reserved}=None): ...", namespace)
    with pytest.raises(
        ReservedArgumentError, match=f"parameter '{reserved}'.*is reserved.*rename it"
    ):
        decorator(namespace["f"])


def test_a_flow_cannot_wrap_a_generator() -> None:
    def gen() -> Any:
        yield 1

    with pytest.raises(TypeError, match="only tasks can stream"):
        flow(gen)


# Attributes


# Names, versions and Prefect's attribute names


@pytest.mark.parametrize("character", ["/", "%", "&", "<", ">"])
def test_a_flow_name_with_a_character_prefect_refuses_is_an_invalid_name(character: str) -> None:
    name = f"my{character}flow"
    with pytest.raises(InvalidNameError, match="contains an invalid character") as raised:
        Flow(add, name=name)
    assert str(raised.value).startswith(f"flow {name!r}: Name {name!r}")
    assert "Must not contain any of: ['/', '%', '&', '>', '<']" in str(raised.value)
    with pytest.raises(InvalidNameError, match="contains an invalid character"):
        Flow(add, name="fine").with_options(name=name)


def test_task_names_may_hold_the_characters_flow_names_may_not() -> None:
    assert Task(add, name="a/b%c&d<e>").name == "a/b%c&d<e>"  # as in Prefect


def test_a_lambda_flow_is_named_unknown_lambda_and_a_lambda_task_keeps_its_name() -> None:
    assert Flow(lambda: 1).name == "unknown-lambda"
    assert flow(functools.partial(lambda x: x, 1)).name == "unknown-lambda"
    assert Task(lambda: 1).name == "<lambda>"  # Prefect checks no task name


def test_a_flow_version_defaults_to_the_hash_of_its_source_file() -> None:
    expected = hashlib.md5(Path(__file__).read_bytes(), usedforsecurity=False).hexdigest()
    made = Flow(add)
    assert made.version == expected
    assert made.with_options(retries=1).version == expected
    assert made.with_options(version=None).version == expected


def test_an_explicit_flow_version_wins() -> None:
    made = Flow(add, version="2.1")
    assert (made.version, made.with_options(version="3").version) == ("2.1", "3")


def test_a_flow_without_a_source_file_has_no_version() -> None:
    namespace: dict[str, Any] = {}
    exec(compile("def typed_in():\n    return 1\n", "<stdin>", "exec"), namespace)
    assert Flow(namespace["typed_in"]).version is None
    assert Flow(functools.partial(add, 1)).version is None


def test_a_task_version_has_no_default() -> None:
    assert Task(add).version is None  # as in Prefect: only flows hash their file


@pytest.mark.parametrize("validate", [True, False])
def test_should_validate_parameters_is_prefects_name_for_validate_parameters(
    validate: bool,
) -> None:
    assert Flow(add, validate_parameters=validate).should_validate_parameters is validate


def _doubled(x: int) -> int:
    """Double a number."""
    return x * 2


def test_a_task_made_of_a_flow_takes_the_flows_function_name_and_parameters() -> None:
    wrapped = task(flow(_doubled))
    assert (wrapped.name, wrapped.description) == ("_doubled", "Double a number.")
    assert list(wrapped.signature.parameters) == ["x"]
    assert wrapped.task_key != task(flow(add)).task_key


def test_a_task_made_of_a_flow_runs_the_flow_as_its_body(backend: str) -> None:
    wrapped = task(flow(_doubled))

    @flow
    def outer() -> tuple[int, int]:
        return wrapped(4), wrapped.submit(x=5).result()

    assert outer() == (8, 10)
    assert wrapped(6) == 12  # outside any flow, too


@pytest.mark.anyio
async def test_a_task_made_of_an_async_flow_is_awaited() -> None:
    @flow
    async def tripled(x: int) -> int:
        return x * 3

    wrapped = task(tripled)

    @flow
    async def outer() -> int:
        return await wrapped(2) + await wrapped.submit(3)

    assert wrapped.is_async
    assert await outer() == 15


def test_every_option_is_an_attribute_with_its_default() -> None:
    t = task(add)
    assert (t.name, t.description, t.version, t.tags) == ("add", "Add two numbers.", None, set())
    assert (t.retries, t.retry_delay_seconds, t.timeout_seconds, t.log_prints) == (0, 0, None, None)
    assert (t.task_run_name, t.cache_key_fn, t.cache_expiration, t.refresh_cache) == (None,) * 4
    assert (t.on_completion_hooks, t.on_failure_hooks, t.on_running_hooks) == ((), (), ())
    f = flow(add)
    assert (f.name, f.flow_run_name, f.retries, f.timeout_seconds, f.backend) == (
        "add", None, 0, None, None,
    )  # fmt: skip
    assert (f.on_cancellation_hooks, f.on_crashed_hooks) == ((), ())


@pytest.mark.parametrize("definition", [task(add), flow(add)])
def test_definitions_are_immutable_and_point_to_with_options(definition: Any) -> None:
    with pytest.raises(AttributeError, match=r"immutable.*\.with_options\(retries=\.\.\.\)"):
        definition.retries = 3
    assert definition.retries == 0


def test_viz_return_value_is_accepted_and_changes_nothing() -> None:
    t = task(viz_return_value=[1, 2])(add)
    assert t.viz_return_value == [1, 2]
    assert t(1) == 2


# with_options


def test_with_options_none_keeps_what_prefect_keeps_and_resets_the_rest() -> None:
    # Prefect 3.8's Task.with_options: ``x or self.x`` for these, ``NotSet`` for the rest.
    def condition(*_: object) -> bool:
        return True

    def key(*_: object) -> str:
        return "k"

    t = Task(
        add, name="a", tags=["x"], retries=3, timeout_seconds=5, task_run_name="r-{x}",
        cache_key_fn=key, cache_expiration=timedelta(hours=1), retry_condition_fn=condition,
        cache_result_in_memory=False,
    )  # fmt: skip
    kept = {"name", "tags", "timeout_seconds", "cache_key_fn", "cache_expiration",
            "retry_condition_fn", "cache_result_in_memory"}  # fmt: skip
    copy = t.with_options(**dict.fromkeys([*kept, "retries", "task_run_name"]))  # type: ignore[arg-type]
    assert {option: getattr(copy, option) for option in kept} == {
        option: getattr(t, option) for option in kept
    }
    assert (copy.retries, copy.task_run_name) == (0, None)


def test_a_flows_with_options_none_keeps_what_prefect_keeps() -> None:
    # Prefect 3.8's Flow.with_options: ``x if x is not None else self.x`` for these.
    f = Flow(
        add, name="a", flow_run_name="r", version="v1", retries=2, retry_delay_seconds=3,
        timeout_seconds=9, validate_parameters=False, cache_result_in_memory=False,
        log_prints=True,
    )  # fmt: skip
    kept = {"name", "flow_run_name", "version", "retries", "retry_delay_seconds",
            "timeout_seconds", "validate_parameters", "cache_result_in_memory"}  # fmt: skip
    copy = f.with_options(**dict.fromkeys([*kept, "log_prints"]))  # type: ignore[arg-type]
    assert {option: getattr(copy, option) for option in kept} == {
        option: getattr(f, option) for option in kept
    }
    assert copy.log_prints is None


def test_with_options_keeps_hooks_unless_replaced() -> None:
    def one(*_: object) -> None: ...

    def two(*_: object) -> None: ...

    t = Task(add, on_failure=[one])
    assert t.with_options(retries=1).on_failure_hooks == (one,)
    assert t.with_options(on_failure=[two]).on_failure_hooks == (two,)


def test_with_options_changes_nothing_of_the_original() -> None:
    t = Task(add, retries=1)
    t.with_options(retries=2, tags=["new"])
    assert (t.retries, t.tags) == (1, set())


class Counter:
    def __init__(self, name: str) -> None:
        self.name = name

    @task(task_run_name="{self.name}-{x}")
    def bump(self, x: int) -> str | None:
        return runtime.task_run.name

    @classmethod
    @task
    def kind(cls) -> str:
        return cls.__name__

    @task  # type: ignore[arg-type]
    @staticmethod
    def plain(x: int) -> int:
        return -x


def test_method_tasks_keep_their_binding_through_with_options(backend: str) -> None:
    c = Counter("c")

    @flow
    def main() -> list[object]:
        return [
            c.bump.with_options(retries=1)(3),
            Counter.kind.with_options(retries=1)(),
            Counter.plain.with_options(retries=1)(4),
        ]

    assert main() == ["c-3", "Counter", -4]


# Bound methods


def test_self_is_visible_to_run_name_templates_and_cache_key_fns(backend: str) -> None:
    keys: list[dict[str, Any]] = []

    def key(_: object, parameters: dict[str, Any]) -> str:
        keys.append(parameters)
        return f"{parameters['self'].name}-{parameters['x']}"

    class Thing:
        name = "thing"

        @task(task_run_name="{self.name}-{x}", cache_key_fn=key)
        def act(self, x: int) -> tuple[str | None, dict[str, Any]]:
            return runtime.task_run.name, runtime.task_run.parameters

    thing = Thing()
    assert thing.act(1) == ("thing-1", {"x": 1})
    assert keys == [{"self": thing, "x": 1}]


def test_run_name_function_may_take_the_parameters(backend: str) -> None:
    @task(task_run_name=lambda parameters: f"n-{parameters['n']}")
    def named(n: int) -> str | None:
        return runtime.task_run.name

    assert named(4) == "n-4"


# Hook decorators


def test_task_hook_decorators_take_effect_for_later_calls(backend: str) -> None:
    seen: list[str] = []

    @task
    def maybe(fail: bool) -> None:
        if fail:
            raise ValueError("no")

    before = maybe.with_options(name="before")

    @maybe.on_running
    def running(t: Task[Any, Any], run: Any, state: State[Any]) -> None:
        seen.append(f"running {t.name}")

    @maybe.on_completion
    async def done(t: Task[Any, Any], run: Any, state: State[Any]) -> None:
        seen.append(f"completed {state.name}")

    @maybe.on_failure
    def failed(t: Task[Any, Any], run: Any, state: State[Any]) -> None:
        seen.append("failed")

    maybe(False)
    maybe(True, return_state=True)
    before(False)
    assert seen == ["running maybe", "completed Completed", "running maybe", "failed"]
    assert maybe.on_failure_hooks == (failed,)
    assert maybe.with_options(retries=0).on_completion_hooks == (done,)


@pytest.mark.anyio
async def test_flow_hook_decorators_cover_every_final_state() -> None:

    seen: list[str] = []

    @flow
    async def job(mode: str) -> None:
        if mode == "fail":
            raise ValueError("no")
        if mode == "cancel":
            await anyio.sleep_forever()

    for hook in ("on_completion", "on_failure", "on_running", "on_cancellation", "on_crashed"):

        def record(f: Any, run: Any, state: State[Any], hook: str = hook) -> None:
            seen.append(f"{hook}:{state.name}")

        getattr(job, hook)(record)

    await job("ok")
    await job("fail", return_state=True)
    with anyio.move_on_after(0.05):
        await job("cancel")
    assert seen == [
        "on_running:Running", "on_completion:Completed",
        "on_running:Running", "on_failure:Failed",
        "on_running:Running", "on_cancellation:Cancelled",
    ]  # fmt: skip


def test_hook_decorator_refuses_something_not_callable() -> None:
    with pytest.raises(TypeError, match=r"task 'add'.*needs a function, got 3"):
        task(add).on_failure(3)  # type: ignore[type-var]


# The cache policy in force


def key_fn(context: object, parameters: dict[str, Any]) -> str:
    return "k"


def test_only_persisted_results_are_cached(flowkit_home: Path) -> None:
    calls: list[int] = []

    def counted(x: int) -> int:
        calls.append(x)
        return x

    plain, persisted = Task(counted), Task(counted, persist_result=True, name="persisted")

    @flow
    def main() -> None:  # DEFAULT keys on the flow run too
        plain(1), plain(1), persisted(1), persisted(1)

    main()
    assert calls == [1, 1, 1]


def test_a_new_cache_policy_replaces_a_cache_key_fn() -> None:
    t = Task(add, cache_key_fn=task_input_hash)
    assert t.with_options(cache_policy=INPUTS).cache_policy == INPUTS
    assert (
        t.with_options(cache_policy=INPUTS).with_options(cache_key_fn=key_fn).cache_key_fn is key_fn
    )


@task
def double(x: int) -> int:
    return 2 * x


# Methods


class Greeter:
    def __init__(self, name: str) -> None:
        self.name = name

    @task
    def hello(self, greeting: str) -> str:
        return f"{greeting}, {self.name}"

    @task
    async def ahello(self) -> str:
        return f"hi {self.name}"

    @classmethod
    @task
    def kind(cls) -> str:
        return cls.__name__

    @staticmethod
    @task
    def shout(word: str) -> str:
        return word.upper()

    @classmethod
    @task
    async def akind(cls) -> str:
        return cls.__name__


class LoudGreeter(Greeter):
    pass


@pytest.mark.every_loop
def test_methods_of_all_kinds_are_tasks(backend: str) -> None:
    @flow
    def main() -> list[str]:
        g = LoudGreeter("Ann")
        return [g.hello("Hello"), Greeter.kind(), LoudGreeter.kind(), g.shout("hey")]

    assert main() == ["Hello, Ann", "Greeter", "LoudGreeter", "HEY"]


@pytest.mark.anyio
async def test_async_methods_are_tasks() -> None:
    @flow
    async def main() -> list[str]:
        return [await LoudGreeter("Bo").ahello(), await LoudGreeter.akind()]

    assert await main() == ["hi Bo", "LoudGreeter"]


@pytest.mark.every_loop
def test_method_parameters_leave_out_self(backend: str) -> None:
    seen: list[dict[str, Any]] = []

    class Thing:
        @task
        def act(self, x: int) -> None:
            seen.append(runtime.task_run.parameters)

    Thing().act(3)
    assert seen == [{"x": 3}]


@pytest.mark.every_loop
def test_task_above_classmethod_and_staticmethod_binds_the_same(backend: str) -> None:
    class Either:
        @task  # type: ignore[arg-type]  # a classmethod object, as Prefect accepts
        @classmethod
        def kind(cls) -> str:
            return cls.__name__

        @task  # type: ignore[arg-type]
        @staticmethod
        def shout(word: str) -> str:
            return word.upper()

    class Child(Either):
        pass

    @flow
    def main() -> list[str]:
        return [Either.kind(), Child.kind(), Child().kind(), Either.shout("a"), Child().shout("b")]

    assert main() == ["Either", "Child", "Child", "A", "B"]


def test_task_on_something_not_callable_is_refused() -> None:
    with pytest.raises(TypeError, match="@task needs a function or another callable object, got 3"):
        task(3)  # type: ignore[call-overload]


# Options


def test_defaults_come_from_the_function() -> None:
    @task
    def fetch_rows() -> None:
        """Fetch the rows."""

    @flow
    def nightly_job() -> None: ...

    assert fetch_rows.name == "fetch_rows"
    assert fetch_rows.description == "Fetch the rows."
    assert nightly_job.name == "nightly-job"


def test_with_options_returns_a_changed_copy() -> None:
    changed = double.with_options(name="twice", tags={"math"}, version="2")
    assert (changed.name, changed.tags, changed.version) == ("twice", {"math"}, "2")
    assert (double.name, double.tags, double.version) == ("double", frozenset(), None)
    assert changed(2) == 4


@pytest.mark.every_loop
def test_task_run_name_template_and_function(backend: str) -> None:
    names: list[str | None] = []

    @task(task_run_name="fetch-{url}")
    def fetch(url: str) -> None:
        names.append(runtime.task_run.name)

    @task(task_run_name=lambda: f"for-{runtime.task_run.parameters['n']}")
    def count(n: int) -> None:
        names.append(runtime.task_run.name)

    @flow(flow_run_name="daily-{day}")
    def main(day: str) -> str | None:
        fetch("a.io")
        count(3)
        return runtime.flow_run.name

    assert main("mon") == "daily-mon"
    assert names == ["fetch-a.io", "for-3"]


def test_template_naming_a_missing_argument_is_refused() -> None:
    with pytest.raises(ValueError, match=r"task 'fetch'.*'nope'"):

        @task(task_run_name="x-{nope}")
        def fetch(url: str) -> None: ...


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError):
        task(retry_forever=True)(lambda: None)  # type: ignore[call-overload]


def test_task_key_depends_on_name_function_and_tags() -> None:
    def f() -> None: ...

    def g() -> None: ...

    base = task(f)
    assert base.task_key == task(f).task_key
    assert base.task_key != task(g).task_key
    assert base.task_key != base.with_options(name="other").task_key
    assert base.task_key != base.with_options(tags=["x"]).task_key


@pytest.mark.every_loop
def test_tags_combine_decorator_and_nested_contexts(backend: str) -> None:
    seen: list[list[str]] = []

    @task(tags=["own"])
    def tagged() -> None:
        seen.append(runtime.task_run.tags)

    @flow
    def main() -> None:
        with tags("outer"):
            with tags("inner"):
                tagged()
            tagged()
        tagged()

    main()
    assert seen == [["inner", "outer", "own"], ["outer", "own"], ["own"]]
