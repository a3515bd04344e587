"""Artifacts: a markdown report, a table or a link that a run leaves for people to look at.

Prefect 3's names and arguments. An artifact belongs to the run that makes it (a task
run, else the flow run); the run store records it with the run, ``flowkit runs show``
lists it, and the run's page in ``flowkit ui`` shows it::

    @flow
    def report() -> None:
        create_markdown_artifact("# Done\\n\\n*3* files copied", key="copy-report")
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast
from uuid import UUID, uuid4

from ._engine import events
from ._engine.runs import current_run
from .exceptions import MissingContextError

__all__ = ["create_link_artifact", "create_markdown_artifact", "create_table_artifact"]

_KEY = re.compile(r"[a-z0-9-]+")


def create_markdown_artifact(
    markdown: str, key: str | None = None, description: str | None = None
) -> UUID:
    """Record a markdown text on the current run. Raw HTML in it is shown as text.

    Args:
        markdown: The text, in markdown.
        key: Names the artifact across runs: lowercase letters, digits and dashes.
        description: A short markdown description.

    Returns:
        The artifact's id.

    Raises:
        MissingContextError: No flow or task run is running here.
        ValueError: ``key`` has other characters than lowercase letters, digits, dashes.
        TypeError: ``markdown`` or ``description`` is not a string.
    """
    _check_text("markdown", markdown, "create_markdown_artifact")
    return _record("markdown", markdown, key, description, "create_markdown_artifact")


def create_table_artifact(
    table: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]],
    key: str | None = None,
    description: str | None = None,
) -> UUID:
    """Record a table on the current run.

    Args:
        table: Columns (``{"name": ["a", "b"], "size": [1, 2]}``), rows as mappings
            (``[{"name": "a", "size": 1}, ...]``) or rows as lists (no header). A value
            JSON cannot hold is recorded as its ``repr``; NaN as an empty cell.
        key: Names the artifact across runs: lowercase letters, digits and dashes.
        description: A short markdown description.

    Returns:
        The artifact's id.

    Raises:
        MissingContextError: No flow or task run is running here.
        ValueError: ``key`` is malformed, or the columns have different lengths.
        TypeError: ``table`` is none of the three shapes.
    """
    return _record("table", _rows(table), key, description, "create_table_artifact")


def create_link_artifact(
    link: str, link_text: str | None = None, key: str | None = None, description: str | None = None
) -> UUID:
    """Record a link on the current run.

    Args:
        link: The address. Only ``http``, ``https`` and ``mailto`` addresses become
            clickable on the page; others are shown as text.
        link_text: The text to show instead of the address.
        key: Names the artifact across runs: lowercase letters, digits and dashes.
        description: A short markdown description.

    Returns:
        The artifact's id.

    Raises:
        MissingContextError: No flow or task run is running here.
        ValueError: ``key`` is malformed.
        TypeError: ``link`` or ``link_text`` is not a string.
    """
    _check_text("link", link, "create_link_artifact")
    if link_text is not None:
        _check_text("link_text", link_text, "create_link_artifact")
    data = {"link": link, "link_text": link_text}
    return _record("link", data, key, description, "create_link_artifact")


def _check_text(name: str, value: object, caller: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{caller}() takes a string as {name}, got {value!r}; pass str({name})")


def _rows(table: object) -> dict[str, Any]:
    """The table as ``{"columns": [...] or None, "rows": [[...], ...]}``."""
    if isinstance(table, Mapping):
        by_column = cast("Mapping[object, Sequence[Any]]", table)
        columns = [str(c) for c in by_column]
        cells = [list(v) for v in by_column.values()]
        lengths = {len(c) for c in cells}
        if len(lengths) > 1:
            raise ValueError(
                f"create_table_artifact() got columns of different lengths {sorted(lengths)}; "
                "give every column one value per row"
            )
        return {"columns": columns, "rows": [list(r) for r in zip(*cells, strict=True)]}
    if isinstance(table, Sequence) and not isinstance(table, str | bytes):
        items = list(cast("Sequence[object]", table))
        if all(isinstance(r, Mapping) for r in items):
            records = [cast("Mapping[object, Any]", r) for r in items]
            columns = list(dict.fromkeys(str(k) for r in records for k in r))
            by_name = [{str(k): v for k, v in r.items()} for r in records]
            return {"columns": columns, "rows": [[r.get(c) for c in columns] for r in by_name]}
        if all(isinstance(r, Sequence) and not isinstance(r, str | bytes) for r in items):
            return {"columns": None, "rows": [list(cast("Sequence[Any]", r)) for r in items]}
    raise TypeError(
        f"create_table_artifact() takes columns (a dict of lists), rows as dicts or rows as "
        f"lists, got {table!r}"
    )


def _jsonable(value: object) -> str:
    return repr(value)


def _nan_free(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_nan_free(v) for v in cast("list[object]", value)]
    if isinstance(value, dict):
        return {k: _nan_free(v) for k, v in cast("dict[str, object]", value).items()}
    return value


def _record(
    kind: Literal["markdown", "table", "link"],
    data: object,
    key: str | None,
    description: str | None,
    caller: str,
) -> UUID:
    if key is not None and (not isinstance(key, str) or not _KEY.fullmatch(key)):
        raise ValueError(
            f"{caller}() got key={key!r}; an artifact key has only lowercase letters, digits "
            "and dashes, e.g. 'weekly-report'"
        )
    if description is not None:
        _check_text("description", description, caller)
    run = current_run.get()
    if run is None:
        raise MissingContextError(
            f"{caller}() was called outside any flow or task run; call it from the body "
            "of a @flow or @task, whose run the artifact belongs to"
        )
    artifact_id = uuid4()
    encoded = json.dumps(_nan_free(data), ensure_ascii=False, default=_jsonable, allow_nan=False)
    info = run.info
    events.emit(
        events.Artifact(
            str(artifact_id), info.id, info.root_id, time.time(), kind, key, description, encoded
        )
    )
    return artifact_id
