"""Static typing of the public API, checked by running mypy over small programs.

``tests/typing/check_types.py`` states what mypy must infer for correct uses; the misuses
below must each be reported, so that the typed signatures are known to constrain calls.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ROOT / "tests" / "typing" / "check_types.py"

DEFINITIONS = textwrap.dedent(
    """\
    from flowkit import Flow, Task, flow, task


    @task
    def add(x: int, y: int = 1) -> int:
        return x + y


    @task
    async def fetch(url: str) -> bytes:
        return url.encode()


    @flow
    def pipeline(n: int) -> str:
        return str(n)
    """
)

# Each line is a use mypy --strict must reject.
MISUSES = {
    "task_argument_of_wrong_type": 'add("one")',
    "task_argument_missing": "add()",
    "task_keyword_unknown": "add(1, z=2)",
    "task_result_used_as_another_type": "text: str = add(1)",
    "async_task_result_used_without_await": 'count: bytes = fetch("u")',
    "async_task_awaited_result_of_another_type": 'text: str = await fetch("u")',
    "flow_argument_of_wrong_type": 'pipeline("3")',
    "flow_result_used_as_another_type": "number: int = pipeline(3)",
    "submit_argument_of_wrong_type": 'add.submit("one")',
    "future_result_used_as_another_type": "text: str = add.submit(1).result()",
    "state_result_used_as_another_type": "text: str = add(1, return_state=True).result()",
    "with_options_option_of_wrong_type": 'add.with_options(retries="3")',
    "with_options_option_unknown": 'add.with_options(colour="red")',
    "with_options_copy_keeps_the_signature": 'add.with_options(name="x")("one")',
    "flow_with_options_copy_keeps_the_signature": 'pipeline.with_options(name="x")("3")',
    "task_constructor_option_of_wrong_type": 'Task(add.fn, retries="3")',
    "flow_constructor_option_unknown": "Flow(pipeline.fn, tags=['x'])",
    "task_option_assigned": "add.retries = 3",
    "flow_option_assigned": "pipeline.timeout_seconds = 3",
    "task_attribute_used_as_another_type": "count: int = add.tags",
}
# And uses it must accept, next to them, so that an error above is not a broken file.
CORRECT = {
    "task_call": "number: int = add(1, y=2)",
    "async_task_call": 'data: bytes = await fetch("u")',
    "flow_call": "text: str = pipeline(3)",
    "copy_call": "number: int = add.with_options(retries=1)(1)",
    # ``wait_for`` is documented on calls and ``submit``.
    "call_with_wait_for": "number: int = add(1, wait_for=[add.submit(2)])",
    "submit_with_wait_for": "number: int = add.submit(1, wait_for=[add.submit(2)]).result()",
    "constructor_call": "number: int = Task(add.fn, retries=1)(1)",
    "attribute_read": "retries: int = add.retries + pipeline.retries",
}


def mypy(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--show-error-codes", *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, int], str]:
    """Check one file holding every misuse and correct use; return their lines and the output."""
    lines = DEFINITIONS.splitlines()
    where: dict[str, int] = {}
    for name, use in {**MISUSES, **CORRECT}.items():
        lines += ["", "", f"async def {name}() -> None:", f"    {use}"]
        where[name] = len(lines)
    path = tmp_path_factory.mktemp("typing") / "uses.py"
    path.write_text("\n".join(lines) + "\n")
    result = mypy(path)
    return where, result.stdout + result.stderr


def errors_on(report: tuple[dict[str, int], str], name: str) -> list[str]:
    where, output = report
    return re.findall(rf"^.*uses\.py:{where[name]}: error: .*$", output, re.MULTILINE)


def test_typing_file_passes_mypy_strict() -> None:
    result = mypy(CHECKED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_typing_file_passes_pyright_strict() -> None:
    # pyright (VS Code's checker) types an async function's call as CoroutineType, not
    # Coroutine: the async overloads must still pick the awaited type.
    result = subprocess.run(
        [
            sys.executable, "-m", "basedpyright", "--project", str(ROOT / "pyproject.toml"),
            "--pythonpath", sys.executable, str(CHECKED),
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_typing_file_uses_assert_type() -> None:
    # The file checks inferred types; a file of plain calls would prove little.
    assert CHECKED.read_text().count("assert_type(") >= 20


@pytest.mark.parametrize("name", MISUSES)
def test_mypy_reports_misuse(report: tuple[dict[str, int], str], name: str) -> None:
    assert errors_on(report, name), f"{MISUSES[name]!r} was accepted:\n{report[1]}"


@pytest.mark.parametrize("name", CORRECT)
def test_mypy_accepts_correct_use(report: tuple[dict[str, int], str], name: str) -> None:
    assert errors_on(report, name) == []


def test_mypy_finds_flowkit_and_its_types(report: tuple[dict[str, int], str]) -> None:
    output = report[1]
    assert "import-not-found" not in output
    assert "import-untyped" not in output
