"""Artifacts: a markdown report, a table, a link or a progress bar left for people to see.

Prefect 3's names and arguments. An artifact belongs to the run that makes it (a task
run, else the flow run); the run store records it with the run, ``flowkit runs show``
lists it, and the run's page in ``flowkit ui`` shows it::

    @flow
    def report() -> None:
        create_markdown_artifact("# Done\\n\\n*3* files copied", key="copy-report")

One made outside any flow or task run is recorded with no run, as Prefect records it
(with Prefect's ``FutureWarning``): ``flowkit artifacts ls`` lists it and the page's
Artifacts view shows it.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any, Literal, cast
from uuid import UUID, uuid4

from ._engine import events
from ._engine.lifecycle.runs import current_run

__all__ = [
    "create_link_artifact",
    "create_markdown_artifact",
    "create_progress_artifact",
    "create_table_artifact",
    "update_progress_artifact",
]

_KEY = re.compile(r"[a-z0-9-]+")
_log = logging.getLogger("flowkit.artifacts")
# The progress artifacts this process made: update_progress_artifact takes only those
# (the store is written off the caller's thread, so it cannot be asked yet).
_progress_ids: set[UUID] = set()
_progress_lock = threading.Lock()


def create_markdown_artifact(
    markdown: str, key: str | None = None, description: str | None = None
) -> UUID:
    """Record a markdown text on the current run (or on none, outside runs). The page
    renders it, GitHub-style pipe tables included; raw HTML in it is shown as text.

    Args:
        markdown: The text, in markdown.
        key: Names the artifact across runs: lowercase letters, digits and dashes.
        description: A short markdown description.

    Returns:
        The artifact's id.

    Raises:
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
    """Record a table on the current run (or on none, outside runs).

    Args:
        table: Columns (``{"name": ["a", "b"], "size": [1, 2]}``), rows as mappings
            (``[{"name": "a", "size": 1}, ...]``) or rows as lists (no header). A value
            JSON cannot hold is recorded as its ``repr``; NaN as an empty cell.
        key: Names the artifact across runs: lowercase letters, digits and dashes.
        description: A short markdown description.

    Returns:
        The artifact's id.

    Raises:
        ValueError: ``key`` is malformed, or the columns have different lengths.
        TypeError: ``table`` is none of the three shapes.
    """
    return _record("table", _rows(table), key, description, "create_table_artifact")


def create_link_artifact(
    link: str, link_text: str | None = None, key: str | None = None, description: str | None = None
) -> UUID:
    """Record a link on the current run (or on none, outside runs).

    Args:
        link: The address. Only ``http``, ``https`` and ``mailto`` addresses become
            clickable on the page; others are shown as text.
        link_text: The text to show instead of the address.
        key: Names the artifact across runs: lowercase letters, digits and dashes.
        description: A short markdown description.

    Returns:
        The artifact's id.

    Raises:
        ValueError: ``key`` is malformed.
        TypeError: ``link`` or ``link_text`` is not a string.
    """
    _check_text("link", link, "create_link_artifact")
    if link_text is not None:
        _check_text("link_text", link_text, "create_link_artifact")
    data = {"link": link, "link_text": link_text}
    return _record("link", data, key, description, "create_link_artifact")


def create_progress_artifact(
    progress: float, key: str | None = None, description: str | None = None
) -> UUID:
    """Record a progress, a percentage that ``update_progress_artifact`` moves on.

    The run's page shows it as a progress bar; ``flowkit runs show`` as a percentage.
    A value below 0 or above 100 is taken as 0 or 100, with a WARNING, as Prefect does.

    Args:
        progress: How far along, from 0 to 100.
        key: Names the artifact across runs: lowercase letters, digits and dashes.
        description: A short markdown description.

    Returns:
        The artifact's id: give it to ``update_progress_artifact``.

    Raises:
        TypeError: ``progress`` is not a number.
        ValueError: ``progress`` is NaN, or ``key`` is malformed.
    """
    value = _percentage(progress, "create_progress_artifact")
    artifact_id = _record("progress", value, key, description, "create_progress_artifact")
    with _progress_lock:
        _progress_ids.add(artifact_id)
    return artifact_id


def update_progress_artifact(
    artifact_id: UUID, progress: float, description: str | None = None
) -> UUID:
    """Move a progress artifact on to ``progress``; the page's bar follows it.

    Args:
        artifact_id: What ``create_progress_artifact`` returned (a ``UUID`` or its text).
        progress: How far along, from 0 to 100 (taken as 0 or 100 past them, with a
            WARNING).
        description: A new description; ``None`` keeps the one it has.

    Returns:
        ``artifact_id``.

    Raises:
        TypeError: ``progress`` is not a number, or ``artifact_id`` not an id.
        ValueError: ``progress`` is NaN, or this process made no progress artifact with
            the id ``artifact_id``.
    """
    caller = "update_progress_artifact"
    known = _artifact_id(artifact_id, caller)
    value = _percentage(progress, caller)
    if description is not None:
        _check_text("description", description, caller)
    with _progress_lock:
        made_here = known in _progress_ids
    if not made_here:
        raise ValueError(
            f"{caller}() got artifact_id={artifact_id!r}, and this process made no progress "
            "artifact with that id; pass the id create_progress_artifact() returned"
        )
    run = current_run.get()
    events.emit(
        events.ArtifactUpdate(
            str(known), None if run is None else run.info.root_id, time.time(),
            json.dumps(value), description,
        )
    )  # fmt: skip
    return artifact_id


def _artifact_id(value: object, caller: str) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise TypeError(
        f"{caller}() takes an artifact id (a UUID) as artifact_id, got {value!r}; pass "
        "what create_progress_artifact() returned"
    )


def _percentage(progress: object, caller: str) -> float:
    """``progress`` as a float from 0 to 100 (clamped with a WARNING, as Prefect does)."""
    if not isinstance(progress, Real) or isinstance(progress, bool):
        raise TypeError(
            f"{caller}() takes a number from 0 to 100 as progress, got {progress!r}; "
            "pass a percentage such as 42.5"
        )
    value = float(progress)
    if math.isnan(value):
        raise ValueError(f"{caller}() got progress=nan; pass a percentage from 0 to 100")
    if not 0.0 <= value <= 100.0:
        clamped = min(max(value, 0.0), 100.0)
        _log.warning(
            "%s() got progress=%r, outside 0 to 100; recording %g%%", caller, progress, clamped
        )
        value = clamped
    return value


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
    kind: Literal["markdown", "table", "link", "progress"],
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
        # Prefect keeps it, with no run, and warns that it may stop doing so.
        warnings.warn(
            f"{caller}() was called outside any flow or task run: the artifact is recorded "
            "with no run; Prefect deprecates this, so make it in a flow's or task's body",
            FutureWarning,
            stacklevel=3,
        )
        events.activate()  # the run store may not be listening yet
    artifact_id = uuid4()
    encoded = json.dumps(_nan_free(data), ensure_ascii=False, default=_jsonable, allow_nan=False)
    run_id, root_id = (None, None) if run is None else (run.info.id, run.info.root_id)
    events.emit(
        events.Artifact(
            str(artifact_id), run_id, root_id, time.time(), kind, key, description, encoded
        )
    )
    return artifact_id
