"""Run ids: random (version 4) UUIDs, as unique as ``uuid4()``'s, made cheaply."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from uuid import UUID, SafeUUID

__all__ = ["new_id", "version_4"]

# Run ids are random (version 4) UUIDs like ``uuid4()``'s, with their bytes drawn from the
# OS a few thousand at a time: ``os.urandom`` releases the GIL, and a thread that releases
# it while another (the store's writer) is busy waits up to a switch interval to get it
# back, which cost more than the rest of a task run's bookkeeping.
_IDS_PER_DRAW = 256
# The version (4) and variant (RFC 4122) bits, as ``UUID(..., version=4)`` sets them.
_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_SET = (0x8000 << 48) | (4 << 76)
_drawn: tuple[bytes, Iterator[int]] = (b"", iter(()))
_make = object.__new__
_set = object.__setattr__


def new_id() -> UUID:
    """A new random run id, unique as ``uuid4()``'s."""
    while True:
        drawn, taken = _drawn
        # ``next`` on a count is atomic: two threads never take the same id.
        if (i := next(taken, _IDS_PER_DRAW)) < _IDS_PER_DRAW:
            return version_4(drawn[i * 16 : i * 16 + 16])
        _draw()


def version_4(random: bytes) -> UUID:
    """``UUID(bytes=random, version=4)``, without its checks of what is right here by
    construction (sixteen bytes): a third of the cost of a run id."""
    made = _make(UUID)
    _set(made, "int", int.from_bytes(random) & _CLEAR | _SET)
    _set(made, "is_safe", SafeUUID.unknown)
    return made


def _draw() -> None:
    global _drawn
    _drawn = (os.urandom(16 * _IDS_PER_DRAW), itertools.count())


# A forked process must not hand out the ids its parent has drawn.
os.register_at_fork(after_in_child=_draw)
