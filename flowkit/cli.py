"""The ``flowkit`` command: the demo, and the run store from the shell.

Built on click: small, dependency-free, and the best-kept library for nested commands
with typed options; its ``style``/``echo`` cover the colour we need.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import click

from . import demo as demo_module
from .concurrency._cli import limits as limits_group
from .exceptions import FlowkitError
from .store import (
    ArtifactRecord,
    RunRecord,
    Store,
    StoreError,
    TransactionRecord,
    default_path,
    parse_age,
)

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
    """An age (``30m``, ``2h``, ``7d``: that long ago) or an ISO date/time."""
    try:
        return datetime.now(UTC) - parse_age(value)
    except ValueError:
        pass
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
        try:
            found = store.flow_runs(flow=flow, state=state, since=since, limit=limit)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--state") from None
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


@runs.command("prune")
@click.option(
    "--older-than", "before", type=_since, required=True,
    help="delete finished runs created before: 30d, 12h, 2w ago, or a date",
)  # fmt: skip
def runs_prune(before: datetime) -> None:
    """Delete old finished runs, with their task runs, states and logs."""
    with _open() as store:
        try:
            count = store.prune(before)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
    when = before.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    click.echo(f"Deleted {count} run{'s' * (count != 1)} created before {when}.")


@runs.command("show")
@click.argument("run")
def runs_show(run: str) -> None:
    """Show a flow run as a tree of its task runs. RUN: an id, id prefix, or run name."""
    with _open() as store:
        tree = store.tree(_find(store, run).id)
        found = store.artifacts(tree[0].id)
        ended = store.transactions(tree[0].id)
        workers = {r.id: _last_worker(store, r.id) for r in tree if r.kind == "task"}
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
        if (worker := workers.get(record.id)) is not None:
            notes.append(f"ran in {worker}")
        click.echo(
            f"{prefix}{branch}{record.name} [{record.kind} {record.definition!r}] "
            f"{_state(record)} ({'; '.join(notes)})"
        )
        inner = prefix + ("" if top else ("    " if last else "│   "))
        if record.result is not None:
            click.echo(f"{inner}    result: {record.result}")
        if record.error and record.state_type != "COMPLETED":
            click.echo(f"{inner}    {click.style(record.error, fg='red')}")
        kids = children.get(record.id, [])
        for i, kid in enumerate(kids):
            show(kid, inner, i == len(kids) - 1, False)

    show(tree[0], "", True, True)
    if found:
        names: dict[str | None, str] = {r.id: r.name for r in tree}
        click.echo("Artifacts:")
        for artifact in found:
            key = f" {artifact.key!r}" if artifact.key else ""
            click.echo(f"  {artifact.type}{key} by {names.get(artifact.run_id, '?')}: "
                       f"{_artifact_summary(artifact)}")  # fmt: skip
    if ended:
        names = {r.id: r.name for r in tree}
        click.echo("Transactions:")
        for ending in ended:
            click.echo(f"  {_transaction_summary(ending, names.get(ending.run_id, '?'))}")


def _last_worker(store: Store, run_id: str) -> str | None:
    """Who ran the last attempt of the run that had a worker, if any did."""
    return next((s.worker for s in reversed(store.states(run_id)) if s.worker), None)


def _transaction_summary(record: TransactionRecord, run: str) -> str:
    """``commit 'key' in flow-run: hooks done (write-0), undo (write-1) failed``."""
    what = "rolled back" if record.action == "rollback" else "committed"
    key = f" {record.key!r}" if record.key else ""
    whose = f" of {record.task_run}" if record.task_run else ""
    hooks = [
        f"{h['hook']} ({h['task_run']})" + (f" failed: {h['error']}" if h["error"] else "")
        for h in record.hooks
    ]
    ran = f"; hooks: {', '.join(hooks)}" if hooks else ""
    return f"{what}{key}{whose} in {run}{ran}"


def _artifact_summary(artifact: ArtifactRecord) -> str:
    data = artifact.data
    if artifact.type == "table":
        columns = f", columns {', '.join(data['columns'])}" if data["columns"] else ""
        return f"{len(data['rows'])} rows{columns}"
    if artifact.type == "link":
        return data["link"] if not data["link_text"] else f"{data['link_text']} <{data['link']}>"
    if artifact.type == "progress":
        return f"{data:g}%"
    first = next((line.strip() for line in str(data).splitlines() if line.strip()), "")
    return first if len(first) <= 60 else first[:59] + "…"


@runs.command("logs")
@click.argument("run")
def runs_logs(run: str) -> None:
    """Print the log lines of a flow run and its task runs, in order."""
    with _open() as store:
        for line in store.logs(_find(store, run).id):
            click.echo(line.format())


@cli.group()
def artifacts() -> None:
    """Look at recorded artifacts, those made outside any run included."""


@artifacts.command("ls")
@click.option("--key", help="only artifacts with this key")
@click.option("--no-run", "without_run", is_flag=True, help="only those made outside any run")
@click.option("--limit", default=20, show_default=True, help="how many artifacts at most")
def artifacts_ls(key: str | None, without_run: bool, limit: int) -> None:
    """List the latest artifacts, newest first."""
    with _open() as store:
        found = store.latest_artifacts(limit=limit, key=key, without_run=without_run)
        runs = {a.run_id: _run_name(store, a.run_id) for a in found if a.run_id is not None}
    if not found:
        click.echo("No artifacts recorded yet." if key is None else "No match.")
        return
    click.echo(f"{'ID':<10} {'TYPE':<9} {'KEY':<20} {'RUN':<24} {'CREATED':<19} SUMMARY")
    for a in found:
        created = a.created.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        run = "-" if a.run_id is None else runs[a.run_id]
        click.echo(
            f"{a.id[:8]:<10} {a.type:<9} {(a.key or '-')[:20]:<20} {run[:24]:<24} "
            f"{created:<19} {_artifact_summary(a)}"
        )


def _run_name(store: Store, run_id: str) -> str:
    try:
        return store.get(run_id).name
    except KeyError:  # pruned since
        return run_id[:8]


@artifacts.command("show")
@click.argument("artifact")
def artifacts_show(artifact: str) -> None:
    """Print an artifact in full. ARTIFACT: an id, id prefix, or key (its latest)."""
    with _open() as store:
        try:
            found = store.artifact(artifact)
        except KeyError as exc:
            raise click.ClickException(exc.args[0]) from None
        run = "none (made outside any run)" if found.run_id is None else (
            f"{_run_name(store, found.run_id)} ({found.run_id})"
        )  # fmt: skip
    click.echo(f"{found.type} artifact {found.id}" + (f" {found.key!r}" if found.key else ""))
    click.echo(f"run: {run}")
    click.echo(f"created: {found.created.astimezone():%Y-%m-%d %H:%M:%S}")
    if found.updated != found.created:
        click.echo(f"updated: {found.updated.astimezone():%Y-%m-%d %H:%M:%S}")
    if found.description:
        click.echo(f"description: {found.description}")
    click.echo("")
    click.echo(_artifact_body(found))


def _artifact_body(artifact: ArtifactRecord) -> str:
    """The whole artifact as text: markdown as written, a table as aligned columns."""
    data = artifact.data
    if artifact.type == "table":
        rows = [["" if v is None else str(v) for v in row] for row in data["rows"]]
        if data["columns"]:
            rows.insert(0, list(data["columns"]))
        widths = [
            max(len(r[i]) for r in rows if i < len(r))
            for i in range(max(map(len, rows), default=0))
        ]
        return "\n".join(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
        )
    if artifact.type == "markdown":
        return str(data)
    return _artifact_summary(artifact)


@runs.command("export")
@click.argument("run")
def runs_export(run: str) -> None:
    """Print a flow run's whole tree, states and logs as JSON."""
    with _open() as store:
        click.echo(json.dumps(store.export(_find(store, run).id), indent=2, ensure_ascii=False))


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="the address to serve on; anything but loopback exposes every run",
)
@click.option(
    "--port",
    default=4300,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="the port to serve on (0: any free port)",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="another name the page is reached by, which it then answers to (repeatable); "
    "it answers to localhost, 127.0.0.1, [::1] and --host only",
)
@click.option("--open", "open_browser", is_flag=True, help="open the page in a browser")
def ui(host: str, port: int, allow_hosts: tuple[str, ...], open_browser: bool) -> None:
    """Serve a live web page of the recorded runs (needs the ui extra)."""
    # Imported here, not at the top: Starlette and uvicorn are an optional extra, and the
    # rest of the command must work (and start fast) without them.
    try:
        from .ui import serve
    except ImportError as exc:
        raise click.ClickException(
            f"flowkit ui needs the ui extra ({exc.name} is missing): pip install 'flowkit[ui]'"
        ) from None
    try:
        serve(
            host=host, port=port, open_browser=open_browser, allow_hosts=allow_hosts,
            echo=click.echo,
        )  # fmt: skip
    except ValueError as exc:  # a name that is not one
        raise click.UsageError(str(exc)) from None
    except (OSError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


@cli.command()
@click.argument("workload")
@click.option(
    "--backend",
    default="asyncio",
    show_default=True,
    help="event loops, comma-separated: asyncio, trio, asyncio+uvloop",
)
@click.option(
    "--runner",
    default="threads:8",
    show_default=True,
    help="task runners, comma-separated: threads:N, processes:N, dask:N",
)
@click.option(
    "--limit",
    default="none",
    show_default=True,
    help="task runs at once, comma-separated: none or a number",
)
@click.option(
    "--n",
    "n",
    default=None,
    help="tasks per workload, comma-separated  [default: 1000 for a built-in]",
)
@click.option("--rounds", default=5, show_default=True, help="timed rounds per cell")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="an argument of your flow (module:flow); VALUE is JSON or a string",
)
@click.option("--seed", type=int, default=None, help="shuffle the rounds with this seed")
@click.option(
    "--timeout",
    default=300.0,
    show_default=True,
    help="seconds a cell's round may take before it is killed",
)
@click.option("--json", "json_path", metavar="PATH", help="write every record as JSON")
@click.option("--html", "html_path", metavar="PATH", help="write the report as HTML")
@click.option(
    "--compare",
    "baseline",
    metavar="BASELINE.json",
    help="compare each cell with a run's --json; exit 1 if one is slower",
)
@click.option(
    "--tolerance",
    default=0.1,
    show_default=True,
    help="how much slower than the baseline a cell may be (0.1: 10%)",
)
@click.option("--home", metavar="DIR", help="FLOWKIT_HOME of the cells' run store")
@click.option("--verbose", is_flag=True, help="show the cells' console lines")
def bench(
    workload: str, backend: str, runner: str, limit: str, n: str | None, rounds: int,
    params: tuple[str, ...], seed: int | None, timeout: float, json_path: str | None,
    html_path: str | None, baseline: str | None, tolerance: float, home: str | None,
    verbose: bool,
) -> None:  # fmt: skip
    """Run WORKLOAD across backends, runners, limits and sizes, against its floor.

    WORKLOAD: a built-in (cpu, io-async, io-sync, mixed, fan-out-in, stream) or a flow of
    yours as module:flow. Each cell's rounds run in fresh processes, in shuffled order.
    """
    # Imported here, not at the top: `flowkit --help` and the other commands need none of it.
    import random

    from . import bench as bench_module
    from .bench._command import comparison_text, html_writer_available, table, write_html

    if tolerance < 0:
        raise click.BadParameter(f"{tolerance:g} is below 0: give a fraction such as 0.1",
                                 param_hint="--tolerance")  # fmt: skip
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    try:
        matrix = bench_module.Matrix.parse(
            workload, backend=backend, runner=runner, limit=limit, n=n, params=params,
            rounds=rounds, seed=seed, timeout=timeout,
        )  # fmt: skip
    except bench_module.MatrixError as exc:
        raise click.ClickException(f"flowkit bench: {exc}") from None
    if html_path is not None and not html_writer_available():
        raise click.ClickException(
            "flowkit bench: --html needs matplotlib: pip install 'flowkit[bench]'"
        )
    before = None
    if baseline is not None:
        try:
            before = bench_module.load_document(baseline)
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"flowkit bench: --compare: {exc}") from None
    cells = matrix.cells()
    click.echo(
        f"{len(cells)} cells x {matrix.rounds} rounds, each in a fresh process after a "
        f"warm-up one (seed {seed})", err=True,
    )  # fmt: skip
    document = bench_module.run(
        matrix, argv=_bench_argv(click.get_current_context(), seed), home=home,
        verbose=verbose, progress=sys.stderr,
    )  # fmt: skip
    click.echo(table(document))
    if json_path is not None:
        bench_module.write_document(document, json_path)
    if html_path is not None:
        try:
            write_html(document, html_path)
        except (FlowkitError, ValueError, OSError) as exc:  # e.g. matplotlib is missing
            raise click.ClickException(f"flowkit bench: --html {html_path}: {exc}") from None
    regressed = False
    if before is not None:
        comparison = bench_module.compare(document["cells"], before["cells"], tolerance)
        click.echo(comparison_text(comparison, tolerance))
        regressed = comparison.regressed
    broken = sum(cell["failed"] + cell["timeout"] for cell in document["cells"])
    if broken:
        click.echo(f"flowkit bench: {broken} round(s) failed or timed out (see above)", err=True)
    if regressed or broken:
        raise click.exceptions.Exit(1)


def _bench_argv(ctx: click.Context, seed: int) -> list[str]:
    """The command line of a bench run, as given, with the seed it used."""
    argv = [ctx.params["workload"]]
    for param in ctx.command.params:
        name = param.name or ""
        if name == "workload" or ctx.get_parameter_source(name) is not (
            click.core.ParameterSource.COMMANDLINE
        ):
            continue
        flag = param.opts[0]
        value = ctx.params[name]
        if isinstance(value, bool):
            argv += [flag] if value else []
        elif isinstance(value, tuple):
            for item in value:  # pyright: ignore[reportUnknownVariableType]
                argv += [flag, str(item)]  # pyright: ignore[reportUnknownArgumentType]
        elif name != "seed":
            argv += [flag, str(value)]
    return [*argv, "--seed", str(seed)]


cli.add_command(limits_group)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``flowkit`` command with ``argv`` (default: the process's arguments).

    Returns:
        The exit code: 0 on success, 2 for bad input (unknown run, missing store...).
    """
    try:
        # Not standalone, click returns the code of an ``Exit`` raised in a command.
        code = cli.main(args=list(argv) if argv is not None else sys.argv[1:],
                        prog_name="flowkit", standalone_mode=False)  # fmt: skip
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
    return code if isinstance(code, int) else 0
