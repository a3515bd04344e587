"""A flow run's nursery: the task group its task runs are children in, and what goes
with it while the flow's body runs (its loop, its worker-thread limiters, the runs
waiting to start).

It exists while the flow's task group does: ``FlowRun.nursery`` is ``None`` before and
after. Once the body is over the nursery is *closed*: its task group only waits for the
children it has (cancelled, if the body was), and a run that would start in it now ends
Cancelled instead.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import attrs

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.lowlevel import EventLoopToken

    from ..definition.task_runner import Executor
    from .runs import Run
    from .venue import Venue

__all__ = ["Nursery"]


@attrs.define(eq=False)
class Nursery:
    """Where a flow run's children live.

    Attributes:
        task_group: The flow's task group.
        token: A handle on the flow's event loop, for threads that start work on it.
        loop_thread: The ident of the thread running that loop.
        library: The loop's library, ``"asyncio"`` or ``"trio"``.
        limiter: How many sync task bodies may hold a worker thread at once.
        executor: Where submitted task bodies run, for a flow with a process or Dask
            task runner; ``None``: worker threads.
        remote: The venue of the submitted runs on that executor, made by
            ``children`` when it first needs it.
        threads: Bounds nothing: lets worker threads that lent their slot back wait
            without starving the thread pool.
        spawns: Runs submitted from threads, waiting for the loop to start them: each
            entry starts its runs, or cancels them once the nursery is closed.
        spawn_lock: Guards ``spawns`` and ``drain_scheduled``.
        drain_scheduled: Whether a loop callback will start the ``spawns``.
        unthreaded: Sync runs started and not yet given a worker thread (or ended).
        backlog: Runs that wait to start until fewer than ``limiter`` allows are
            unthreaded: each entry starts its run, or cancels it once the nursery is
            closed (see ``children.launch``).
        closed: Whether the flow's body is over, so that no run starts here any more.
    """

    task_group: TaskGroup
    token: EventLoopToken
    loop_thread: int
    library: str
    limiter: anyio.CapacityLimiter
    threads: anyio.CapacityLimiter
    executor: Executor | None = None
    remote: Venue | None = None
    spawns: list[Callable[[], None]] = attrs.field(factory=list, repr=False)
    spawn_lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)
    drain_scheduled: bool = False
    unthreaded: set[Run] = attrs.field(factory=set, repr=False)
    backlog: deque[Callable[[], None]] = attrs.field(factory=deque, repr=False)
    closed: bool = False

    def runs_here(self) -> bool:
        """Whether this thread runs the flow's event loop."""
        return threading.get_ident() == self.loop_thread

    def awaits_thread(self, run: Run) -> None:
        """Note that sync ``run`` started and waits for a worker thread."""
        self.unthreaded.add(run)

    def threaded(self, run: Run) -> None:
        """Note that ``run`` got its worker thread, or ended without one: if it was
        waiting for one, start as many runs of the backlog as may now wait."""
        unthreaded = self.unthreaded
        if run not in unthreaded:
            return
        unthreaded.remove(run)
        backlog = self.backlog
        while backlog and len(unthreaded) < self.limiter.total_tokens:
            backlog.popleft()()

    def close(self) -> None:
        """On the loop, as the flow's body ends: no run starts here any more, and those
        in the backlog or submitted from threads and not yet started end Cancelled now.

        A body that returned waited for its children, so there are none then; one that
        was cancelled, timed out or interrupted may leave many. They must not wait for a
        thread that a run ending in the task group would hand them, or for a loop
        callback: they would start in a task group that is ending, or in none, or never.
        """
        self.closed = True
        backlog = self.backlog
        while backlog:  # each entry sees the nursery closed and cancels its run
            backlog.popleft()()
        with self.spawn_lock:
            spawns, self.spawns = self.spawns, []
        for cancel_them in spawns:  # likewise
            cancel_them()
