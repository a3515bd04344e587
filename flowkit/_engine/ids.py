"""Run ids: random (version 4) UUIDs, as unique as ``uuid4()``'s, made cheaply."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from uuid import UUID

__all__ = ["new_id"]

# Run ids are random (version 4) UUIDs like ``uuid4()``'s, with their bytes drawn from the
# OS a few thousand at a time: ``os.urandom`` releases the GIL, and a thread that releases
# it while another (the store's writer) is busy waits up to a switch interval to get it
# back, which cost more than the rest of a task run's bookkeeping.
_IDS_PER_DRAW = 256
_drawn: tuple[bytes, Iterator[int]] = (b"", iter(()))


def new_id() -> UUID:
    """A new random run id, unique as ``uuid4()``'s."""
    while True:
        drawn, taken = _drawn
        # ``next`` on a count is atomic: two threads never take the same id.
        if (i := next(taken, _IDS_PER_DRAW)) < _IDS_PER_DRAW:
            return UUID(bytes=drawn[i * 16 : i * 16 + 16], version=4)
        _draw()


def _draw() -> None:
    global _drawn
    _drawn = (os.urandom(16 * _IDS_PER_DRAW), itertools.count())


# A forked process must not hand out the ids its parent has drawn.
os.register_at_fork(after_in_child=_draw)
