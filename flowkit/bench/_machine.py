"""What a benchmark ran on: cores, CPU model, Python, platform, frequency governor, and
the versions of the libraries that decide the figures."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["LIBRARIES", "describe_machine"]

LIBRARIES = ("flowkit", "anyio", "trio", "uvloop", "distributed")


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


def _governor() -> str | None:
    try:
        path = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
        return path.read_text().strip() or None
    except OSError:
        return None


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_machine() -> dict[str, Any]:
    """The ``machine`` of a ``flowkit-bench/1`` document; ``None`` for what cannot be
    read here (a governor outside Linux, a library not installed)."""
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
        "governor": _governor(),
        "versions": {name: _version(name) for name in LIBRARIES},
    }
