"""Every ```python block of the docs runs, and prints what the ```text block after it shows.

A block runs in a fresh namespace, in a fresh FLOWKIT_HOME. When a ```text block comes
right after it, the block's standard output must equal it, except for lines of log output
(which carry times and generated names) and lines the page marks with ``...``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```(?:\s*```text\n(.*?)```)?", re.DOTALL)


def _blocks() -> list[tuple[str, str, str | None]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for n, match in enumerate(BLOCK.finditer(page.read_text()), start=1):
            found.append((f"{page.stem}-{n}", match.group(1), match.group(2)))
    return found


def _matches(expected: str, actual: str) -> bool:
    want = expected.strip().splitlines()
    got = actual.strip().splitlines()
    if len(want) != len(got):
        return False
    for w, g in zip(want, got, strict=True):
        pattern = ".*".join(re.escape(part) for part in w.split("..."))
        if not re.fullmatch(pattern, g):
            return False
    return True


@pytest.mark.parametrize(
    ("code", "expected"), [b[1:] for b in _blocks()], ids=[b[0] for b in _blocks()]
)
def test_example_runs(code: str, expected: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, "<docs example>", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    if expected is not None:
        assert _matches(expected, out), f"expected:\n{expected}\ngot:\n{out}"


def test_every_page_has_runnable_examples() -> None:
    pages = {b[0].rsplit("-", 1)[0] for b in _blocks()}
    assert pages >= {
        "index", "getting-started", "tasks", "flows", "concurrency", "timeouts-and-retries",
        "caching", "results", "generators", "run-store", "porting", "runtime", "limits",
        "testing", "task-runners", "benchmarking",
    }  # fmt: skip
