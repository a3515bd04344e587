"""What flowkit serves, and to whom: nothing it starts listens beyond this machine unless
told to, and the page answers only to the names it is served by (not to a name an
attacker's page rebinds to 127.0.0.1).

Everything here listens on loopback and talks to itself: no test reaches the network.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, cast

import httpx
import psutil
import pytest

from flowkit import flow, task
from flowkit.store import flush
from flowkit.task_runners.dask import DaskTaskRunner

Listener = tuple[int, str, int]  # pid, address, port


def _listening() -> set[Listener]:
    """Every listening TCP socket of this process and its children (Dask's workers)."""
    me = psutil.Process()
    found: set[Listener] = set()
    for process in [me, *me.children(recursive=True)]:
        try:
            sockets = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:  # a child that ended meanwhile listens no more
            continue
        found |= {
            (process.pid, s.laddr.ip, s.laddr.port)
            for s in sockets
            if s.status == psutil.CONN_LISTEN
        }
    return found


def _beyond_loopback(listeners: set[Listener]) -> set[Listener]:
    return {lst for lst in listeners if not ipaddress.ip_address(lst[1]).is_loopback}


async def _started(runner: DaskTaskRunner) -> tuple[Any, set[Listener]]:
    """The executor of one flow run on ``runner``, and what its cluster listens on."""
    before = _listening()
    executor = cast("Any", await runner.executor("flow 'exposed'"))
    return executor, _listening() - before


# Another cluster on the machine may hold 8787: Dask then warns and takes another port.
_PORT_TAKEN = "ignore:Port 8787 is already in use:UserWarning"


@pytest.mark.anyio
@pytest.mark.filterwarnings(_PORT_TAKEN)
async def test_a_default_dask_cluster_listens_on_loopback_only(burners: None) -> None:
    executor, listeners = await _started(DaskTaskRunner())
    try:
        scheduler = executor.cluster.scheduler
        assert executor.cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert scheduler.http_server.address == "127.0.0.1"  # the dashboard's server
        assert any(port == scheduler.http_server.port for _, _, port in listeners)
        assert len({pid for pid, _, _ in listeners}) > 1  # the workers' processes too
        assert _beyond_loopback(listeners) == set()
    finally:
        await executor.aclose()


@pytest.mark.anyio
async def test_a_dask_cluster_in_the_flows_process_listens_on_loopback_only(
    burners: None,
) -> None:
    # No dashboard, workers in this process: Dask still serves the scheduler's and the
    # workers' HTTP routes, which then have no host to follow.
    runner = DaskTaskRunner(
        cluster_kwargs={"n_workers": 1, "processes": False, "dashboard_address": None}
    )
    executor, listeners = await _started(runner)
    try:
        assert executor.cluster.scheduler.http_server.address == "127.0.0.1"
        assert len(listeners) >= 2  # the scheduler's routes and the worker's
        assert _beyond_loopback(listeners) == set()
    finally:
        await executor.aclose()


# The page: served by `flowkit ui`, asked with hostile and friendly Host headers.

SECRET = "parameter-only-the-owner-may-read"


@task
def echo(value: str) -> str:
    return value


@flow
def private(value: str) -> str:
    return echo(value)


@pytest.fixture
def page(backend: str) -> Iterator[tuple[str, int, str]]:
    """``flowkit ui`` on 127.0.0.1 over a store with one run of ``private(SECRET)``:
    its URL, its port, and the run's id."""
    private(SECRET)
    flush()
    process = subprocess.Popen(
        [sys.executable, "-m", "flowkit", "ui", "--port", "0"],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    said = []
    while not (line := process.stdout.readline()).startswith("flowkit ui:"):
        assert line, "".join(said)
        said.append(line)
    url = line.split(" at ", 1)[1].split()[0]
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    try:
        runs = httpx.get(f"{url}api/runs", timeout=10).json()["runs"]
        yield url, port, runs[0]["id"]
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()


def _paths(run_id: str) -> list[str]:
    """Every route that returns data, the page and its assets."""
    return [
        "/",
        "/static/app.js",
        "/api/runs",
        "/api/flows",
        f"/api/runs/{run_id}",
        "/api/artifacts",
        "/api/events",
    ]


def _get(http: httpx.Client, path: str, host: str) -> tuple[int, str]:
    """Status and body of ``GET path`` with ``Host: host`` (only the first event of the
    event stream, which does not end)."""
    with http.stream("GET", path, headers={"Host": host}) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return response.status_code, next(response.iter_lines())
        return response.status_code, response.read().decode()


def test_the_page_answers_only_to_the_names_it_is_served_by(
    page: tuple[str, int, str], burners: None
) -> None:
    url, port, run_id = page
    foreign = ["attacker.example", f"attacker.example:{port}", f"127.0.0.1.nip.example:{port}"]
    own = [f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"]
    with httpx.Client(base_url=url, timeout=10) as http:
        for host in foreign:
            for path in _paths(run_id):
                assert _get(http, path, host) == (400, "Invalid host header"), (host, path)
        for host in own:
            for path in _paths(run_id):
                status, body = _get(http, path, host)
                assert status == 200, (host, path, body)
            assert SECRET in _get(http, f"/api/runs/{run_id}", host)[1]
            assert _get(http, "/api/events", host)[1] == "event: hello"
