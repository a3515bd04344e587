"""flowkit.artifacts: Prefect 3's artifact functions record on the current run (or on
none, outside runs), through the event bus into the run store; ``flowkit runs show`` and
``flowkit artifacts`` list them."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest

from flowkit import flow, task
from flowkit._engine import events
from flowkit.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from flowkit.cli import main
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


def _outside(make: Callable[[], UUID]) -> UUID:
    with pytest.warns(FutureWarning, match="outside any flow or task run"):
        return make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: create_markdown_artifact("# kept", key="loose"),
        lambda: create_table_artifact([{"a": 1}], key="loose"),
        lambda: create_link_artifact("https://example.org", key="loose"),
    ],
    ids=["markdown", "table", "link"],
)
def test_an_artifact_made_outside_any_run_is_kept_with_no_run(
    make: Callable[[], UUID],
) -> None:
    made = _outside(make)
    with Store.open() as store:  # no flush: the call returns once it is recorded
        (found,) = store.latest_artifacts(without_run=True)
    assert (UUID(found.id), found.run_id, found.key) == (made, None, "loose")


def test_an_artifact_made_outside_any_run_warns_as_prefect_does() -> None:
    with pytest.warns(FutureWarning, match=r"create_link_artifact\(\) was called outside"):
        create_link_artifact("https://example.org")


def test_artifacts_ls_lists_artifacts_made_outside_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = _outside(lambda: create_markdown_artifact("# Loose notes", key="notes"))
    reporting()
    flush()
    capsys.readouterr()
    assert main(["artifacts", "ls", "--no-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[1].startswith(f"{str(made)[:8]}   markdown  notes ")
    assert lines[1].endswith(" # Loose notes")
    assert " - " in lines[1]  # no run


def test_artifacts_show_prints_a_whole_artifact_by_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _outside(lambda: create_table_artifact({"name": ["a", "bb"], "size": [1, 22]}, key="sizes"))
    capsys.readouterr()
    assert main(["artifacts", "show", "sizes"]) == 0
    out = capsys.readouterr().out
    assert "run: none (made outside any run)\n" in out
    assert out.endswith("\nname  size\na     1\nbb    22\n")


def test_artifacts_show_says_when_nothing_matches(capsys: pytest.CaptureFixture[str]) -> None:
    _outside(lambda: create_markdown_artifact("x"))
    assert main(["artifacts", "show", "nope"]) == 2
    assert "no artifact has the id or key 'nope'" in capsys.readouterr().err


def test_an_artifact_outside_runs_is_not_recorded_with_the_store_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reporting()  # the store exists
    flush()
    monkeypatch.setenv("FLOWKIT_STORE", "off")
    _outside(lambda: create_markdown_artifact("# off"))
    with Store.open() as store:
        assert store.latest_artifacts(without_run=True) == []


# Progress artifacts.


@task
def step(progress_id: UUID, done: float) -> None:
    update_progress_artifact(progress_id, done)


@flow
def progressing() -> UUID:
    progress_id = create_progress_artifact(0.0, key="load", description="loading")
    step(progress_id, 50)
    update_progress_artifact(progress_id, 75.5, description="almost")
    return progress_id


@flow
async def async_progressing() -> UUID:
    progress_id = create_progress_artifact(0.0, key="load", description="loading")
    step(progress_id, 50)
    update_progress_artifact(progress_id, 75.5, description="almost")
    return progress_id


@pytest.mark.anyio
async def test_a_progress_artifact_is_recorded_with_its_last_update() -> None:
    progress_id = await async_progressing()
    flush()
    with Store.open() as store:
        (found,) = store.artifacts(store.flow_runs(limit=1)[0].id)
    assert (UUID(found.id), found.type, found.key) == (progress_id, "progress", "load")
    assert (found.data, found.description) == (75.5, "almost")
    assert found.updated > found.created


def test_a_progress_artifact_of_a_sync_flow_is_updated(backend: str) -> None:
    progressing()
    flush()
    with Store.open() as store:
        (found,) = store.artifacts(store.flow_runs(limit=1)[0].id)
    assert found.data == 75.5


def test_update_progress_artifact_returns_the_id_it_was_given() -> None:
    @flow
    def echo() -> tuple[UUID, UUID]:
        progress_id = create_progress_artifact(10)
        return progress_id, update_progress_artifact(progress_id, 20)

    made, returned = echo()
    assert returned == made


def test_an_update_without_description_keeps_the_description() -> None:
    @flow
    def described() -> None:
        progress_id = create_progress_artifact(10, description="the *load*")
        update_progress_artifact(progress_id, 20)

    described()
    flush()
    with Store.open() as store:
        (found,) = store.artifacts(store.flow_runs(limit=1)[0].id)
    assert (found.data, found.description) == (20.0, "the *load*")


def test_a_progress_artifact_made_outside_runs_is_updated_outside_runs() -> None:
    progress_id = _outside(lambda: create_progress_artifact(5))
    update_progress_artifact(str(progress_id), 6)
    with Store.open() as store:
        assert store.artifact(str(progress_id)).data == 6.0


@pytest.mark.parametrize(("given", "kept"), [(-5, 0.0), (150.5, 100.0)])
def test_a_progress_outside_0_to_100_is_clamped_with_a_warning(
    given: float, kept: float, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[events.Artifact] = []
    stop = events.subscribe(lambda e: seen.append(e) if isinstance(e, events.Artifact) else None)

    @flow
    def overshoot() -> None:
        create_progress_artifact(given)

    try:
        overshoot()
    finally:
        stop()
    assert json.loads(seen[0].data) == kept
    assert f"got progress={given!r}, outside 0 to 100; recording {kept:g}%" in caplog.text


@pytest.mark.parametrize("bad", ["50", True, None])
def test_a_progress_must_be_a_number(bad: object) -> None:
    with pytest.raises(TypeError, match=rf"takes a number from 0 to 100 as progress, got {bad!r}"):
        create_progress_artifact(bad)  # type: ignore[arg-type]


def test_a_progress_must_not_be_nan() -> None:
    with pytest.raises(ValueError, match="got progress=nan"):
        create_progress_artifact(math.nan)


def test_updating_an_unknown_artifact_names_the_id() -> None:
    @flow
    def stray() -> None:
        markdown_id = create_markdown_artifact("# not a progress")
        update_progress_artifact(markdown_id, 50)

    with pytest.raises(ValueError, match="made no progress artifact with that id"):
        stray()


def test_updating_with_something_not_an_id_is_refused() -> None:
    with pytest.raises(TypeError, match=r"takes an artifact id .* got 'load'"):
        update_progress_artifact("load", 50)  # type: ignore[arg-type]


def test_runs_show_shows_a_progress_as_a_percentage(capsys: pytest.CaptureFixture[str]) -> None:
    progressing()
    flush()
    capsys.readouterr()
    assert main(["runs", "show", "progressing"]) == 0
    assert "  progress 'load' by " in (out := capsys.readouterr().out)
    assert out.endswith(": 75.5%\n")


def test_markdown_must_be_text() -> None:
    @flow
    def wrong() -> None:
        create_markdown_artifact(b"# bytes")  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="takes a string as markdown, got b'# bytes'"):
        wrong()
