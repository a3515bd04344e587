"""Event loops (``flowkit._engine.loops``): which loop a sync flow starts (its ``backend``,
else ``FLOWKIT_BACKEND``, else asyncio), what runs here, and reaching a loop from a thread."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import sniffio
from shared_tasks import loop_kind, loop_name

from flowkit import flow, task
from flowkit._engine import clock
from flowkit._engine.loops import (
    call_soon_threadsafe,
    drive,
    loop_args,
    resolve_backend,
    running_backend,
)

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)


# Which loop: the flow's choice, else FLOWKIT_BACKEND, else asyncio


def test_without_a_choice_or_flowkit_backend_the_loop_is_asyncio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLOWKIT_BACKEND", raising=False)
    assert resolve_backend(None, owner="flow 'main'") == "asyncio"


def test_a_choice_never_reads_flowkit_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_BACKEND", "curio")  # would be refused if it were read
    assert resolve_backend("trio", owner="flow 'main'") == "trio"


def test_backend_option_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_BACKEND", "asyncio")

    @flow(backend="trio")
    def main() -> str:
        return loop_name.submit().result()

    assert main() == "trio"


def test_bad_backend_variable_names_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_BACKEND", "curio")

    @flow
    def main() -> None: ...

    with pytest.raises(
        ValueError,
        match=r"^flow 'main': FLOWKIT_BACKEND='curio'.*set it to 'asyncio', 'trio' or 'uvloop'",
    ):
        main()


@pytest.mark.parametrize("variable", ["uvloop", "asyncio+uvloop"])
def test_flowkit_backend_uvloop_runs_sync_flows_on_uvloop(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv("FLOWKIT_BACKEND", variable)

    @flow
    def main() -> str:
        return loop_kind.submit().result()

    assert main() == "uvloop"


def test_backend_option_runs_a_sync_flow_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_BACKEND", "trio")

    @flow(backend="asyncio+uvloop")
    def main() -> tuple[str, str]:
        return loop_name.submit().result(), loop_kind.submit().result()

    assert main() == ("asyncio", "uvloop")


@pytest.mark.parametrize(
    ("option", "variable", "said"),
    [
        ("asyncio+uvloop", "asyncio", "backend='asyncio\\+uvloop'"),
        (None, "uvloop", "FLOWKIT_BACKEND='uvloop'"),
    ],
)
def test_uvloop_missing_is_said_at_the_call(
    monkeypatch: pytest.MonkeyPatch, option: str | None, variable: str, said: str
) -> None:
    monkeypatch.setenv("FLOWKIT_BACKEND", variable)

    @flow(backend=option)  # type: ignore[call-overload]
    def nightly() -> int:
        return 1

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import raises ModuleNotFoundError
    expected = rf"flow 'nightly': {said} asks for uvloop, which is not installed: pip install"
    with pytest.raises(ModuleNotFoundError, match=expected + r" 'flowkit\[uvloop\]'") as caught:
        nightly()
    assert caught.value.name == "uvloop"


def test_uvloop_on_windows_is_refused_at_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    @task(timeout_seconds=60)
    def nightly() -> int:
        return 1

    monkeypatch.setenv("FLOWKIT_BACKEND", "uvloop")
    monkeypatch.setattr(sys, "platform", "win32")
    expected = "task 'nightly': FLOWKIT_BACKEND='uvloop' asks for uvloop, which does not run on"
    with pytest.raises(ModuleNotFoundError, match=expected + " Windows; use 'asyncio'"):
        nightly()


# What anyio is asked to start


@pytest.mark.parametrize(
    ("loop", "args"),
    [
        ("asyncio", ("asyncio", {})),
        ("trio", ("trio", {})),
        ("asyncio+uvloop", ("asyncio", {"use_uvloop": True})),
    ],
)
def test_loop_args_are_anyios_backend_and_options(loop: Any, args: object) -> None:
    assert loop_args(loop) == args


class LoopFactory:
    """A virtual clock as far as ``loop_args`` sees one: options for a loop of its own."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def now(self) -> datetime:
        return datetime.now(UTC)

    def loop_options(self, backend: str) -> dict[str, Any]:
        self.asked.append(backend)
        return {"loop_factory": self}

    def thread_at_work(self) -> AbstractContextManager[None]:
        return nullcontext()


@pytest.fixture
def virtual() -> Iterator[LoopFactory]:
    source = LoopFactory()
    clock.install(source)
    yield source
    clock.uninstall(source)


def test_a_virtual_clocks_asyncio_loop_is_started_even_for_uvloop(
    virtual: LoopFactory,
) -> None:
    assert loop_args("asyncio+uvloop") == ("asyncio", {"use_uvloop": True, "loop_factory": virtual})
    assert virtual.asked == ["asyncio"]


def test_a_virtual_clock_gives_the_options_of_a_trio_loop(virtual: LoopFactory) -> None:
    assert loop_args("trio") == ("trio", {"loop_factory": virtual})
    assert virtual.asked == ["trio"]


# What runs here


@pytest.mark.anyio
async def test_running_backend_names_the_loop_running_here(anyio_backend: object) -> None:
    expected = {"asyncio": "asyncio", "trio": "trio"}.get(str(anyio_backend), "asyncio+uvloop")
    assert running_backend() == expected


def test_running_backend_outside_any_loop_is_an_error() -> None:
    with pytest.raises(sniffio.AsyncLibraryNotFoundError):
        running_backend()


@pytest.mark.anyio
async def test_any_thread_has_the_loop_call_a_function_in_its_own_thread() -> None:
    called = anyio.Event()
    threads: list[int] = []

    def on_the_loop() -> None:
        threads.append(threading.get_ident())
        called.set()  # an anyio Event is set from its loop's thread only

    schedule = call_soon_threadsafe(anyio.lowlevel.current_token())
    other = threading.Thread(target=schedule, args=(on_the_loop,))
    other.start()
    other.join()
    with anyio.fail_after(10):  # a safety net, not a measurement
        await called.wait()
    assert threads == [threading.get_ident()]


# Driving a run that never suspends


def test_drive_returns_what_a_coroutine_that_never_suspends_returns() -> None:
    async def answer() -> int:
        return 42

    assert drive(answer()) == 42


class _Suspend:
    def __await__(self) -> Iterator[None]:
        yield  # what a real await on a loop does: hand control to the loop


def test_drive_refuses_a_coroutine_that_suspends_and_closes_it() -> None:
    closed: list[bool] = []

    async def suspends() -> None:
        try:
            await _Suspend()
        finally:
            closed.append(True)

    coroutine = suspends()  # held here: only drive can have closed it by the assertion
    with pytest.raises(RuntimeError, match="flowkit engine bug: a run driven in its calling"):
        drive(coroutine)
    assert closed == [True]
