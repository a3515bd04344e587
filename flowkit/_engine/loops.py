"""Event loops: which one a sync flow starts, what is running here, and how another
thread or a sync caller reaches one.

The loops flowkit runs on are asyncio's, trio's, and asyncio on uvloop; a thread hands a
loop work with call_soon_threadsafe (never waiting for it), and drive runs a
coroutine that never suspends to its end with no loop at all.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar, cast

import sniffio
from anyio.lowlevel import EventLoopToken, current_token

from . import clock

__all__ = [
    "BACKENDS",
    "Backend",
    "call_soon_threadsafe",
    "drive",
    "loop_args",
    "resolve_backend",
    "running_backend",
]

T = TypeVar("T")

Backend = Literal["asyncio", "trio", "asyncio+uvloop"]


BACKENDS: tuple[Backend, ...] = ("asyncio", "trio", "asyncio+uvloop")


_ALIASES: dict[str, Backend] = {"uvloop": "asyncio+uvloop"}


def resolve_backend(choice: Backend | None, *, owner: str) -> Backend:
    """The event loop for a sync flow: its own choice, else ``FLOWKIT_BACKEND``, else asyncio.

    ``FLOWKIT_BACKEND=uvloop`` is short for ``asyncio+uvloop``.

    Raises:
        ValueError: ``FLOWKIT_BACKEND`` names no supported backend.
        ModuleNotFoundError: The backend is uvloop, which is not installed (or this is
            Windows, where it does not run).
    """
    if choice is not None:
        source, backend = f"backend={choice!r}", choice
    else:
        env = os.environ.get("FLOWKIT_BACKEND", "asyncio")
        backend = _ALIASES.get(env, cast("Backend", env))
        if backend not in BACKENDS:
            raise ValueError(
                f"{owner}: FLOWKIT_BACKEND={env!r} is not a supported event loop; "
                "set it to 'asyncio', 'trio' or 'uvloop' (asyncio on uvloop)"
            )
        source = f"FLOWKIT_BACKEND={env!r}"
    if backend == "asyncio+uvloop":
        _check_uvloop(f"{owner}: {source}")
    return backend


def _check_uvloop(asked: str) -> None:
    """Import uvloop now, so that a missing one is said here rather than in a loop's thread."""
    if sys.platform == "win32":
        raise ModuleNotFoundError(
            f"{asked} asks for uvloop, which does not run on Windows; use 'asyncio'",
            name="uvloop",
        )
    try:
        importlib.import_module("uvloop")
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"{asked} asks for uvloop, which is not installed: pip install 'flowkit[uvloop]', "
            "or use 'asyncio'",
            name="uvloop",
        ) from None


def loop_args(backend: Backend) -> tuple[Literal["asyncio", "trio"], dict[str, Any]]:
    """anyio's ``backend`` and ``backend_options`` for a new event loop of ``backend``.

    A virtual clock's options (``clock.loop_options``) come last: its asyncio loop, a
    ``loop_factory``, is the one anyio starts, uvloop asked for or not (uvloop's time
    cannot be made virtual).
    """
    if backend == "asyncio+uvloop":
        return "asyncio", {"use_uvloop": True, **clock.loop_options("asyncio")}
    return backend, clock.loop_options(backend)


def running_backend() -> Backend:
    """The backend of the event loop running in this thread.

    Raises:
        sniffio.AsyncLibraryNotFoundError: No event loop runs here.
    """
    library = sniffio.current_async_library()
    if library == "trio":
        return "trio"
    uvloop: Any = sys.modules.get("uvloop")  # not imported: no uvloop loop runs anywhere
    if uvloop is not None and isinstance(current_token().native_token, uvloop.Loop):
        return "asyncio+uvloop"
    return "asyncio"


def call_soon_threadsafe(token: EventLoopToken) -> Callable[..., object]:
    """How any thread has the loop of ``token`` call a function soon, without waiting.

    (Not ``anyio.from_thread``: it waits, and trio refuses it in a thread that runs a
    trio task.)
    """
    native: Any = token.native_token
    if hasattr(native, "call_soon_threadsafe"):  # asyncio's loop
        return cast("Callable[..., object]", native.call_soon_threadsafe)
    return cast("Callable[..., object]", native.run_sync_soon)  # trio's TrioToken


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end, in this thread.

    Raises:
        RuntimeError: The coroutine tried to suspend, which only an engine bug can cause.
    """
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]  # the coroutine's own T
    coro.close()
    raise RuntimeError("flowkit engine bug: a run driven in its calling thread suspended")
