"""``python -m flowkit.bench._cell``: one measurement in a fresh process.

The parent (``_harness.run_job``) writes a JSON request on stdin: ``{"target":
"module:function", "spec": {...}}``. This process imports the target, calls it with the
spec, and writes one JSON line on stdout: ``{"result": ...}`` with what it returned, or
``{"error": "Type: message"}`` if it raised. Everything else written to stdout (a user's
prints, a worker process's output) goes to stderr instead, which the parent drains.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["error_line", "main"]


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def _target(path: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    module, _, name = path.partition(":")
    found: Callable[[dict[str, Any]], dict[str, Any]] = getattr(
        importlib.import_module(module), name
    )
    return found


def main() -> int:
    """Run the request on stdin; write its result on stdout."""
    request = json.load(sys.stdin)
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # from here on, fd 1 is stderr: only the result goes to ``out``
    try:
        reply: dict[str, Any] = {"result": _target(request["target"])(request["spec"])}
    except Exception as exc:
        traceback.print_exc()
        reply = {"error": error_line(exc)}
    sys.stderr.flush()
    out.write(json.dumps(reply) + "\n")
    out.close()
    return 0 if "result" in reply else 1


if __name__ == "__main__":
    raise SystemExit(main())
