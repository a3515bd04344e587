"""``flowkit.tags``: tags put on every run started inside a block."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

import flowkit
from flowkit import flow, runtime, tags, task
from flowkit.context import current_tags


@task
def task_tags() -> list[str]:
    return runtime.task_run.tags


@task
async def async_task_tags() -> list[str]:
    await anyio.lowlevel.checkpoint()
    return runtime.task_run.tags


# The block


def test_no_tags_outside_any_block() -> None:
    assert current_tags() == frozenset()


def test_block_yields_the_tags_in_force() -> None:
    with tags("a", "b") as current:
        assert current == frozenset({"a", "b"})


def test_current_tags_inside_a_block() -> None:
    with tags("a"):
        assert current_tags() == frozenset({"a"})


def test_nested_blocks_combine() -> None:
    with tags("a"), tags("b") as inner:
        assert inner == frozenset({"a", "b"})
        assert current_tags() == frozenset({"a", "b"})


def test_repeated_tags_count_once() -> None:
    with tags("a"), tags("a", "a") as inner:
        assert inner == frozenset({"a"})


def test_empty_block_keeps_the_outer_tags() -> None:
    with tags("a"), tags() as inner:
        assert inner == frozenset({"a"})


def test_inner_block_end_restores_the_outer_tags() -> None:
    with tags("a"):
        with tags("b"):
            pass
        assert current_tags() == frozenset({"a"})


def test_tags_are_gone_after_the_block() -> None:
    with tags("a"):
        pass
    assert current_tags() == frozenset()


def test_tags_are_restored_when_the_block_raises() -> None:
    with pytest.raises(ValueError, match="inside"), tags("a"):
        raise ValueError("inside")
    assert current_tags() == frozenset()


@pytest.mark.parametrize("bad", [1, None, b"bytes", ["a"]])
def test_non_string_tag_is_refused_with_the_fix(bad: object) -> None:
    refused = r"tags\(\) takes strings, got .*; write tags\('a', 'b'\)"
    with pytest.raises(TypeError, match=refused), tags("ok", bad):  # type: ignore[arg-type]
        pass
    assert current_tags() == frozenset()


def test_tags_is_exported_at_the_top_level() -> None:
    assert flowkit.tags is tags


# Tags on runs


def test_task_run_gets_the_tags_of_the_block(backend: str) -> None:
    @flow
    def main() -> list[str]:
        with tags("a"), tags("b"):
            return task_tags()

    assert main() == ["a", "b"]


def test_task_run_after_the_block_has_no_block_tags(backend: str) -> None:
    @flow
    def main() -> list[list[str]]:
        with tags("a"):
            inside = task_tags()
        return [inside, task_tags()]

    assert main() == [["a"], []]


def test_block_around_a_flow_call_tags_its_task_runs(backend: str) -> None:
    @flow
    def main() -> list[str]:
        return task_tags()

    with tags("outer"):
        assert main() == ["outer"]


def test_block_tags_join_the_decorator_tags(backend: str) -> None:
    @flow
    def main() -> list[str]:
        with tags("ctx"):
            return task_tags.with_options(tags=["own"])()

    assert main() == ["ctx", "own"]


def test_block_inside_a_task_tags_the_runs_it_calls(backend: str) -> None:
    @task
    def outer() -> tuple[list[str], list[str]]:
        with tags("inner"):
            return task_tags(), runtime.task_run.tags

    @flow
    def main() -> tuple[list[str], list[str]]:
        return outer()

    called, own = main()
    assert called == ["inner"]
    assert own == []


def test_submitted_task_run_gets_the_tags_of_the_block(backend: str) -> None:
    @flow
    def main() -> list[str]:
        with tags("submitted"):
            future = task_tags.submit()
        return future.result()

    assert main() == ["submitted"]


# Async code


@pytest.mark.anyio
async def test_tags_hold_across_awaits() -> None:
    with tags("a"):
        await anyio.lowlevel.checkpoint()
        assert current_tags() == frozenset({"a"})
    assert current_tags() == frozenset()


@pytest.mark.anyio
async def test_async_task_run_gets_the_tags_of_the_block() -> None:
    @flow
    async def main() -> list[str]:
        with tags("b"), tags("a"):
            return await async_task_tags()

    assert await main() == ["a", "b"]


@pytest.mark.anyio
async def test_block_around_an_async_flow_tags_it_and_its_tasks() -> None:
    @flow
    async def main() -> tuple[list[str], list[str]]:
        return runtime.flow_run.tags, await async_task_tags()

    with tags("outer"):
        assert await main() == (["outer"], ["outer"])
    assert current_tags() == frozenset()


@pytest.mark.anyio
async def test_sync_task_called_from_async_code_gets_the_block_tags() -> None:
    @flow
    async def main() -> list[str]:
        with tags("x"):
            return task_tags()

    assert await main() == ["x"]


@pytest.mark.anyio
async def test_concurrent_tasks_keep_their_own_tags() -> None:
    seen: dict[str, frozenset[str]] = {}

    async def worker(tag: str) -> None:
        with tags(tag):
            await anyio.lowlevel.checkpoint()
            await anyio.lowlevel.checkpoint()
            seen[tag] = current_tags()

    with tags("shared"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker, "left")
            tg.start_soon(worker, "right")
    assert seen == {
        "left": frozenset({"shared", "left"}),
        "right": frozenset({"shared", "right"}),
    }


@pytest.mark.anyio
async def test_concurrent_async_task_runs_keep_their_own_tags() -> None:
    @flow
    async def main() -> dict[str, list[str]]:
        seen: dict[str, list[str]] = {}

        async def one(tag: str) -> None:
            with tags(tag):
                seen[tag] = await async_task_tags()

        async with anyio.create_task_group() as tg:
            for tag in ("a", "b", "c"):
                tg.start_soon(one, tag)
        return seen

    assert await main() == {"a": ["a"], "b": ["b"], "c": ["c"]}
