"""The checks CI depends on, as tests: strict typing, lint and format, and a README whose
test command is the one CI runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_package_is_mypy_strict_clean() -> None:
    result = _run("mypy", "--strict", "flowkit")
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_is_pyright_strict_clean() -> None:
    # basedpyright: pyright with its Node.js in the wheel, so it runs offline.
    config = str(ROOT / "pyproject.toml")  # not a pyrightconfig.json found further up
    result = _run("basedpyright", "--project", config, "--pythonpath", sys.executable)
    assert result.returncode == 0, result.stdout + result.stderr


def test_tree_is_ruff_clean() -> None:
    result = _run("ruff", "check", "flowkit", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_tree_is_ruff_formatted() -> None:
    result = _run("ruff", "format", "--check", "flowkit", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_quick_start_is_two_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", quick_start, re.DOTALL)
    assert len(commands) == 2
    demo, tests = commands
    assert "flowkit.demo" in demo
    assert "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()
