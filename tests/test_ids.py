"""Run ids (``_engine/ids.py``): random version-4 UUIDs, never the same twice."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from uuid import UUID, SafeUUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowkit._engine.ids import new_id, version_4


def test_ids_are_version_4_uuids() -> None:
    made = new_id()
    assert isinstance(made, uuid.UUID)
    assert made.version == 4
    assert made.variant == uuid.RFC_4122


def test_threads_drawing_at_once_never_get_the_same_id() -> None:
    found: list[list[uuid.UUID]] = [[] for _ in range(8)]

    def draw(into: list[uuid.UUID]) -> None:
        into.extend(new_id() for _ in range(2_000))  # many draws of the OS's bytes

    threads = [threading.Thread(target=draw, args=(f,)) for f in found]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for f in found for i in f]
    assert len(set(every)) == len(every) == 16_000


FORKING = """
import os, sys
from flowkit._engine.ids import new_id

new_id()  # the parent has drawn its bytes before it forks
pid = os.fork()
ids = [new_id().hex for _ in range(64)]
if pid == 0:
    sys.stdout.write("child " + " ".join(ids) + "\\n")
    sys.stdout.flush()
    os._exit(0)
os.waitpid(pid, 0)
sys.stdout.write("parent " + " ".join(ids) + "\\n")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_forked_child_draws_ids_its_parent_never_hands_out() -> None:
    # In a fresh single-threaded interpreter: forking the test process, which runs
    # threads, is not safe.
    done = subprocess.run(
        [sys.executable, "-c", FORKING], capture_output=True, text=True, check=True
    )
    drawn = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    child, parent = set(drawn["child"].split()), set(drawn["parent"].split())
    assert len(child) == len(parent) == 64
    assert not child & parent


@given(st.binary(min_size=16, max_size=16))
def test_an_id_is_what_uuid_makes_of_its_bytes(random: bytes) -> None:
    made = version_4(random)
    assert made == UUID(bytes=random, version=4)
    assert str(made) == str(UUID(bytes=random, version=4))
    assert made.is_safe is SafeUUID.unknown
