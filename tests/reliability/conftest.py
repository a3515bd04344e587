"""The reliability suite: the engine's promises under load, faults and hostile input.

Every test under ``tests/reliability/`` is marked ``reliability`` (``-m reliability``
runs only them, ``-m "not reliability"`` skips them). Sizes are chosen to keep the whole
suite within the CI budget; ``FLOWKIT_RELIABILITY=long`` multiplies them for a soak.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import flowkit.logging

T = TypeVar("T")

LONG = os.environ.get("FLOWKIT_RELIABILITY", "") == "long"
"""Whether the suite runs in its long mode."""


@pytest.fixture
def scale() -> Callable[[int], int]:
    """``scale(n)``: ``n`` in the normal mode, ten times as many in the long mode."""
    return lambda n: n * 10 if LONG else n


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.reliability)
            if LONG:  # a soak outlasts the per-test timeout of the normal suite
                item.add_marker(pytest.mark.timeout(1800))


BURNERS = 2
"""How many CPU-burning processes ``burners`` runs beside a test: a busy 2-core machine."""


@pytest.fixture
def burners() -> Iterator[None]:
    """Two processes burning CPU for the length of the test, as on a busy machine."""
    spin = "while True: pass"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(BURNERS)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def interrupted(script: str, *args: str, timeout: float) -> tuple[int, str, str]:
    """Run ``script`` in a new interpreter (store off) until it prints ``ready``, press
    Ctrl-C (SIGINT), and return its exit code, output and error output."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", script, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "FLOWKIT_STORE": "off"},
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture
def ctrl_c() -> Callable[..., tuple[int, str, str]]:
    """``ctrl_c(script, *args, timeout=...)``: see ``interrupted``."""
    return interrupted


@pytest.fixture
def quiet() -> Iterator[None]:
    """Keep flowkit's INFO lines off the console: thousands of runs would print them."""
    flowkit.logging.setup()  # first, or it would take our level for the user's choice
    logger = logging.getLogger("flowkit")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@pytest.fixture
def within() -> Callable[[float, Callable[[], Any]], Any]:
    """``within(seconds, fn)``: see ``call_within``."""
    return call_within


def call_within(seconds: float, fn: Callable[[], T]) -> T:
    """Call ``fn`` in a watchdog thread; fail with its stack if it is not over in time.

    A deadlock then fails the test that found it, with the place it hangs, instead of
    hanging the suite. The hung thread is a daemon and is left behind.
    """
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the test's thread, which raises it
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name="watched", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        frames = sys._current_frames()  # pyright: ignore[reportPrivateUsage]
        stacks = [
            f"--- {t.name}\n{''.join(traceback.format_stack(frames[t.ident]))}"
            for t in threading.enumerate()
            if t.ident in frames
        ]
        pytest.fail(f"still running after {seconds} s (deadlock?)\n" + "\n".join(stacks))
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]
