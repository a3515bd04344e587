"""flowkit.artifacts: Prefect 3's artifact functions record on the current run, through
the event bus into the run store, and ``flowkit runs show`` lists them."""

from __future__ import annotations

import json
import math
from typing import Any
from uuid import UUID

import pytest

from flowkit import flow, task
from flowkit._engine import events
from flowkit.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from flowkit.cli import main
from flowkit.exceptions import MissingContextError
from flowkit.store import Store, flush


@task
def summarise() -> UUID:
    return create_table_artifact({"name": ["a", "b"], "size": [1, math.nan]}, key="sizes")


@flow
def reporting() -> list[UUID]:
    return [
        create_markdown_artifact("# Done", key="report", description="the *weekly* report"),
        summarise(),
        create_link_artifact("https://example.org", link_text="dashboard"),
    ]


@flow
async def async_reporting() -> list[UUID]:
    return [
        create_markdown_artifact("# Done", key="report", description="the *weekly* report"),
        summarise(),
        create_link_artifact("https://example.org", link_text="dashboard"),
    ]


@pytest.mark.anyio
async def test_artifacts_are_recorded_on_the_run_that_made_them() -> None:
    ids = await async_reporting()
    flush()
    with Store.open() as store:
        root = store.flow_runs(limit=1)[0]
        found = store.artifacts(root.id)
        runs = {r.id: r.name for r in store.tree(root.id)}
    assert [UUID(a.id) for a in found] == ids
    markdown, table, link = found
    assert (markdown.type, markdown.key, markdown.data) == ("markdown", "report", "# Done")
    assert markdown.description == "the *weekly* report"
    assert runs[markdown.run_id] == root.name
    assert runs[table.run_id] == "summarise-0"
    assert table.data == {"columns": ["name", "size"], "rows": [["a", 1], ["b", None]]}
    assert link.data == {"link": "https://example.org", "link_text": "dashboard"}


def test_artifacts_of_a_sync_flow_are_recorded(backend: str) -> None:
    ids = reporting()
    flush()
    with Store.open() as store:
        assert [UUID(a.id) for a in store.artifacts(store.flow_runs(limit=1)[0].id)] == ids


def test_runs_show_lists_the_artifacts(capsys: pytest.CaptureFixture[str]) -> None:
    reporting()
    flush()
    capsys.readouterr()
    assert main(["runs", "show", "reporting"]) == 0
    out = capsys.readouterr().out
    with Store.open() as store:
        name = store.flow_runs(limit=1)[0].name
    assert f"Artifacts:\n  markdown 'report' by {name}: # Done\n" in out
    assert "  table 'sizes' by summarise-0: 2 rows, columns name, size\n" in out
    assert ": dashboard <https://example.org>\n" in out


@pytest.mark.parametrize(
    ("table", "columns", "rows"),
    [
        ({"a": [1, 2], "b": ["x", "y"]}, ["a", "b"], [[1, "x"], [2, "y"]]),
        ([{"a": 1}, {"a": 2, "b": 3}], ["a", "b"], [[1, None], [2, 3]]),
        ([[1, 2], (3, 4)], None, [[1, 2], [3, 4]]),
        ([], [], []),
        ({"when": [object]}, ["when"], [["<class 'object'>"]]),
    ],
)
def test_a_table_takes_prefects_three_shapes(
    table: Any, columns: list[str] | None, rows: list[list[Any]]
) -> None:
    seen: list[events.Artifact] = []
    stop = events.subscribe(lambda e: seen.append(e) if isinstance(e, events.Artifact) else None)

    @flow
    def tabulate() -> None:
        create_table_artifact(table)

    try:
        tabulate()
    finally:
        stop()
    (artifact,) = seen
    assert artifact.type == "table"
    assert json.loads(artifact.data) == {"columns": columns, "rows": rows}


def test_columns_of_different_lengths_are_refused() -> None:
    @flow
    def ragged() -> None:
        create_table_artifact({"a": [1, 2], "b": [1]})

    with pytest.raises(ValueError, match=r"columns of different lengths \[1, 2\]"):
        ragged()


def test_a_table_of_another_shape_is_refused() -> None:
    @flow
    def odd() -> None:
        create_table_artifact("a,b\n1,2")  # type: ignore[arg-type]

    with pytest.raises(TypeError, match=r"takes columns .* got 'a,b"):
        odd()


@pytest.mark.parametrize("key", ["Weekly", "weekly report", "weekly_report", ""])
def test_a_key_is_lowercase_letters_digits_and_dashes(key: str) -> None:
    @flow
    def keyed() -> None:
        create_markdown_artifact("x", key=key)

    with pytest.raises(ValueError, match="an artifact key has only lowercase letters"):
        keyed()


def test_an_artifact_outside_any_run_says_where_to_call_it() -> None:
    with pytest.raises(MissingContextError, match="outside any flow or task run"):
        create_markdown_artifact("# lost")


def test_markdown_must_be_text() -> None:
    @flow
    def wrong() -> None:
        create_markdown_artifact(b"# bytes")  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="takes a string as markdown, got b'# bytes'"):
        wrong()
