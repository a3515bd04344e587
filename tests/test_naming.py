"""Run names: generated two-word flow run names, and ``*_run_name`` templates."""

from __future__ import annotations

import inspect
import keyword
import re
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flowkit import flow, runtime, task
from flowkit._engine.naming import (
    ADJECTIVES,
    ANIMALS,
    check_template,
    generate_name,
    render_run_name,
)

TWO_WORDS = re.compile(r"[a-z]+-[a-z]+")
OWNER = "flow 'report'"

identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s)
)


def signature(*names: str, **kinds: inspect._ParameterKind) -> inspect.Signature:
    """A signature with positional-or-keyword parameters ``names``, then ``kinds``."""
    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    params += [inspect.Parameter(n, kind) for n, kind in kinds.items()]
    return inspect.Signature(params)


# Generated names


def test_generated_name_is_two_lowercase_words() -> None:
    for _ in range(200):
        assert TWO_WORDS.fullmatch(generate_name())


def test_generated_name_is_an_adjective_and_an_animal() -> None:
    adjective, animal = generate_name().split("-")
    assert adjective in ADJECTIVES
    assert animal in ANIMALS


@pytest.mark.parametrize("words", [ADJECTIVES, ANIMALS], ids=["adjectives", "animals"])
def test_name_words_are_distinct_lowercase_letters(words: tuple[str, ...]) -> None:
    assert all(re.fullmatch(r"[a-z]+", word) for word in words)
    assert len(set(words)) == len(words)


def test_generated_names_vary() -> None:
    assert len({generate_name() for _ in range(50)}) > 1


def test_flow_runs_are_named_with_two_lowercase_words(backend: str) -> None:
    @flow
    def main() -> str | None:
        return runtime.flow_run.name

    name = main()
    assert name is not None
    assert TWO_WORDS.fullmatch(name)


@pytest.mark.anyio
async def test_async_flow_runs_are_named_with_two_lowercase_words() -> None:
    @flow
    async def main() -> str | None:
        return runtime.flow_run.name

    name = await main()
    assert name is not None
    assert TWO_WORDS.fullmatch(name)


def test_subflow_run_gets_a_name_of_its_own(backend: str) -> None:
    @flow
    def child() -> str | None:
        return runtime.flow_run.name

    @flow
    def parent() -> tuple[str | None, str | None]:
        return runtime.flow_run.name, child()

    names = parent()
    assert all(n is not None and TWO_WORDS.fullmatch(n) for n in names)


# check_template


def test_template_of_real_parameters_passes() -> None:
    check_template("{x}-on-{y}", signature("x", "y"), owner=OWNER)


@pytest.mark.parametrize(
    "template",
    ["plain", "{{x}}", "{x.real}", "{x[0]}", "{x!r}", "{x:>5}", "{x:{y}}"],
)
def test_template_forms_over_parameters_pass(template: str) -> None:
    check_template(template, signature("x", "y"), owner=OWNER)


def test_template_naming_a_missing_argument_is_refused() -> None:
    with pytest.raises(ValueError, match="names 'date', which is not a parameter") as caught:
        check_template("hello-{name}-on-{date}", signature("name"), owner=OWNER)
    message = str(caught.value)
    assert message.startswith(f"{OWNER}: run name template 'hello-{{name}}-on-{{date}}'")
    assert message.endswith("(parameters: name)")


def test_template_error_for_a_function_without_parameters_says_none() -> None:
    with pytest.raises(ValueError, match=r"\(parameters: none\)"):
        check_template("{x}", signature(), owner=OWNER)


def test_template_naming_a_missing_argument_in_a_format_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="'z'"):
        check_template("{x:{z}}", signature("x"), owner=OWNER)


@pytest.mark.parametrize("template", ["{}", "{0}", "run-{1}"])
def test_positional_fields_are_refused_with_a_named_example(template: str) -> None:
    with pytest.raises(
        ValueError, match=r"uses a positional field; name parameters instead.*'\{x\}'"
    ):
        check_template(template, signature("x"), owner=OWNER)


@pytest.mark.parametrize("template", ["a{", "}", "{x"])
def test_malformed_template_is_refused(template: str) -> None:
    with pytest.raises(ValueError, match=f"{re.escape(repr(template))} is malformed"):
        check_template(template, signature("x"), owner=OWNER)


def test_any_field_passes_when_the_function_takes_keywords() -> None:
    check_template("{anything}", signature("x", kw=inspect.Parameter.VAR_KEYWORD), owner=OWNER)


def test_keyword_only_parameters_may_be_named() -> None:
    check_template("{k}", signature(k=inspect.Parameter.KEYWORD_ONLY), owner=OWNER)


def test_decorator_refuses_a_template_naming_a_missing_argument() -> None:
    with pytest.raises(ValueError, match=r"flow 'report'.*names 'when'"):

        @flow(flow_run_name="report-{when}")
        def report(day: str) -> None:
            pass


@given(params=st.lists(identifiers, min_size=1, max_size=5, unique=True), data=st.data())
def test_templates_over_parameters_always_pass(params: list[str], data: st.DataObject) -> None:
    used = data.draw(st.lists(st.sampled_from(params), min_size=1))
    template = "-".join(f"{{{name}}}" for name in used)
    check_template(template, signature(*params), owner=OWNER)


@given(params=st.lists(identifiers, max_size=5, unique=True), missing=identifiers)
def test_templates_naming_another_name_always_fail(params: list[str], missing: str) -> None:
    assume(missing not in params)
    with pytest.raises(ValueError, match=f"names {missing!r}"):
        check_template(f"run-{{{missing}}}", signature(*params), owner=OWNER)


# render_run_name


def test_render_fills_the_template_with_arguments() -> None:
    name = render_run_name("{name}-on-{day}", {"name": "marvin", "day": "Thursday"}, owner=OWNER)
    assert name == "marvin-on-Thursday"


def test_render_applies_format_specs() -> None:
    assert render_run_name("batch-{n:03d}", {"n": 7}, owner=OWNER) == "batch-007"


def test_render_keeps_escaped_braces() -> None:
    assert render_run_name("{{literal}}-{x}", {"x": 1}, owner=OWNER) == "{literal}-1"


def test_render_calls_a_function() -> None:
    assert render_run_name(lambda: "from-a-function", {}, owner=OWNER) == "from-a-function"


def test_render_of_a_missing_argument_names_it() -> None:
    with pytest.raises(KeyError, match="needs argument 'day', which this call did not receive"):
        render_run_name("{day}", {}, owner=OWNER)


@pytest.mark.parametrize("returned", ["", None, 3])
def test_render_refuses_a_function_returning_no_name(returned: Any) -> None:
    with pytest.raises(
        TypeError, match=f"returned {returned!r}; it must return a non-empty string"
    ):
        render_run_name(lambda: returned, {}, owner=OWNER)


@given(values=st.dictionaries(identifiers, st.text() | st.integers(), min_size=1, max_size=4))
def test_render_equals_str_format(values: dict[str, Any]) -> None:
    template = "/".join(f"{{{key}}}" for key in values)
    expected = "/".join(str(value) for value in values.values())
    assert render_run_name(template, values, owner=OWNER) == expected


@given(text=st.text())
def test_render_of_a_template_without_fields_is_the_template(text: str) -> None:
    escaped = text.replace("{", "{{").replace("}", "}}")
    assert render_run_name(escaped, {}, owner=OWNER) == text


def test_flow_run_name_template_sees_default_arguments(backend: str) -> None:
    @flow(flow_run_name="{city}-{units}")
    def weather(city: str, units: str = "metric") -> str | None:
        return runtime.flow_run.name

    assert weather("oslo") == "oslo-metric"


def test_task_run_name_function_may_read_the_runtime(backend: str) -> None:
    def name_it() -> str:
        n = runtime.task_run.parameters["n"]
        return f"{runtime.flow_run.flow_name}-{runtime.task_run.task_name}-{n}"

    @task(task_run_name=name_it)
    def step(n: int) -> str | None:
        return runtime.task_run.name

    @flow
    def main() -> str | None:
        return step(5)

    assert main() == "main-step-5"
