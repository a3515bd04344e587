"""The demo: the reference page's repository-statistics flow, run offline.

``python -m flowkit.demo`` (or ``flowkit demo``) starts a small HTTP server on 127.0.0.1
that plays the part of the GitHub API, with made-up but fixed data for any repository
name, then runs a flow against it: one task run fetches the repository's statistics,
then one submitted task run per page of open issues fetches the pages concurrently.
The flow prints a summary; ``log_prints=True`` turns those prints into log lines of the
run.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Generator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from . import runtime, store
from .flows import flow
from .futures import TaskFuture
from .tasks import task

__all__ = ["DemoAPI", "get_repo_info", "get_url", "run", "serve"]

DEFAULT_REPO = "flowkit/flowkit"


# The stand-in API. Everything about a repository derives from a hash of its name, so the
# same name always gives the same figures and the demo's summary can be checked.


def _seed(repo: str) -> int:
    return int.from_bytes(hashlib.sha256(repo.encode()).digest()[:8], "big")


class DemoAPI(BaseHTTPRequestHandler):
    """Answers ``/repos/<owner>/<name>`` and ``/repos/<owner>/<name>/issues``.

    Each request waits ``latency`` seconds first, like a remote API would, so that
    running the page fetches concurrently shows in the elapsed time.
    """

    latency = 0.05

    def do_GET(self) -> None:
        """Answer one request, after the simulated latency."""
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        query = dict(urllib.parse.parse_qsl(url.query))
        time.sleep(self.latency)
        if len(parts) == 3 and parts[0] == "repos":
            self._reply(200, repo_stats(f"{parts[1]}/{parts[2]}"))
        elif len(parts) == 4 and parts[0] == "repos" and parts[3] == "issues":
            try:
                page, per_page = int(query.get("page", "1")), int(query.get("per_page", "30"))
            except ValueError:
                self._reply(400, {"message": "page and per_page must be integers"})
                return
            self._reply(200, open_issues(f"{parts[1]}/{parts[2]}", page, per_page))
        else:
            self._reply(404, {"message": "Not Found"})

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the server quiet: the flow's own logs tell the story."""


def repo_stats(repo: str) -> dict[str, Any]:
    """The statistics the stand-in API reports for ``repo``."""
    seed = _seed(repo)
    return {
        "full_name": repo,
        "stargazers_count": 1_000 + seed % 20_000,
        "forks_count": 100 + seed % 2_000,
        "open_issues_count": 150 + seed % 400,
    }


def open_issues(repo: str, page: int, per_page: int) -> list[dict[str, Any]]:
    """One page of the open issues the stand-in API reports for ``repo``."""
    seed, count = _seed(repo), repo_stats(repo)["open_issues_count"]
    start = (page - 1) * per_page
    return [
        {"number": n + 1, "user": {"id": (n * 7 + seed) % 97}}
        for n in range(max(start, 0), min(start + per_page, count))
    ]


@contextmanager
def serve() -> Generator[str, None, None]:
    """Run the stand-in API on 127.0.0.1 for the ``with`` block; yield its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), DemoAPI)
    # A short poll interval so that leaving the block does not wait half a second.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="flowkit-demo-api", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# The flow: the reference page's example, with page fetches submitted concurrently.


@task
def get_url(url: str, params: dict[str, Any] | None = None) -> Any:
    """Fetch ``url`` (with ``params`` as its query) and decode the JSON answer."""
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def get_open_issues(
    api: str, repo_name: str, open_issues_count: int, per_page: int = 100
) -> list[dict[str, Any]]:
    """Fetch every page of open issues, one task run per page, all at once."""
    issues: list[TaskFuture[list[dict[str, Any]]]] = []
    pages = range(1, -(open_issues_count // -per_page) + 1)
    for page in pages:
        issues.append(
            get_url.submit(
                f"{api}/repos/{repo_name}/issues",
                params={"page": page, "per_page": per_page, "state": "open"},
            )
        )
    return [i for p in issues for i in p.result()]


@flow(log_prints=True)
def get_repo_info(api: str, repo_name: str = DEFAULT_REPO) -> dict[str, Any]:
    """Print a repository's statistics and its average open issues per user."""
    repo_stats = get_url(f"{api}/repos/{repo_name}")
    issues = get_open_issues(api, repo_name, repo_stats["open_issues_count"])
    issues_per_user = len(issues) / len({i["user"]["id"] for i in issues})
    print(f"{repo_name} repository statistics 🤓:")
    print(f"Stars 🌠 : {repo_stats['stargazers_count']}")
    print(f"Forks 🍴 : {repo_stats['forks_count']}")
    print(f"Average open issues per user 💌 : {issues_per_user:.2f}")
    return {
        "stars": repo_stats["stargazers_count"],
        "forks": repo_stats["forks_count"],
        "open_issues": len(issues),
        "issues_per_user": round(issues_per_user, 2),
        "run": runtime.flow_run.name,
    }


def run(
    repo: str = DEFAULT_REPO, backend: Literal["asyncio", "trio"] = "asyncio"
) -> dict[str, Any]:
    """Serve the stand-in API, run the flow against it for ``repo``, print a summary.

    Returns:
        What the flow returned.
    """
    with serve() as api:
        started = time.perf_counter()
        summary = get_repo_info.with_options(backend=backend)(api, repo)
        elapsed = time.perf_counter() - started
    print(
        f"Done: {summary['open_issues']} open issues over "
        f"{-(summary['open_issues'] // -100)} pages fetched concurrently, "
        f"in {elapsed:.2f} s on {backend}."
    )
    if store.is_enabled():
        print(f"See the recorded run with: flowkit runs show {summary['run']}")
    return summary


if __name__ == "__main__":
    import sys

    from flowkit.cli import main  # the command parses the demo's options

    raise SystemExit(main(["demo", *sys.argv[1:]]))
