"""``flowkit limits``: the run store's concurrency and rate limits, from the shell."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TypeVar

import click

from .. import concurrency as limits_api  # the public API, as a user calls it
from ._limits import LimitInfo

__all__ = ["limits"]

T = TypeVar("T")


def _positive(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be > 0, got {value}")
    return value


@click.group()
def limits() -> None:
    """Concurrency and rate limits shared by every process using $FLOWKIT_HOME."""


@limits.command("create")
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), required=True, help="how many slots")
@click.option(
    "--slot-decay-per-second", type=float, default=None,
    callback=_positive,
    help="for rate limits: slots taken by rate_limit that come free each second",
)  # fmt: skip
def create(name: str, limit: int, slot_decay_per_second: float | None) -> None:
    """Create the limit NAME, or change its size and decay."""
    limits_api.define(name, limit, slot_decay_per_second)
    click.echo(f"Limit {name!r}: {_size(limit, slot_decay_per_second)}.")


@limits.command("tag")
@click.argument("tag")
@click.argument("limit", type=click.IntRange(min=1))
def tag(tag: str, limit: int) -> None:
    """At most LIMIT task runs tagged TAG run at once (the limit 'tag:TAG')."""
    limits_api.define(limits_api.TAG_PREFIX + tag, limit)
    click.echo(f"At most {limit} task run(s) tagged {tag!r} run at once.")


def _size(limit: int, decay: float | None) -> str:
    return f"{limit} slot(s)" + (f", {decay:g} decaying per second" if decay else "")


def _json(info: LimitInfo) -> dict[str, object]:
    return {
        "name": info.name, "limit": info.limit,
        "slot_decay_per_second": info.slot_decay_per_second,
        "active_slots": round(info.active_slots, 3),
        "leases": [
            {"slots": x.slots, "pid": x.pid, "host": x.host, "acquired": x.acquired,
             "expires": x.expires}
            for x in info.leases
        ],
    }  # fmt: skip


@limits.command("ls")
@click.option("--json", "as_json", is_flag=True, help="print JSON lines instead of a table")
def ls(as_json: bool) -> None:
    """List the limits, with the slots in use now."""
    found = limits_api.ls()
    if as_json:
        for info in found:
            click.echo(json.dumps(_json(info)))
        return
    if not found:
        click.echo("No limits defined: create one with `flowkit limits create NAME --limit N`.")
        return
    click.echo(f"{'NAME':<28} {'ACTIVE':>8} {'LIMIT':>6} {'DECAY/S':>8} HOLDERS")
    for info in found:
        decay = "-" if info.slot_decay_per_second is None else f"{info.slot_decay_per_second:g}"
        click.echo(
            f"{info.name[:28]:<28} {info.active_slots:>8.3g} {info.limit:>6} {decay:>8} "
            f"{len(info.leases)}"
        )


@limits.command("inspect")
@click.argument("name")
def inspect(name: str) -> None:
    """Show the limit NAME and who holds its slots."""
    info = _get(limits_api.inspect, name)
    size = _size(info.limit, info.slot_decay_per_second)
    click.echo(f"{info.name}: {info.active_slots:.3g} of {size} in use")
    now = time.time()
    for lease in info.leases:
        click.echo(
            f"  {lease.slots} slot(s) held by pid {lease.pid} on {lease.host} for "
            f"{now - lease.acquired:.1f} s (lease expires in {lease.expires - now:.0f} s)"
        )


@limits.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete the limit NAME; its waiters go ahead."""
    _get(limits_api.delete, name)
    click.echo(f"Deleted limit {name!r}.")


@limits.command("reset")
@click.argument("name")
def reset(name: str) -> None:
    """Free every slot of the limit NAME (for holders known to be gone)."""
    _get(limits_api.reset, name)
    click.echo(f"Freed every slot of limit {name!r}.")


def _get(action: Callable[[str], T], name: str) -> T:
    try:
        return action(name)
    except KeyError as exc:
        raise click.ClickException(
            f"no limit named {name!r}; `flowkit limits ls` lists them"
        ) from exc
