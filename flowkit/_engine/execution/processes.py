"""The worker processes of ``ProcessPoolTaskRunner``: one pool per flow run.

Each worker is a fork of the program's fork server (``forkserver``: a fresh interpreter
that imported the engine once; not a fork of the parent, which runs an event loop and
threads), on one end of a socket pair; bodies and replies cross it as frames, an 8-byte
length and the bytes. The flow's event loop does this I/O itself, without blocking, so a call
costs no thread. A busy worker is sent its next body before it finishes the one it runs
(``QUEUED`` bodies ahead), so it never waits for the flow between bodies.

A worker runs its bodies in the order they were sent: the first one sent and not replied
to (its *head*) is the one it runs, and the ones behind it have not started. That keeps
stopping work exact. A head that is cancelled, or past its deadline, has its worker
killed, and the bodies behind it go to other workers. A body cancelled while it waits
behind another is skipped by the worker, which is told so; if it may have started it
already, the worker is killed instead.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import struct
import sys
from collections import deque
from typing import TYPE_CHECKING, Literal, cast

import anyio
import anyio.to_thread
import attrs

from ...exceptions import WorkerCrashedError
from .remote import serve

if TYPE_CHECKING:
    from ..definition.task_runner import BodyRun
    from .forkserver import Forked

__all__ = ["QUEUED", "ProcessPool", "worker_main"]

QUEUED = 1
"""How many bodies a busy worker is sent ahead of the one it runs."""

_LENGTH = struct.Struct("!Q")
# A header with this bit set is a whole frame: skip the body numbered by the other bits.
_CANCEL = 1 << 63
_CHUNK = 1 << 18


def worker_main(fd: int) -> None:
    """A worker process: serve bodies on the socket ``fd`` until the pool closes it.

    It imports what the parent could import (its ``sys.path`` is the first frame), and
    never the parent's main script: bodies arrive whole, by cloudpickle. It replies to
    each body in turn; to one the pool cancelled before it started, with no bytes.
    """
    # Ctrl-C is for the flow, which stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox = _Inbox(socket.socket(fileno=fd))
    if not inbox.receive(block=True):
        return
    _, path = inbox.bodies.popleft()
    sys.path[:] = cast("list[str]", pickle.loads(path))
    me = f"process {os.getpid()}"
    while True:
        if not inbox.bodies and not inbox.receive(block=True):
            return
        inbox.receive(block=False)  # cancellations that came meanwhile
        index, payload = inbox.bodies.popleft()
        if index in inbox.cancelled:
            inbox.cancelled.discard(index)
            reply = b""
        else:
            reply = serve(payload, me)
        inbox.sock.sendall(_frame(reply))


@attrs.define
class _Inbox:
    """The worker's end: the bodies read and not yet run, and those cancelled."""

    sock: socket.socket
    buffer: bytearray = attrs.field(factory=bytearray)
    bodies: deque[tuple[int, bytes]] = attrs.field(factory=deque)  # by index from -1
    cancelled: set[int] = attrs.field(factory=set)
    count: int = -1  # the first frame, sys.path, is no body

    def receive(self, *, block: bool) -> bool:
        """Read what the pool sent: a frame at least if ``block``, else all there is.

        Returns:
            ``False`` once the pool closed the socket.
        """
        while True:
            try:
                data = self.sock.recv(_CHUNK, 0 if block else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            if not data:
                return False
            self._parse(data)
            if block and self.bodies:
                return True

    def _parse(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        start = 0
        while len(buffer) - start >= _LENGTH.size:
            (header,) = _LENGTH.unpack_from(buffer, start)
            if header & _CANCEL:
                self.cancelled.add(header & ~_CANCEL)
                start += _LENGTH.size
                continue
            end = start + _LENGTH.size + header
            if len(buffer) < end:
                break
            self.bodies.append((self.count, bytes(buffer[start + _LENGTH.size : end])))
            self.count += 1
            start = end
        del buffer[:start]


def _frame(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


def _spawn(ours: socket.socket, theirs: socket.socket) -> Forked:
    """In a thread: start a worker on ``theirs`` and send it ``sys.path`` on ``ours``."""
    # Here, not at the top: importing flowkit must not pay for what only pools use.
    from .forkserver import spawn

    process = spawn(theirs.fileno())
    ours.sendall(_frame(pickle.dumps(sys.path)))
    ours.setblocking(False)  # the loop reads and writes it from now on
    return process


_Outcome = Literal["replied", "crashed", "resend"]


@attrs.define(eq=False)
class _Call:
    """A body on its way to a worker and back."""

    frame: bytes
    # What its run waits on behind the head: set when it has its outcome, or when it
    # became the head (it reads now). Made only when needed: most calls never wait.
    wake: anyio.Event | None = None
    # "crashed": the worker died while it ran it; "resend": it never started there.
    outcome: _Outcome | None = None
    reply: bytes = b""
    index: int | None = None  # its number on its worker, once its frame is all written
    # Its run was cancelled: nobody waits for it, and it must not run.
    abandoned: bool = False
    skipped: bool = False  # the worker was told so in time: it replies with no bytes


@attrs.define(eq=False)
class _Worker:
    """One worker process, as the pool sees it.

    The loop's tasks take turns, without locks: the runs write their frames one after
    the other, in the order they were queued (``send``), and one run at a time reads
    the replies, that of the first call sent that a run still waits for (``wait``).
    """

    pool: ProcessPool
    sock: socket.socket  # the pool's end, non-blocking once the process started
    theirs: socket.socket  # the worker's end, closed here once the process has it
    process: Forked | None = None  # None: still starting
    # Calls sent (or being sent) and not replied to, in order: the first one runs.
    sent: deque[_Call] = attrs.field(factory=deque)
    # Calls whose frames are still to be written, in order: the first one writes.
    writers: deque[_Call] = attrs.field(factory=deque)
    moved: anyio.Event | None = None  # set: the writers may go on (made when needed)
    count: int = 0  # bodies written
    received: bytearray = attrs.field(factory=bytearray)
    # A frame was cut short: the worker takes no more, and is killed as it gets to it.
    broken: bool = False
    dead: bool = False

    @property
    def name(self) -> str:
        pid = self.process.pid if self.process is not None else "not started"
        return f"process {pid}"

    def wake_writers(self) -> None:
        if self.moved is not None:
            self.moved.set()
            self.moved = None

    def queue(self, call: _Call) -> None:
        """Line ``call`` up on the worker, after those queued before."""
        self.sent.append(call)
        self.writers.append(call)

    async def send(self, call: _Call) -> None:
        """Write the frame of ``call`` (queued), after those queued before it.

        If the run is cancelled first, the call is not sent (its outcome is "resend");
        if it is cancelled in the middle of the frame, the call is abandoned and the
        worker takes no more frames.
        """
        data = memoryview(call.frame)
        try:
            while self.process is None or self.writers[0] is not call:
                if self.dead or self.broken:
                    break
                if self.moved is None:
                    self.moved = anyio.Event()
                await self.moved.wait()
            while data and not (self.dead or self.broken):
                try:
                    data = data[self.sock.send(data) :]
                except BlockingIOError:
                    await anyio.wait_writable(self.sock)
            if not data:
                call.index, self.count = self.count, self.count + 1
        except (OSError, anyio.ClosedResourceError):  # the worker is gone
            if len(data) == len(call.frame):
                self._unsend(call)  # it never got there
            self.pool.drop(self, "crashed")  # the body it ran, if any, crashed
        except BaseException:
            if len(data) == len(call.frame):
                self._unsend(call)
            else:
                call.abandoned, self.broken = True, True
            raise
        finally:
            self.writers.remove(call)
            self.wake_writers()
        if self.broken and data:  # behind a cut frame: it must go elsewhere
            self._unsend(call)

    def _unsend(self, call: _Call) -> None:
        if call.outcome is None:
            self.sent.remove(call)
            call.outcome = "resend"

    def reader(self) -> _Call | None:
        """The call whose run reads replies: the first one sent that a run waits for."""
        return next((call for call in self.sent if not call.abandoned), None)

    def wake_reader(self) -> None:
        reader = self.reader()
        if reader is not None and reader.wake is not None:
            reader.wake.set()

    async def wait(self, call: _Call) -> None:
        """Wait until ``call`` has its outcome, reading the worker's replies when its run
        is the reader."""
        while call.outcome is None:
            if self.reader() is not call:
                call.wake = anyio.Event()
                await call.wake.wait()
                call.wake = None
                continue
            try:
                await anyio.wait_readable(self.sock)
            except anyio.ClosedResourceError:
                continue  # the pool killed the worker: the call has its outcome
            self.receive()

    def receive(self) -> None:
        """Read what the worker sent, without blocking, and settle the calls it answers."""
        while not self.dead:
            try:
                data = self.sock.recv(_CHUNK)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:  # the worker died: its head crashed
                self.pool.drop(self, "crashed")
                return
            self.received += data
            self._settle()
            if len(data) < _CHUNK:
                break
        if self.dead or not self.sent:
            return
        head = self.sent[0]
        if head.abandoned and not head.skipped:
            self.pool.kill(self)  # it runs, or is about to run, a cancelled body
        else:
            self.wake_reader()

    def cancel(self, call: _Call) -> None:
        """Tell the worker not to run ``call``, which waits behind another body; if it
        may have started it already, or cannot be told, it is killed when it gets to it."""
        call.abandoned = True
        if call.index is None or self.writers or self.broken:
            return  # it is written by a run that sees it cancelled; or cannot be told
        try:
            written = self.sock.send(_LENGTH.pack(_CANCEL | call.index))
        except OSError:  # full, or gone
            written = 0
        if written < _LENGTH.size:
            self.broken = self.broken or written > 0
            return
        # Told in time if the bodies before it are not all over yet: the worker reads
        # what came before it starts a body.
        call.skipped = not self._answered(self.sent.index(call))
        if not call.skipped:
            self.receive()  # settles those before it; it is head now, and killed

    def _answered(self, count: int) -> bool:
        """Whether the replies to the first ``count`` calls sent are all here."""
        size = _CHUNK
        while True:
            try:
                peeked = self.sock.recv(size, socket.MSG_PEEK)
            except BlockingIOError:
                peeked = b""
            except OSError:
                return False
            data, start = bytes(self.received) + peeked, 0
            for _ in range(count):
                if len(data) - start < _LENGTH.size:
                    break
                (length,) = _LENGTH.unpack_from(data, start)
                start += _LENGTH.size + length
            else:
                if start <= len(data):
                    return True
            if len(peeked) < size:
                return False
            size *= 4

    def _settle(self) -> None:
        received, sent = self.received, self.sent
        start = 0
        while len(received) - start >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(received, start)
            end = start + _LENGTH.size + length
            if len(received) < end:
                break
            call = sent.popleft()
            call.reply, call.outcome = bytes(received[start + _LENGTH.size : end]), "replied"
            if call.wake is not None:
                call.wake.set()
            start = end
        del received[:start]


class ProcessPool:
    """Up to ``size`` worker processes for one flow run, started as work arrives.

    A worker whose body is cancelled or past its deadline is killed (the work stops for
    real) and replaced by a new one when work next needs it.
    """

    kind = "process"

    @classmethod
    async def open(cls, size: int, owner: str) -> ProcessPool:
        """A pool for one run of the flow ``owner``: no worker starts yet, but the
        program's fork server does, if it has none, and imports the engine while the
        flow goes on to its first submit.

        Raises:
            OSError: The fork server cannot be started.
        """
        from .forkserver import start

        await anyio.to_thread.run_sync(start)
        return cls(size, owner)

    def __init__(self, size: int, owner: str) -> None:
        self.size = size
        self.owner = owner
        self._slots = anyio.Semaphore(size * (1 + QUEUED), fast_acquire=True)
        self._workers: list[_Worker] = []  # alive, or starting
        self._processes: list[Forked] = []  # every one started

    async def run(self, run: BodyRun, payload: bytes) -> bytes:
        call = _Call(_frame(payload))
        async with self._slots:
            while True:
                worker, new = self._place(call)
                try:
                    if new:
                        await self._start(worker)
                    await worker.send(call)
                    await worker.wait(call)
                except BaseException:  # cancelled, or past its deadline: stop the work
                    self._abandon(worker, call)
                    raise
                if call.outcome == "replied":
                    return call.reply
                if call.outcome == "crashed":
                    raise await _crashed(run, worker)
                call.outcome = None  # it never started: again

    def _place(self, call: _Call) -> tuple[_Worker, bool]:
        """Queue ``call`` on an idle worker, else on a new one if there may be more
        (``True``: its run starts it), else on the least busy one."""
        usable = [worker for worker in self._workers if not worker.broken]
        worker = min(usable, key=lambda worker: len(worker.sent), default=None)
        new = worker is None or (bool(worker.sent) and len(usable) < self.size)
        if new:
            worker = _Worker(self, *socket.socketpair())
            self._workers.append(worker)  # from now on, runs may queue on it
        assert worker is not None
        worker.queue(call)
        return worker, new

    async def _start(self, worker: _Worker) -> None:
        try:
            with worker.theirs:
                process = await anyio.to_thread.run_sync(_spawn, worker.sock, worker.theirs)
        except BaseException:
            self.drop(worker, "resend")
            raise
        self._processes.append(process)
        worker.process = process
        worker.wake_writers()
        if worker.dead:  # killed while it started
            process.kill()

    def _abandon(self, worker: _Worker, call: _Call) -> None:
        """``call``'s run was cancelled: make sure its body does not run on."""
        if call.outcome is not None or worker.dead:
            return
        if worker.sent[0] is not call:
            worker.cancel(call)
        else:
            call.abandoned = True
            worker.receive()  # its reply may be in: then it is over, and nothing runs
            if call.outcome is None and not worker.dead:
                self.kill(worker)
        if not worker.dead:
            worker.wake_reader()  # if it was the reader, the next one takes over

    def kill(self, worker: _Worker) -> None:
        """Kill ``worker``, whose head is cancelled; the calls behind it go elsewhere."""
        if worker.process is not None:
            worker.process.kill()  # aclose reaps it
        self.drop(worker, "resend")

    def drop(self, worker: _Worker, head: Literal["crashed", "resend"]) -> None:
        """Forget a dead worker: its head's outcome is ``head``, the others are resent."""
        if worker.dead:
            return
        worker.dead = True
        worker.wake_writers()
        anyio.notify_closing(worker.sock)
        worker.sock.close()
        worker.theirs.close()
        self._workers.remove(worker)
        outcome = head
        for call in worker.sent:
            call.outcome, outcome = outcome, "resend"
            if call.wake is not None:
                call.wake.set()
        worker.sent.clear()

    async def aclose(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            if worker.sent and worker.process is not None:  # cancelled bodies, queued
                worker.process.kill()
            worker.sock.close()  # the worker sees the end of its input, and returns
            worker.theirs.close()
        processes, self._processes = self._processes, []
        if processes:
            await anyio.to_thread.run_sync(_stop_all, processes)


async def _crashed(run: BodyRun, worker: _Worker) -> WorkerCrashedError:
    import subprocess

    process = worker.process
    assert process is not None
    try:
        code = await anyio.to_thread.run_sync(process.wait, 5)
    except subprocess.TimeoutExpired:  # still dying: the message says so
        code = None
    return WorkerCrashedError(
        f"task run {run.name!r}: its worker process (pid {process.pid}) died before it "
        f"replied (exit code {code}); give the task retries to try again in a new "
        "worker, and look for what killed it (memory?)",
        worker=worker.name,  # it sent no reply to say so
    )


def _stop_all(processes: list[Forked]) -> None:
    import subprocess

    for process in processes:
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.close()
