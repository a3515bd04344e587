"""The ``flowkit`` command: the demo, and the run store from the shell.

Built on click: small, dependency-free, and the best-kept library for nested commands
with typed options; its ``style``/``echo`` cover the colour we need.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import click

from . import demo as demo_module
from .concurrency._cli import limits as limits_group
from .store import RunRecord, Store, StoreError, default_path

__all__ = ["main"]

_COLOURS = {"COMPLETED": "green", "FAILED": "red", "CRASHED": "magenta", "CANCELLED": "yellow"}


def _state(record: RunRecord) -> str:
    return click.style(record.state_name, fg=_COLOURS.get(record.state_type, "cyan"))


def _duration(record: RunRecord) -> str:
    seconds = record.duration
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _since(value: str) -> datetime:
    """``30m``, ``2h``, ``7d`` ago, or an ISO date/time."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    if value[:-1].isdigit() and value[-1:] in units:
        return datetime.now(UTC) - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither an age like 30m, 2h, 7d nor an ISO date like 2026-11-25"
        ) from None
    return parsed if parsed.tzinfo else parsed.astimezone()


def _open() -> Store:
    try:
        return Store.open()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _find(store: Store, run: str) -> RunRecord:
    try:
        return store.get(run)
    except KeyError as exc:
        raise click.ClickException(exc.args[0]) from None


@click.group()
def cli() -> None:
    """flowkit: observable, retryable units of work."""


@cli.command()
@click.option("--repo", default=demo_module.DEFAULT_REPO, show_default=True, help="owner/name")
@click.option(
    "--backend", type=click.Choice(["asyncio", "trio"]), default="asyncio", show_default=True,
    help="the event loop to run the flow on",
)  # fmt: skip
def demo(repo: str, backend: Literal["asyncio", "trio"]) -> None:
    """Run the demo flow offline, against a local stand-in API."""
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise click.BadParameter(f"must look like 'owner/name', got {repo!r}", param_hint="--repo")
    demo_module.run(repo, backend)


@cli.group()
def runs() -> None:
    """Look back at recorded runs (in $FLOWKIT_HOME/runs.db)."""


@runs.command("ls")
@click.option("--flow", help="only runs of this flow")
@click.option("--state", help="only runs in this state, e.g. failed or Cached")
@click.option("--since", type=_since, help="only runs since: 30m, 2h, 7d, or a date")
@click.option("--limit", default=20, show_default=True, help="how many runs at most")
@click.option("--json", "as_json", is_flag=True, help="print JSON lines instead of a table")
def runs_ls(
    flow: str | None, state: str | None, since: datetime | None, limit: int, as_json: bool
) -> None:
    """List recent flow runs, newest first."""
    with _open() as store:
        found = store.flow_runs(flow=flow, state=state, since=since, limit=limit)
    if as_json:
        for record in found:
            click.echo(json.dumps(_record_json(record)))
        return
    if not found:
        click.echo("No runs recorded yet." if flow is None and state is None else "No match.")
        return
    click.echo(f"{'ID':<10} {'NAME':<24} {'FLOW':<22} {'STATE':<12} {'STARTED':<19} DURATION")
    for r in found:
        started = r.created.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        state_cell = _state(r) + " " * max(0, 12 - len(r.state_name))
        click.echo(
            f"{r.id[:8]:<10} {r.name[:24]:<24} {r.definition[:22]:<22} {state_cell} "
            f"{started:<19} {_duration(r)}"
        )


def _record_json(record: RunRecord) -> dict[str, object]:
    return {
        "id": record.id, "name": record.name, "kind": record.kind, "flow": record.definition,
        "state": record.state_name, "state_type": record.state_type,
        "created": record.created.isoformat(), "duration_s": record.duration,
        "parameters": record.parameters, "tags": record.tags, "error": record.error,
    }  # fmt: skip


@runs.command("show")
@click.argument("run")
def runs_show(run: str) -> None:
    """Show a flow run as a tree of its task runs. RUN: an id, id prefix, or run name."""
    with _open() as store:
        tree = store.tree(_find(store, run).id)
    children: dict[str | None, list[RunRecord]] = {}
    for record in tree:
        children.setdefault(record.parent_id, []).append(record)

    def show(record: RunRecord, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        notes = [_duration(record)]
        if record.run_count > 1:
            notes.append(f"{record.run_count} attempts")
        if record.cache is not None:
            notes.append(f"cache {record.cache}")
        if record.task_inputs:
            notes.append("inputs: " + ", ".join(sorted(record.task_inputs)))
        click.echo(
            f"{prefix}{branch}{record.name} [{record.kind} {record.definition!r}] "
            f"{_state(record)} ({'; '.join(notes)})"
        )
        inner = prefix + ("" if top else ("    " if last else "│   "))
        if record.error and record.state_type != "COMPLETED":
            click.echo(f"{inner}    {click.style(record.error, fg='red')}")
        kids = children.get(record.id, [])
        for i, kid in enumerate(kids):
            show(kid, inner, i == len(kids) - 1, False)

    show(tree[0], "", True, True)


@runs.command("logs")
@click.argument("run")
def runs_logs(run: str) -> None:
    """Print the log lines of a flow run and its task runs, in order."""
    with _open() as store:
        for line in store.logs(_find(store, run).id):
            click.echo(line.format())


@runs.command("export")
@click.argument("run")
def runs_export(run: str) -> None:
    """Print a flow run's whole tree, states and logs as JSON."""
    with _open() as store:
        click.echo(json.dumps(store.export(_find(store, run).id), indent=2, ensure_ascii=False))


cli.add_command(limits_group)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``flowkit`` command with ``argv`` (default: the process's arguments).

    Returns:
        The exit code: 0 on success, 2 for bad input (unknown run, missing store...).
    """
    try:
        cli.main(args=list(argv) if argv is not None else sys.argv[1:], prog_name="flowkit",
                 standalone_mode=False)  # fmt: skip
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return 2
    except sqlite3.DatabaseError as exc:  # found damaged while reading it
        click.echo(
            f"Error: the run store at {default_path()} is damaged ({exc}); move it away to "
            "start a new one, or point FLOWKIT_HOME elsewhere",
            err=True,
        )
        return 2
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return 0
