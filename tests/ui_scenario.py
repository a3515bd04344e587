"""The flow the page tests look at: retries, a timeout, a cache hit, concurrency, upstream
links, a failure, artifacts, and a task whose name is an attempt at markup; a flow whose
sync task runs wait for its one worker thread, returning awkward results; and a flow
whose task runs in a worker process."""

from __future__ import annotations

import os
import time
from typing import Any

from flowkit import flow, tags, task
from flowkit.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from flowkit.states import State
from flowkit.task_runners import ProcessPoolTaskRunner

attempts: dict[str, int] = {}


@task(retries=2, retry_delay_seconds=0.05)
def flaky(name: str) -> str:
    attempts[name] = attempts.get(name, 0) + 1
    if attempts[name] < 2:
        raise ValueError(f"{name} failed its first attempt")
    return name


@task
def slow(i: int) -> int:
    time.sleep(0.15)
    return i


@task(timeout_seconds=0.05)
def hang() -> None:
    time.sleep(0.5)


@task(cache_key_fn=lambda context, parameters: f"square-{parameters['x']}")
def square(x: int) -> int:
    return x * x


@task(name="<script>alert('pwned')</script>")
def hostile(total: int) -> int:
    return total


@task
def add(a: int, b: int, c: int) -> int:
    return a + b + c


@task
def explode() -> None:
    raise RuntimeError("explode went off")


@flow(thread_limit=4)
def scenario() -> int:
    create_markdown_artifact(
        "# Report <script>alert(1)</script>\n\n**bold** and [docs](https://example.org)\n\n"
        "| file | rows |\n|:-----|-----:|\n| a.csv | 3 |\n| <b>b.csv</b> | 5 |",
        key="report",
    )
    create_table_artifact([{"file": "a.csv", "rows": 3}, {"file": "b.csv", "rows": 5}])
    create_link_artifact("https://example.org/run", link_text="the dashboard")
    loaded = create_progress_artifact(0, key="load", description="files loaded")
    update_progress_artifact(loaded, 62.5)
    flaky("ok")
    futures = slow.map(range(3))
    total = add(*futures)
    hostile(total)
    square(3)
    square(3)
    hang.submit().wait()
    explode.submit().wait()
    return total


def run_scenario() -> State[Any]:
    """Run the scenario once (it fails: the timeout and the explosion were never read)."""
    attempts.clear()
    with tags("nightly"):
        return scenario(return_state=True)


@flow
def small(n: int) -> int:
    return n


class Unrepresentable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr today")


@task
def nap(i: int) -> dict[str, Any]:
    time.sleep(0.1)
    return {"i": i, "rows": list(range(10_000))}


@task
def awkward() -> Unrepresentable:
    return Unrepresentable()


@task(
    persist_result=True,
    cache_result_in_memory=False,
    result_storage_key="kept-{parameters[n]}.json",
)
def kept(n: int) -> int:
    return n


@flow(thread_limit=1)
def crowded() -> int:
    """Three sync task runs submitted at once take turns at the flow's one thread."""
    naps = nap.map(range(3))
    awkward()
    return kept(7) + sum(f.result()["i"] for f in naps)


@task
def whose() -> int:
    return os.getpid()


@flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
def in_a_process() -> int:
    """One task run in a worker process: returns the worker's pid."""
    return whose.submit().result()
