"""flowkit's pytest plugin, registered as ``flowkit`` through the ``pytest11`` entry point.

Fixtures: ``flowkit_home`` (a fresh ``FLOWKIT_HOME`` per test), ``flowkit_store`` (a
reader of the runs the test recorded), ``virtual_clock`` (flowkit's waiting on virtual
time), ``flowkit_backend`` (the loop sync flows start). Marker: ``flowkit_backends``
runs a test once on asyncio, once on trio, and once on asyncio with uvloop where uvloop is
installed.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Coroutine, Generator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from ..store import Store
from ..store._schema import connect
from .clock import VirtualClock, on_virtual_loop
from .clock import virtual_clock as _virtual_clock
from .utilities import flowkit_test_harness

__all__ = ["flowkit_backend", "flowkit_home", "flowkit_store", "virtual_clock"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "flowkit_backends: run the test once per event loop flowkit supports (asyncio, "
        "trio, and asyncio+uvloop where uvloop is installed): async tests through "
        "anyio_backend, sync ones through FLOWKIT_BACKEND",
    )


def _backends() -> list[str]:
    """The ``backend`` values the ``flowkit_backends`` marker runs a test with: asyncio,
    trio, and asyncio+uvloop when uvloop is installed (never on Windows)."""
    with_uvloop = sys.platform != "win32" and importlib.util.find_spec("uvloop") is not None
    return ["asyncio", "trio", *(["asyncio+uvloop"] if with_uvloop else [])]


@pytest.hookimpl(tryfirst=True)  # before the parametrization of fixtures, which it overrides
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("flowkit_backends") is None:
        return
    found = _backends()
    if "anyio_backend" in metafunc.fixturenames:
        loops = [("asyncio", {"use_uvloop": True}) if b == "asyncio+uvloop" else b for b in found]
        metafunc.parametrize("anyio_backend", loops, ids=found)
    else:
        if "flowkit_backend" not in metafunc.fixturenames:
            metafunc.fixturenames.append("flowkit_backend")
        metafunc.parametrize("flowkit_backend", found, indirect=True)


@pytest.fixture
def flowkit_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The event loop sync flows start (``FLOWKIT_BACKEND``): the ``flowkit_backends``
    marker's parameter, else what the environment says (asyncio by default)."""
    backend = str(getattr(request, "param", os.environ.get("FLOWKIT_BACKEND", "asyncio")))
    monkeypatch.setenv("FLOWKIT_BACKEND", backend)
    return backend


@pytest.fixture
def flowkit_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh ``FLOWKIT_HOME`` for the test (``flowkit_test_harness`` on a directory of
    its own, not made yet): its run store, results, cache and limits are the test's own."""
    with flowkit_test_harness(tmp_path_factory.mktemp("flowkit") / "home") as home:
        yield home


@pytest.fixture
def flowkit_store(flowkit_home: Path) -> Iterator[Store]:
    """A reading connection to the test's run store. A flow's runs are in it once the
    flow's call has returned."""
    path = flowkit_home / "runs.db"
    connect(path, create=True).close()  # a test that records nothing reads an empty store
    with Store.open(path) as store:
        yield store


@pytest.fixture
def virtual_clock(flowkit_home: Path) -> Iterator[VirtualClock]:
    """flowkit's waiting on a virtual clock for the test; an async test runs on a loop of
    the clock (on asyncio and on trio)."""
    with _virtual_clock() as clock:
        yield clock


@pytest.hookimpl(wrapper=True)  # around anyio's own, which runs the test
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Before anyio runs an async test that uses ``virtual_clock``: give its loop the clock."""
    clock = pyfuncitem.funcargs.get("virtual_clock")
    backend = pyfuncitem.funcargs.get("anyio_backend")
    test = pyfuncitem.obj
    if (
        isinstance(clock, VirtualClock)
        and backend is not None
        and inspect.iscoroutinefunction(test)
        and not hasattr(test, "hypothesis")
    ):
        name, options = cast(
            "tuple[str, dict[str, Any]]", (backend, {}) if isinstance(backend, str) else backend
        )
        pyfuncitem.funcargs["anyio_backend"] = (name, {**options, **clock.loop_options(name)})
        pyfuncitem.obj = _on_virtual_loop(test, pyfuncitem.nodeid)
        try:
            return (yield)
        finally:
            pyfuncitem.obj, pyfuncitem.funcargs["anyio_backend"] = test, backend
    return (yield)


def _on_virtual_loop(
    test: Callable[..., Coroutine[Any, Any, Any]], nodeid: str
) -> Callable[..., Coroutine[Any, Any, Any]]:
    @functools.wraps(test)
    async def checked(*args: Any, **kwargs: Any) -> Any:
        # anyio runs a test on the loop of its async fixtures when there are any, made
        # before the test could ask for a virtual one.
        if not on_virtual_loop():
            raise RuntimeError(
                f"{nodeid}: uses virtual_clock, but runs on a loop with real time, made "
                "for its async fixtures; make those fixtures sync, or use "
                "VirtualClock().run() inside the test"
            )
        return await test(*args, **kwargs)

    return checked
