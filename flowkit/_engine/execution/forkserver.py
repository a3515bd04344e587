"""The fork server: one process per program that starts the process pools' workers.

A new interpreter that imports flowkit's engine costs about 0.1 s of CPU; a fork of one
that already has costs a few milliseconds. So the first pool of a program starts this
server, a fresh interpreter (``python -c``) that imports the engine and nothing of the
program, and every worker after that is a fork of it. Forking the program itself would
be unsafe (it runs an event loop and threads); forking the server is not: it has one
thread, and it only waits for requests.

A request carries what a worker started at that moment should see: the parent's working
directory, environment and standard streams (the streams as file descriptors, with the
worker's socket end and the write end of a pipe for its exit status). The server forks,
replies with the pid, and, when the worker exits, writes its exit code on that pipe; the
parent's ``Forked`` reads it there, as ``Popen.wait`` would. The server stops when the
program closes its end of the socket, or exits (killed too: the kernel closes the socket).

Workers do not outlive the server: on Linux each asks the kernel to kill it when its
parent, the server, exits (``PR_SET_PDEATHSIG``), so a program killed with SIGKILL, or a
server killed on its own, leaves no worker running a body nobody waits for.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Forked", "serve", "spawn", "start"]

_LENGTH = struct.Struct("!Q")
_PID = struct.Struct("!q")
_CODE = struct.Struct("!i")
_STREAMS = (0, 1, 2)


class Forked:
    """A worker forked by the server, with the part of ``subprocess.Popen`` pools use."""

    def __init__(self, pid: int, status: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._status = status  # the pipe the server writes the exit code on
        self._over = False
        self._reading = threading.Lock()  # a wait in one thread, a kill in another
        self._pidfd: int | None = None
        # A pid can be reused once its process is reaped: where it can, hold the
        # process itself, so that ``kill`` never reaches another one.
        with contextlib.suppress(AttributeError, OSError):
            self._pidfd = os.pidfd_open(pid)

    def kill(self) -> None:
        """Kill it with SIGKILL, unless it is over already (before ``close``)."""
        if self._exited(0):
            return
        with contextlib.suppress(ProcessLookupError):
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for it to exit; its exit code (-N: killed by signal N), or ``None`` if
        the server died first and took it with it.

        Raises:
            subprocess.TimeoutExpired: It still runs after ``timeout`` seconds.
        """
        if not self._exited(timeout):
            raise subprocess.TimeoutExpired(f"flowkit worker {self.pid}", timeout or 0)
        return self.returncode

    def _exited(self, timeout: float | None) -> bool:
        if self._over:
            return True
        # Once the code is written (or the server gone), the pipe stays readable: a
        # thread that waits here while another reads the code returns at once.
        ready, _, _ = select.select([self._status], [], [], timeout)
        if not ready:
            return False
        with self._reading:
            if not self._over:
                data = os.read(self._status, _CODE.size)
                self.returncode = _CODE.unpack(data)[0] if len(data) == _CODE.size else None
                self._over = True
        return True

    def close(self) -> None:
        """Let go of its pipe and pidfd, once nobody waits for it or kills it."""
        fds, self._status, self._pidfd = (self._status, self._pidfd), -1, None
        for fd in fds:
            if fd is not None and fd >= 0:
                os.close(fd)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # even at shutdown, when os may be gone
            self.close()


class _Server:
    """This program's end of the server: its process and the socket to it."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        with theirs:
            fd = theirs.fileno()
            entry = f"from flowkit._engine.execution.forkserver import serve; serve({fd})"
            # It finds flowkit where this program did (workers get their sys.path later).
            path = os.pathsep.join(found for found in sys.path if found)
            self.process = subprocess.Popen(
                [sys.executable, "-c", entry], pass_fds=[fd], env={**os.environ, "PYTHONPATH": path}
            )
        self.sock = ours

    def fork(self, fd: int) -> Forked:
        """Have the server fork a worker on the socket ``fd``.

        Raises:
            OSError: The server is gone.
        """
        streams = [stream for stream in _STREAMS if _is_open(stream)]
        request = pickle.dumps((os.getcwd(), dict(os.environ), streams))
        status, status_end = os.pipe()
        try:
            socket.send_fds(self.sock, [_LENGTH.pack(len(request)) + request],
                            [fd, status_end, *streams])  # fmt: skip
            (pid,) = _PID.unpack(_read(self.sock, _PID.size))
        except BaseException:
            os.close(status)
            raise
        finally:
            os.close(status_end)
        return Forked(pid, status)

    def close(self) -> None:
        self.sock.close()  # the server sees the end of its input, and exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


_lock = threading.Lock()
_server: _Server | None = None


def spawn(fd: int) -> Forked:
    """Start a worker on the socket ``fd`` (blocking: call it in a worker thread).

    Raises:
        OSError: The server cannot be started, or died twice in a row.
    """
    with _lock:
        try:
            return _running().fork(fd)
        except OSError:  # it died since it started (killed?): once more, with a new one
            _stop()
        try:
            return _running().fork(fd)
        except OSError as exc:
            _stop()
            raise OSError(
                f"flowkit's fork server, which starts the worker processes, stopped as it "
                f"started ({type(exc).__name__}: {exc}); its own error, if it had one, is "
                f"on standard error; check that {sys.executable} -c 'import flowkit' works"
            ) from None


def start() -> None:
    """Start the server, if this program has none running (blocking, but only for as long
    as it takes to start a process: the server imports the engine while the caller goes
    on)."""
    with _lock:
        _running()


def _running() -> _Server:
    global _server
    if _server is not None and _server.process.poll() is not None:
        _stop()
    if _server is None:
        _server = _Server()
    return _server


@atexit.register
def _stop() -> None:
    global _server
    if _server is not None:
        _server.close()
        _server = None


def _forget_in_child() -> None:
    # A fork of this program starts a server of its own if it needs one, and leaves this
    # one to its parent.
    global _server, _lock
    _lock = threading.Lock()
    if _server is not None:
        _server.sock.close()
        _server = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("the fork server closed its socket")
        data += chunk
    return data


# The server's side.


def serve(fd: int) -> None:
    """The server: fork a worker for each request on the socket ``fd``, until it closes."""
    from ..results.storage import cloudpickle
    from .processes import worker_main  # what every worker runs, imported once, here

    cloudpickle()  # every worker unpickles its bodies with it

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the program
    control = socket.socket(fileno=fd)
    wake, wake_end = os.pipe()  # a byte for each SIGCHLD: children to reap
    os.set_blocking(wake, False)
    os.set_blocking(wake_end, False)
    signal.set_wakeup_fd(wake_end, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, _noted)
    statuses: dict[int, int] = {}  # pid: the write end of its status pipe
    while True:
        ready, _, _ = select.select([control.fileno(), wake], [], [])
        if wake in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake, 4096)
            _reap(statuses)
        if control.fileno() not in ready:
            continue
        received = _receive(control)
        if received is None:
            return
        (cwd, env, streams), fds = received
        server = os.getpid()
        pid = os.fork()
        if pid == 0:
            own = (control.fileno(), wake, wake_end, *statuses.values())
            _worker(worker_main, fds, own, cwd, env, streams, server)
        statuses[pid] = fds[1]
        for passed in (fds[0], *fds[2:]):
            os.close(passed)
        control.sendall(_PID.pack(pid))


def _noted(signum: int, frame: object) -> None:
    """SIGCHLD's handler: nothing, the wakeup byte says it all."""


def _receive(control: socket.socket) -> tuple[Any, list[int]] | None:
    """The next request and its file descriptors; ``None`` once the program is gone."""
    head, fds, _, _ = socket.recv_fds(control, _LENGTH.size, 8)
    if not head:
        return None
    try:
        head += _read(control, _LENGTH.size - len(head))
        (length,) = _LENGTH.unpack(head)
        return pickle.loads(_read(control, length)), fds
    except ConnectionResetError:
        return None


def _worker(
    worker_main: Callable[[int], None], fds: list[int], own: tuple[int, ...], cwd: str,
    env: dict[str, str], streams: list[int], server: int,
) -> None:  # fmt: skip
    """In a new fork: become the worker the request asked for, and exit when it is done."""
    code = 1
    try:
        _die_with(server)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in own:
            os.close(fd)
        os.close(fds[1])  # its own status pipe is the server's to write
        for stream, passed in zip(streams, fds[2:], strict=True):
            os.dup2(passed, stream)
            os.close(passed)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        worker_main(fds[0])
        code = 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for opened in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                opened.flush()
        os._exit(code)


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when ``parent`` (the thread that forked it: the
    server has one) exits; exit now if it already has. Linux only: elsewhere a worker
    stops when it next reads its socket and finds its program gone."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # not allowed here (a sandbox): the socket is the fallback
    if os.getppid() != parent:  # it exited before the request took effect
        os._exit(1)


def _reap(statuses: dict[int, int]) -> None:
    """Collect the workers that exited, and write each one's exit code for its pool."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        end = statuses.pop(pid, None)
        if end is not None:
            with contextlib.suppress(OSError):  # its pool stopped listening
                os.write(end, _CODE.pack(os.waitstatus_to_exitcode(status)))
            os.close(end)
