"""Shared test setup: every engine test runs on asyncio, on trio and on asyncio with uvloop."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

# No per-example deadline: a loaded CI machine must not turn a slow example into a failure.
# A shared, busy machine makes examples slow to run and to generate: time is no failure.
settings.register_profile("flowkit", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("flowkit")


# asyncio on uvloop, where uvloop runs (not on Windows).
UVLOOP = (
    []
    if sys.platform == "win32"
    else [pytest.param(("asyncio", {"use_uvloop": True}), id="asyncio+uvloop")]
)


@pytest.fixture(params=["asyncio", "trio", *UVLOOP])
def anyio_backend(request: pytest.FixtureRequest) -> str | tuple[str, dict[str, Any]]:
    """Run each ``@pytest.mark.anyio`` test once per backend: asyncio, trio, and asyncio
    on uvloop."""
    return request.param


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """For sync tests: the event loop sync flows start, through ``FLOWKIT_BACKEND``: asyncio
    and trio, and asyncio with uvloop as well in a module marked ``every_loop``."""
    monkeypatch.setenv("FLOWKIT_BACKEND", str(request.param))
    return str(request.param)


@pytest.hookimpl(tryfirst=True)  # before pytest reads the parametrize marks
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # The engine's core modules declare ``pytestmark = pytest.mark.every_loop``: their
    # sync tests start sync flows on uvloop too. Everywhere would cost the suite a third
    # more time for little more: the rest runs sync flows on asyncio and trio, and async
    # tests everywhere run on all three (``anyio_backend``).
    every_loop = metafunc.definition.get_closest_marker("every_loop") is not None
    if UVLOOP and every_loop and "backend" in metafunc.fixturenames:
        # A mark, not a call: pytest then leaves out the fixture's own parameters.
        loops = ["asyncio", "trio", "asyncio+uvloop"]
        metafunc.definition.add_marker(pytest.mark.parametrize("backend", loops, indirect=True))


@pytest.fixture(autouse=True)
def _isolated_home(flowkit_home: Path) -> Path:
    """Never touch the real ``~/.flowkit``: every test gets the plugin's fresh home."""
    return flowkit_home


@pytest.fixture(autouse=True)
def _flowkit_level() -> None:
    """flowkit's level as its first run sets it (INFO) in every test: a test that ran that
    first run under ``caplog.set_level`` left it unset once caplog put it back."""
    logger = logging.getLogger("flowkit")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


Respond = Callable[[str], bytes]


@pytest.fixture
def local_http() -> Iterator[Callable[[Respond], tuple[str, list[str]]]]:
    """Start HTTP servers on 127.0.0.1 for the test: ``url, paths = local_http(respond)``.

    ``respond(path)`` gives each answer's JSON body (it may block, e.g. on a barrier);
    ``paths`` lists the paths requested, in order.
    """
    servers: list[ThreadingHTTPServer] = []

    def serve(respond: Respond) -> tuple[str, list[str]]:
        seen: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                body = respond(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", seen

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()
