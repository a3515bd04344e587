"""The demo runs offline, on both backends, and reports what the stand-in API serves."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from flowkit import demo
from flowkit.cli import main as flowkit_main


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_reports_the_repository_statistics(
    backend: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")
    assert flowkit_main(["demo", "--repo", "octo/cat", "--backend", backend]) == 0

    stats = demo.repo_stats("octo/cat")
    pages = -(stats["open_issues_count"] // -100)
    out = capsys.readouterr().out
    assert f"Done: {stats['open_issues_count']} open issues over {pages} pages" in out
    messages = [r.getMessage() for r in caplog.records]
    assert f"Stars 🌠 : {stats['stargazers_count']}" in messages
    assert f"Forks 🍴 : {stats['forks_count']}" in messages
    assert [m for m in messages if m.startswith("Created task run")] == [
        f"Created task run 'get_url-{n}' for task 'get_url'" for n in range(pages + 1)
    ]
    assert messages[-1] == "Finished in state Completed('All states completed.')"


def test_flow_returns_the_average_issues_per_user() -> None:
    issues = demo.open_issues("a/b", 1, 10_000)
    with demo.serve() as api:
        summary = demo.get_repo_info(api, "a/b")
    assert summary["open_issues"] == len(issues) == demo.repo_stats("a/b")["open_issues_count"]
    users = {i["user"]["id"] for i in issues}
    assert summary["issues_per_user"] == round(len(issues) / len(users), 2)


def test_stand_in_api_answers_unknown_paths_with_404() -> None:
    with demo.serve() as api, pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{api}/nope", timeout=5)
    assert raised.value.code == 404
    assert json.load(raised.value) == {"message": "Not Found"}


def test_bad_repo_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert flowkit_main(["demo", "--repo", "no-slash"]) == 2
    assert "must look like 'owner/name', got 'no-slash'" in capsys.readouterr().err


def test_demo_run_is_recorded_in_the_store(capsys: pytest.CaptureFixture[str]) -> None:
    summary = demo.run("x/y")
    assert "open issues over" in capsys.readouterr().out
    assert flowkit_main(["runs", "show", summary["run"]]) == 0
    tree = capsys.readouterr().out
    assert f"{summary['run']} [flow 'get-repo-info'] Completed" in tree
    assert tree.count("[task 'get_url'] Completed") == 1 + -(summary["open_issues"] // -100)


def test_demo_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flowkit.demo", "--backend", "trio"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Finished in state Completed('All states completed.')" in done.stderr
    assert "on trio." in done.stdout
