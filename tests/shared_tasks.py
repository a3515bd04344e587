"""Tasks and helpers that several test modules share (imported as ``shared_tasks``)."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio.lowlevel
import sniffio

from flowkit import task
from flowkit._engine import events


def recorded_states() -> tuple[list[tuple[str, str]], Any]:
    """Subscribe to engine events; return the (run name, state name) list and unsubscribe."""
    seen: list[tuple[str, str]] = []
    stop = events.subscribe(lambda e: seen.append((e.run.name, e.state.name)))
    return seen, stop


@task
def double(x: int) -> int:
    return 2 * x


@task
async def adouble(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return 2 * x


@task
def boom(message: str = "boom") -> None:
    raise ValueError(message)


@task
def ident(x: Any) -> Any:
    return x


@task
async def loop_name() -> str:
    """The running loop's library as sniffio says: ``asyncio`` or ``trio``."""
    return sniffio.current_async_library()


@task
async def loop_kind() -> str:
    """The running loop's library: ``asyncio``, ``uvloop`` (asyncio's on uvloop) or ``trio``."""
    if sniffio.current_async_library() == "trio":
        return "trio"
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


@task(retries=1, tags=["remote"])
def shows(n: int, label: str = "x") -> dict[str, Any]:
    """What ``flowkit.runtime`` shows a retried body of its run and flow run."""
    from flowkit import runtime

    if runtime.task_run.run_count == 1:
        raise RuntimeError("the first attempt fails: the retry reads run_count")
    fields = ["name", "task_name", "run_count", "parameters", "tags", "flow_run_id"]
    seen = {name: getattr(runtime.task_run, name) for name in fields}
    seen["flow_run"] = (runtime.flow_run.id, runtime.flow_run.name, runtime.flow_run.parameters)
    return seen


def runtime_seen_on(runner: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """What ``shows`` saw on ``runner`` in a flow, and what it should have seen."""
    from flowkit import flow, runtime

    @flow(task_runner=runner)
    def main(size: int, names: list[str]) -> tuple[dict[str, Any], str | None, str | None]:
        return shows.submit(size).result(), runtime.flow_run.id, runtime.flow_run.name

    seen, flow_run_id, flow_run_name = main(3, ["a", "b"])
    expected = {
        "name": "shows-0", "task_name": "shows", "run_count": 2,
        "parameters": {"n": 3, "label": "x"}, "tags": ["remote"], "flow_run_id": flow_run_id,
        "flow_run": (flow_run_id, flow_run_name, {"size": 3, "names": ["a", "b"]}),
    }  # fmt: skip
    return seen, expected
