"""A flow for the live page test, run in a process of its own: it records a first task run,
then waits (in a task run) until the file named by its argument exists, then ends."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from flowkit import flow, task


@task
def first() -> int:
    return 1


@task
def wait_for_release(path: str) -> None:
    while not Path(path).exists():
        time.sleep(0.05)


@task
def after(n: int) -> int:
    return n + 1


@flow
def live(path: str) -> int:
    n = first()
    wait_for_release(path)
    return after(n)


if __name__ == "__main__":
    live(sys.argv[1])
