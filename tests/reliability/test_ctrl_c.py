"""Ctrl-C during an async flow records its runs Crashed on asyncio (uvloop's too) as on
trio (asyncio delivers it to the flow as a cancellation of ``asyncio.run``'s main task),
and the caller still gets its KeyboardInterrupt."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Callable

import anyio
import pytest

from flowkit import flow
from flowkit._engine import events

pytestmark = pytest.mark.every_loop  # sync flows on uvloop too (see conftest.py)

SCRIPT = textwrap.dedent(
    """
    import sys
    import anyio
    from flowkit import flow, task
    from flowkit._engine import events

    finals = []
    events.subscribe(
        lambda e: finals.append(f"{e.run.name.split('-')[0]}:{e.state.name}")
        if getattr(e, "state", None) is not None and e.state.is_final() else None
    )

    @task
    async def slow():
        print("ready", flush=True)
        await anyio.sleep(30)

    @flow(flow_run_name="interrupted")
    async def main():
        await slow()

    try:
        if sys.argv[1] == "asyncio":
            import asyncio
            asyncio.run(main())
        elif sys.argv[1] == "uvloop":
            import uvloop
            uvloop.run(main())
        else:
            import trio
            trio.run(main)
    except KeyboardInterrupt:
        print("caller got KeyboardInterrupt", *finals, flush=True)
        sys.exit(3)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("loop", ["asyncio", "trio", "uvloop"])
def test_ctrl_c_crashes_an_async_flow_and_its_runs(
    loop: str, ctrl_c: Callable[..., tuple[int, str, str]]
) -> None:
    code, out, err = ctrl_c(SCRIPT, loop, timeout=20)
    assert code == 3, err
    assert out.split() == [
        "caller",
        "got",
        "KeyboardInterrupt",
        "slow:Crashed",
        "interrupted:Crashed",
    ]
    assert "Finished in state Crashed('Execution was interrupted by KeyboardInterrupt')" in err


def test_a_plain_cancellation_of_an_async_flow_on_asyncio_is_still_cancelled() -> None:
    finals: list[str] = []
    stop = events.subscribe(
        lambda e: (
            finals.append(e.state.name)
            if isinstance(e, events.StateChanged) and e.state.is_final()
            else None
        )
    )

    @flow
    async def waits() -> None:
        await anyio.sleep(30)

    async def main() -> None:
        with anyio.move_on_after(0.05):
            await waits()

    try:
        asyncio.run(main())
    finally:
        stop()
    assert finals == ["Cancelled"]
