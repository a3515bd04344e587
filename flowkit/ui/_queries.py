"""What the page shows, read from the run store: plain SQL over a read-only connection.

Nothing here knows about HTTP; every function takes a connection and returns JSON-ready
data, so the app is a thin layer and these are tested on their own.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..store._schema import SCHEMA_VERSION
from ._markdown import render_markdown

__all__ = [
    "PAGE_SIZE",
    "RunNotFound",
    "change_mark",
    "flow_names",
    "open_readonly",
    "run_detail",
    "runs_page",
    "short_repr",
]

PAGE_SIZE = 50
"""Runs per page of the list, unless the request asks for another number (at most 200)."""
_REPR_LIMIT = 200
_FINISHED = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


class RunNotFound(LookupError):
    """No run in the store has the id asked for."""


def open_readonly(path: Path) -> sqlite3.Connection | None:
    """A read-only connection to the store at ``path``; ``None`` while there is none.

    Raises:
        sqlite3.DatabaseError: The file is not a run store this flowkit can read.
    """
    if not path.exists():
        return None
    db = sqlite3.connect(
        f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30, check_same_thread=False
    )
    db.row_factory = sqlite3.Row
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        db.close()
        raise sqlite3.DatabaseError(
            f"{path} has schema {version}, this flowkit reads {SCHEMA_VERSION}; run any flow "
            "or `flowkit runs ls` once to bring it up to date"
        )
    return db


def short_repr(value: Any) -> str:
    """A JSON value as short text for the page: at most 200 characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 1] + "…"


def _run_json(row: sqlite3.Row) -> dict[str, Any]:
    start, end = row["start_time"], row["end_time"]
    return {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "flow": row["definition"],
        "parent_id": row["parent_id"],
        "state_type": row["state_type"],
        "state_name": row["state_name"],
        "state_message": row["state_message"],
        "error": row["error"],
        "run_count": row["run_count"],
        "created": row["created"],
        "start": start,
        "end": end,
        "duration": end - start if start is not None and end is not None else None,
        "tags": json.loads(row["tags"]),
    }


def runs_page(
    db: sqlite3.Connection,
    *,
    flow: str | None = None,
    state: str | None = None,
    tag: str | None = None,
    search: str | None = None,
    since: float | None = None,
    until: float | None = None,
    before: str | None = None,
    limit: int = PAGE_SIZE,
) -> dict[str, Any]:
    """A page of root runs, newest first, with their task runs counted by state.

    Pages are cut by keyset (``before`` is the ``next`` of the previous page), so the
    hundredth page costs what the first does.

    Raises:
        ValueError: ``before`` is not a ``next`` this function gave.
    """
    where, args = ["parent_id IS NULL"], list[Any]()
    if flow:
        where.append("definition = ?")
        args.append(flow)
    if state:
        where.append("(upper(state_name) = upper(?) OR state_type = upper(?))")
        args += [state, state]
    if tag:
        where.append("EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE value = ?)")
        args.append(tag)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("name LIKE ? ESCAPE '\\'")
        args.append(f"%{escaped}%")
    if since is not None:
        where.append("created >= ?")
        args.append(since)
    if until is not None:
        where.append("created < ?")
        args.append(until)
    if before:
        created, _, run_id = before.partition("~")
        try:
            mark = float(created)
        except ValueError:
            raise ValueError(
                f"before={before!r} is not a page mark; use the list's 'next'"
            ) from None
        where.append("(created < ? OR (created = ? AND id < ?))")
        args += [mark, mark, run_id]
    limit = max(1, min(limit, 200))
    rows = db.execute(
        f"SELECT * FROM runs WHERE {' AND '.join(where)} "
        f"ORDER BY created DESC, id DESC LIMIT {limit + 1}",
        args,
    ).fetchall()
    runs = [_run_json(r) for r in rows[:limit]]
    _count_children(db, runs)
    last = rows[limit - 1] if len(rows) > limit else None
    return {"runs": runs, "next": f"{last['created']!r}~{last['id']}" if last else None}


def _count_children(db: sqlite3.Connection, runs: list[dict[str, Any]]) -> None:
    by_id = {r["id"]: r for r in runs}
    for r in runs:
        r["counts"], r["total"], r["finished"] = {}, 0, 0
    if not by_id:
        return
    marks = ", ".join("?" * len(by_id))
    rows = db.execute(
        f"SELECT root_id, state_type, state_name, count(*) FROM runs WHERE root_id IN ({marks}) "
        "AND kind = 'task' AND parent_id IS NOT NULL GROUP BY 1, 2, 3",
        list(by_id),
    )
    for root, state_type, state_name, n in rows:
        run = by_id[root]
        run["counts"][state_name] = run["counts"].get(state_name, 0) + n
        run["total"] += n
        if state_type in _FINISHED:
            run["finished"] += n


def flow_names(db: sqlite3.Connection) -> list[str]:
    """The names of the flows (and lone tasks) with root runs in the store, sorted."""
    rows = db.execute("SELECT DISTINCT definition FROM runs WHERE parent_id IS NULL")
    return sorted(r[0] for r in rows)


def change_mark(db: sqlite3.Connection, run_id: str | None = None) -> tuple[int, ...]:
    """A mark that moves whenever the store (or the tree of ``run_id``) gets new rows, or
    a run in it starts (a task run's start is its row's ``start_time``, not a state row)."""
    if run_id is None:
        row = db.execute(
            "SELECT (SELECT max(rowid) FROM states), (SELECT max(rowid) FROM logs), "
            "(SELECT max(rowid) FROM artifacts), (SELECT max(rowid) FROM runs), "
            "(SELECT max(rowid) FROM transactions)"
        ).fetchone()
    else:
        row = db.execute(
            "SELECT (SELECT max(rowid) FROM states WHERE root_id = ?1), "
            "(SELECT count(*) FROM logs WHERE root_id = ?1), "
            # max, not count: an updated progress artifact's row takes a new rowid.
            "(SELECT max(rowid) FROM artifacts WHERE root_id = ?1), "
            "(SELECT count(start_time) + count(*) FROM runs WHERE root_id = ?1), "
            "(SELECT count(*) FROM transactions WHERE root_id = ?1)",
            (run_id,),
        ).fetchone()
    return tuple(v or 0 for v in row)


def run_detail(db: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    """Everything the page of one run shows: its tree (each run with its state history,
    attempts, parameters, inputs and cache decision), log lines, artifacts, and the
    commits and rollbacks of transactions.

    Raises:
        RunNotFound: No run has the id ``run_id``.
    """
    row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise RunNotFound(f"no run has the id {run_id!r}")
    root_id = row["root_id"]
    rows = db.execute("SELECT * FROM runs WHERE root_id = ? ORDER BY created", (root_id,))
    tree: dict[str, dict[str, Any]] = {}
    for r in rows:
        run = _run_json(r)
        run["parameters"] = {k: short_repr(v) for k, v in json.loads(r["parameters"]).items()}
        run["task_inputs"] = json.loads(r["task_inputs"])
        run["cache"] = r["cache"]
        run["result"] = r["result_repr"]
        run["result_location"] = r["result"]
        run["states"] = []
        tree[r["id"]] = run
    states = db.execute(
        "SELECT s.run_id, s.type, s.name, s.message, s.timestamp, s.thread_wait, s.worker "
        "FROM history s WHERE s.root_id = ? "
        "ORDER BY s.timestamp, s.seq",
        (root_id,),
    )
    for run_id_, type_, name, message, timestamp, thread_wait, worker in states:
        tree[run_id_]["states"].append(
            {"type": type_, "name": name, "message": message, "timestamp": timestamp,
             "thread_wait": thread_wait, "worker": worker}
        )  # fmt: skip
    logs = [
        dict(r)
        for r in db.execute(
            "SELECT run_id, timestamp, level, logger, label, message FROM logs "
            "WHERE root_id = ? ORDER BY timestamp, rowid",
            (root_id,),
        )
    ]
    now = time.time()
    for run in tree.values():
        run["attempts"], run["waits"] = attempts(run["states"], now)
        # Who ran the last attempt that had a worker (as `flowkit runs show` says).
        run["worker"] = next((s["worker"] for s in reversed(run["states"]) if s["worker"]), None)
        run["traceback"] = _traceback(run, logs)
    return {
        "root_id": root_id,
        "now": now,
        "runs": list(tree.values()),
        "logs": logs,
        "artifacts": _artifacts(db, root_id),
        "transactions": _transactions(db, root_id),
    }


def attempts(
    states: list[dict[str, Any]], now: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A run's attempts and waits, from its state history in order.

    An attempt starts at each Running-type state (Running, Retrying) and ends at the next
    state, whose name is its outcome, whose ``thread_wait`` says how long the attempt
    first waited for a worker thread and whose ``worker`` who ran its body (``None``: the
    event loop); one still going ends ``now``. A final state with no
    attempt before it (a cache hit) is an attempt of no length. The waits are the time
    from Pending to the first attempt and each retry's delay.
    """
    spans: list[dict[str, Any]] = []
    waits: list[dict[str, Any]] = []
    started: dict[str, Any] | None = None
    waiting: dict[str, Any] | None = None
    for state in states:
        at = state["timestamp"]
        if started is not None:
            spans.append({"start": started["timestamp"], "end": at, "state_type": state["type"],
                          "state_name": state["name"], "message": state["message"],
                          "thread_wait": state["thread_wait"],
                          "worker": state["worker"]})  # fmt: skip
            started = None
        if waiting is not None:
            waits.append({"start": waiting["timestamp"], "end": at, "kind": waiting["name"]})
            waiting = None
        if state["type"] == "RUNNING":
            started = state
        elif state["type"] in ("PENDING", "SCHEDULED") and state["name"] != "NotReady":
            waiting = state
        elif not spans and (state["type"] in _FINISHED or state["name"] == "NotReady"):
            spans.append({"start": at, "end": at, "state_type": state["type"],
                          "state_name": state["name"], "message": state["message"],
                          "thread_wait": None, "worker": None})  # fmt: skip
    if started is not None:
        spans.append({"start": started["timestamp"], "end": now, "state_type": "RUNNING",
                      "state_name": "Running", "message": None, "thread_wait": None,
                      "worker": None})  # fmt: skip
    if waiting is not None:
        waits.append({"start": waiting["timestamp"], "end": now, "kind": waiting["name"]})
    return spans, waits


def _traceback(run: dict[str, Any], logs: list[dict[str, Any]]) -> str | None:
    """The traceback the run's final ERROR log line carries, if it failed with one."""
    if run["error"] is None or run["state_type"] == "COMPLETED":
        return None
    for line in reversed(logs):
        if line["run_id"] == run["id"] and line["level"] >= 40 and "\n" in line["message"]:
            return str(line["message"]).split("\n", 1)[1]
    return None


_ARTIFACT_COLUMNS = "id, run_id, created, updated, type, key, description, data"


def _transactions(db: sqlite3.Connection, root_id: str) -> list[dict[str, Any]]:
    """The commits and rollbacks in the tree, each with the hooks it ran, in order."""
    found: list[dict[str, Any]] = []
    for r in db.execute(
        "SELECT id, run_id, created, action, key, task_run, hooks FROM transactions "
        "WHERE root_id = ? ORDER BY created, rowid",
        (root_id,),
    ):
        item = dict(r)
        item["hooks"] = json.loads(item["hooks"])
        found.append(item)
    return found


def _artifacts(db: sqlite3.Connection, root_id: str) -> list[dict[str, Any]]:
    rows = db.execute(
        f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE root_id = ? ORDER BY created, rowid",
        (root_id,),
    )
    return [_artifact(r) for r in rows]


def loose_artifacts(db: sqlite3.Connection, limit: int = 50) -> list[dict[str, Any]]:
    """The artifacts made outside any flow or task run, newest first."""
    rows = db.execute(
        f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE run_id IS NULL "
        "ORDER BY created DESC, rowid DESC LIMIT ?",
        (limit,),
    )
    return [_artifact(r) for r in rows]


def _artifact(row: sqlite3.Row) -> dict[str, Any]:
    """An artifact as the page shows it: markdown rendered (safely) on the server."""
    item = dict(row)
    data = json.loads(item.pop("data"))
    kind = item["type"]
    if kind == "markdown":
        item["html"] = render_markdown(data)
    elif kind == "table":
        item["table"] = data
    elif kind == "progress":
        item["progress"] = data
    else:
        item["link"] = data
    description = item.pop("description")
    item["description_html"] = render_markdown(description) if description else None
    return item
