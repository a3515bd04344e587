"""Generator tasks: values stream to their reader (both backends)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from flowkit import flow, runtime, task
from flowkit._engine import events
from flowkit.exceptions import TaskTimeoutError


def final_states() -> tuple[dict[str, str], Any]:
    seen: dict[str, str] = {}
    stop = events.subscribe(lambda e: seen.__setitem__(e.run.name, e.state.name))
    return seen, stop


def test_sync_generator_steps_in_order_with_its_reader(backend: str) -> None:
    log: list[str] = []

    @task
    def generator() -> Iterator[int]:
        for i in range(3):
            log.append(f"yield {i} in {runtime.task_run.name}")
            yield i

    @task
    def consumer(x: int) -> None:
        log.append(f"consume {x}")

    @flow
    def main() -> None:
        for value in generator():
            log.append(f"reader sees run {runtime.task_run.name}")
            consumer(value)

    main()
    assert log == [
        "yield 0 in generator-0", "reader sees run None", "consume 0",
        "yield 1 in generator-0", "reader sees run None", "consume 1",
        "yield 2 in generator-0", "reader sees run None", "consume 2",
    ]  # fmt: skip


@pytest.mark.anyio
async def test_async_generator_streams_to_async_for() -> None:
    @task
    async def numbers(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await anyio.lowlevel.checkpoint()
            yield i

    @flow
    async def main() -> list[int]:
        return [x async for x in numbers(4)]

    assert await main() == [0, 1, 2, 3]


def test_run_is_running_while_it_yields_then_completed(backend: str) -> None:
    @task
    def two() -> Iterator[int]:
        yield 1
        yield 2

    stream = two()
    next(stream)
    assert stream.run.state.name == "Running"  # type: ignore[attr-defined]
    assert list(stream) == [2]
    assert stream.run.state.name == "Completed"  # type: ignore[attr-defined]


def test_break_closes_the_generator_at_once(backend: str) -> None:
    log: list[str] = []
    seen, stop = final_states()

    @task
    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            log.append("closed")

    @flow
    def main() -> None:
        for value in endless():
            if value == 2:
                break
        log.append("after the loop")

    try:
        main()
    finally:
        stop()
    assert log == ["closed", "after the loop"]
    assert seen["endless-0"] == "Completed"


@pytest.mark.anyio
async def test_aclose_and_the_flows_end_close_async_streams() -> None:
    log: list[str] = []

    @task
    async def endless() -> AsyncIterator[int]:
        try:
            while True:
                yield 1
                await anyio.lowlevel.checkpoint()
        finally:
            log.append("closed")

    @flow
    async def main() -> None:
        stream = endless()
        await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]
        log.append("after aclose")
        async for _ in endless():
            break  # left open: the flow's end closes it

    await main()
    assert log == ["closed", "after aclose", "closed"]


def test_an_error_in_the_body_fails_the_run_and_reaches_the_reader(backend: str) -> None:
    seen, stop = final_states()

    @task
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("mid-stream")

    @flow
    def main() -> list[int]:
        got: list[int] = []
        with pytest.raises(ValueError, match="mid-stream"):  # noqa: PT012
            for value in broken():
                got.append(value)
        return got

    try:
        assert main() == [1]
    finally:
        stop()
    assert seen["broken-0"] == "Failed"


def test_buffer_lets_the_producer_run_ahead_but_bounded(backend: str) -> None:
    produced: list[int] = []
    lead: list[int] = []

    @task(buffer=2)
    def ahead() -> Iterator[int]:
        for i in range(10):
            produced.append(i)
            yield i

    @flow
    def main() -> list[int]:
        read: list[int] = []
        for value in ahead():
            lead.append(len(produced) - len(read))
            read.append(value)
        return read

    assert main() == list(range(10))
    assert max(lead) <= 2 + 2  # the buffer, the value in hand and one being put


@pytest.mark.anyio
async def test_buffered_async_stream_delivers_everything() -> None:
    @task(buffer=4)
    async def ahead() -> AsyncIterator[int]:
        for i in range(20):
            yield i

    @flow
    async def main() -> list[int]:
        return [x async for x in ahead()]

    assert await main() == list(range(20))


def test_a_consumer_records_the_generator_as_its_input(backend: str) -> None:
    inputs: list[dict[str, list[str]]] = []
    producer: list[str | None] = []

    @task
    def generator() -> Iterator[list[int]]:
        producer.append(runtime.task_run.id)
        for i in range(2):
            yield [i]

    @task
    def consumer(x: list[int]) -> None:
        inputs.append(runtime.task_run.task_inputs)

    @flow
    def main() -> None:
        for value in generator():
            consumer(value)

    main()
    assert inputs == [{"x": [producer[0]]}] * 2


def test_returned_generators_are_consumed_into_lists(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def gen() -> Iterator[int]:
        yield from [1, 2, 3]
        print("Generator consumed!")

    @task
    def f() -> Iterator[int]:
        return gen()

    @flow
    def main() -> tuple[Any, Any, Any]:
        return f(), f.submit().result(), f(return_state=True).result()

    assert main() == ([1, 2, 3], [1, 2, 3], [1, 2, 3])
    assert capsys.readouterr().out.count("Generator consumed!") == 3


def test_a_task_returning_an_unread_stream_returns_its_values(backend: str) -> None:
    seen, stop = final_states()

    @task
    def two() -> Iterator[int]:
        yield 1
        yield 2

    @task
    def hands_on() -> Iterator[int]:
        return two()

    @flow
    def main() -> Any:
        return hands_on()

    try:
        assert main() == [1, 2]
    finally:
        stop()
    assert (seen["two-0"], seen["hands_on-0"]) == ("Completed", "Completed")


@pytest.mark.anyio
async def test_an_async_task_returning_an_unread_stream_returns_its_values() -> None:
    @task
    async def two() -> AsyncIterator[int]:
        yield 1
        await anyio.lowlevel.checkpoint()
        yield 2

    @task
    async def hands_on() -> AsyncIterator[int]:
        return two()

    @flow
    async def main() -> Any:
        return await hands_on()

    assert await main() == [1, 2]


def test_a_flow_returning_an_unread_stream_returns_its_values(backend: str) -> None:
    @task
    def two() -> Iterator[int]:
        yield 1
        yield 2

    @flow
    def main() -> Iterator[int]:
        return two()

    assert main() == [1, 2]  # type: ignore[comparison-overlap]


@pytest.mark.anyio
async def test_an_async_flow_returning_an_unread_stream_returns_its_values() -> None:
    @task(buffer=1)
    async def two() -> AsyncIterator[int]:
        yield 1
        yield 2

    @flow
    async def main() -> AsyncIterator[int]:
        return two()

    assert await main() == [1, 2]  # type: ignore[comparison-overlap]


def test_a_sync_flow_returning_an_async_stream_says_to_make_it_async(backend: str) -> None:
    seen, stop = final_states()

    @task
    async def one() -> AsyncIterator[int]:
        yield 1

    @flow
    def main() -> AsyncIterator[int]:
        return one()

    try:
        with pytest.raises(TypeError, match=r"flow run .* returned an async generator.*async"):
            main()
    finally:
        stop()
    assert seen["one-0"] == "Cancelled"


def test_a_stream_closed_before_it_was_read_never_runs_its_body(backend: str) -> None:
    log: list[str] = []
    seen, stop = final_states()

    @task
    def two() -> Iterator[int]:
        log.append("body ran")
        yield 1

    kept: list[Iterator[int]] = []

    @flow
    def main() -> str:
        two().close()
        two()  # dropped: closed at once
        kept.append(two())  # still open when the flow ends, which closes it
        return "done"

    try:
        assert main() == "done"
    finally:
        stop()
    assert log == []
    assert [seen[f"two-{i}"] for i in range(3)] == ["Cancelled"] * 3


@pytest.mark.anyio
async def test_an_async_stream_closed_before_it_was_read_never_runs_its_body() -> None:
    log: list[str] = []
    seen, stop = final_states()

    @task
    async def two() -> AsyncIterator[int]:
        log.append("body ran")
        yield 1

    @flow
    async def main() -> str:
        await two().aclose()  # type: ignore[attr-defined]
        two()  # left open: the flow's end closes it
        return "done"

    try:
        assert await main() == "done"
    finally:
        stop()
    assert log == []
    assert [seen["two-0"], seen["two-1"]] == ["Cancelled"] * 2


def test_yielded_generators_are_handed_out_unconsumed(capsys: pytest.CaptureFixture[str]) -> None:
    def gen() -> Iterator[int]:
        yield from [1, 2, 3]
        print("Generator consumed!")

    @task
    def f() -> Iterator[Iterator[int]]:
        yield gen()

    generator = next(f())
    assert "Generator consumed!" not in capsys.readouterr().out
    assert list(generator) == [1, 2, 3]
    assert "Generator consumed!" in capsys.readouterr().out


def test_submitting_a_generator_task_gives_its_values(backend: str) -> None:
    @task
    def numbers() -> Iterator[int]:
        yield from range(3)

    @task
    async def anumbers() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    @flow
    def main() -> tuple[list[int], list[int]]:
        return numbers.submit().result(), anumbers.submit().result()

    assert main() == ([0, 1, 2], [0, 1, 2])


def test_a_step_past_the_deadline_times_the_stream_out(backend: str) -> None:
    release = threading.Event()
    seen, stop = final_states()

    @task(timeout_seconds=0.1)
    def slow() -> Iterator[int]:
        yield 1
        release.wait(5)
        yield 2

    @flow
    def main() -> list[int]:
        got: list[int] = []
        with pytest.raises(TaskTimeoutError):  # noqa: PT012
            for value in slow():
                got.append(value)
        return got

    # The body steps in the reader's own thread: blocked in C, it is stopped as soon as
    # the wait returns, and never yields 2.
    opener = threading.Timer(0.3, release.set)
    opener.start()
    try:
        assert main() == [1]
    finally:
        opener.join()
        stop()
    assert seen["slow-0"] == "TimedOut"


@pytest.mark.anyio
async def test_an_async_step_past_the_deadline_times_the_stream_out() -> None:
    @task(timeout_seconds=0.05)
    async def slow() -> AsyncIterator[int]:
        yield 1
        await anyio.sleep_forever()
        yield 2

    @flow
    async def main() -> list[int]:
        got: list[int] = []
        with pytest.raises(TaskTimeoutError):  # noqa: PT012
            async for value in slow():
                got.append(value)
        return got

    assert await main() == [1]


def test_a_stream_is_retried_only_before_it_delivered(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    @task(retries=2)
    def early() -> Iterator[int]:
        attempts.append(runtime.task_run.run_count)
        if len(attempts) == 1:
            raise ValueError("before any value")
        yield 1

    @task(retries=2)
    def late() -> Iterator[int]:
        yield 1
        raise ValueError("after a value")

    @flow
    def main() -> list[int]:
        values = list(early())
        with pytest.raises(ValueError, match="after a value"):
            list(late())
        return values

    assert main() == [1]
    assert attempts == [1, 2]
    assert any("is not retried" in r.getMessage() for r in caplog.records)


def test_generator_flows_are_refused() -> None:
    with pytest.raises(TypeError, match="only tasks can stream"):

        @flow
        def streaming() -> Iterator[int]:
            yield 1


@pytest.mark.parametrize("buffer", [0, -1])
def test_bad_buffer_names_the_task(buffer: int) -> None:
    with pytest.raises(ValueError, match=r"task 'ahead'.*buffer"):

        @task(buffer=buffer)
        def ahead() -> Iterator[int]:
            yield 1


def test_stream_logs_as_its_own_run(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flowkit")

    @task(log_prints=True)
    def talker() -> Iterator[int]:
        print("inside")
        yield 1

    @flow
    def main() -> None:
        list(talker())

    main()
    record = next(r for r in caplog.records if r.getMessage() == "inside")
    assert record.task_run_name == "talker-0"  # type: ignore[attr-defined]
