"""Shared test setup: every engine test runs on asyncio and on trio."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each ``@pytest.mark.anyio`` test once per backend."""
    return str(request.param)


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """For sync tests: the event loop sync flows start, through ``FLOWKIT_BACKEND``."""
    monkeypatch.setenv("FLOWKIT_BACKEND", str(request.param))
    return str(request.param)


@pytest.fixture(autouse=True)
def flowkit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the real ``~/.flowkit``."""
    home = tmp_path / "flowkit-home"
    monkeypatch.setenv("FLOWKIT_HOME", str(home))
    return home
