"""Results: persistence options, storage, serializers, storage keys, and trusted loading."""

from __future__ import annotations

import json
import pickle
import stat
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import flowkit
from flowkit import flow, task
from flowkit._engine import events
from flowkit._engine.results.cache import RESULTS
from flowkit._engine.results.storage import check_name
from flowkit.cli import main as flowkit_main
from flowkit.exceptions import MissingResult, SerializationError
from flowkit.filesystems import LocalFileSystem, ResultStorage
from flowkit.serializers import CloudPickleSerializer, PickleSerializer
from flowkit.states import ResultReference
from flowkit.store import Store
from flowkit.tasks import task_input_hash


@pytest.fixture(autouse=True)
def fresh_memo() -> Any:
    RESULTS.forget_memo()
    yield
    RESULTS.forget_memo()


def files(directory: Path) -> list[str]:
    """The names of the files under ``directory``, relative, sorted."""
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


class MemoryStorage:
    """A result storage of our own: the protocol is two methods."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def read_path(self, path: str) -> bytes:
        try:
            return self.files[path]
        except KeyError:
            raise FileNotFoundError(path) from None

    def write_path(self, path: str, content: bytes) -> str:
        self.files[path] = content
        return f"memory://{path}"


class Upper:
    """A serializer of our own: text, upper-cased on the way out."""

    type = "upper"

    def dumps(self, obj: Any) -> bytes:
        return str(obj).upper().encode()

    def loads(self, blob: bytes) -> Any:
        return blob.decode()


# Persistence: on, off, and inherited


def test_results_are_not_persisted_by_default(flowkit_home: Path, backend: str) -> None:
    @task
    def plain(x: int) -> int:
        return x

    @flow
    def main() -> int:
        return plain(1)

    assert main() == 1
    assert files(flowkit_home / "results") == []


def test_persist_result_writes_a_task_result(flowkit_home: Path) -> None:
    @task(persist_result=True, cache_policy=None)
    def kept(x: int) -> int:
        return x * 2

    state = kept(21, return_state=True)
    assert state.result() == 42
    [name] = files(flowkit_home / "results")
    assert name.endswith(".json")
    assert json.loads((flowkit_home / "results" / name).read_bytes()) == 42


def test_a_flow_that_persists_makes_its_tasks_persist_and_cache(
    flowkit_home: Path, backend: str
) -> None:
    calls: list[int] = []

    @task
    def inner(x: int) -> int:
        calls.append(x)
        return x + 1

    @task(persist_result=False)
    def never(x: int) -> int:
        calls.append(-x)
        return x

    @flow(persist_result=True)
    def main() -> list[str]:
        states = [inner(1, return_state=True), inner(1, return_state=True)]
        never(5)
        never(5)
        return [s.name for s in states]

    assert main() == ["Completed", "Cached"]  # DEFAULT policy, once persisted
    assert calls == [1, -5, -5]
    # inner's result and the flow's own; never's is not written
    assert len(files(flowkit_home / "results")) == 2


def test_a_flow_storage_or_serializer_turns_persistence_on(tmp_path: Path) -> None:
    @flow(result_storage=tmp_path / "r")
    def stored() -> int:
        return 1

    @flow(result_serializer="pickle")
    def pickled() -> int:
        return 1

    @flow
    def plain() -> int:
        return 1

    assert (stored.persist_result, pickled.persist_result, plain.persist_result) == (
        True,
        True,
        None,
    )
    assert stored() == 1
    assert [Path(n).suffix for n in files(tmp_path / "r")] == [".json"]


def test_tasks_use_the_flows_storage_and_serializer(tmp_path: Path, backend: str) -> None:
    @task
    def inner() -> dict[str, int]:
        return {"a": 1}

    @flow(result_storage=tmp_path / "flow", result_serializer="pickle")
    def main() -> dict[str, int]:
        return inner()

    assert main() == {"a": 1}
    assert [Path(n).suffix for n in files(tmp_path / "flow")] == [".pickle", ".pickle"]


# Storage


@pytest.mark.parametrize("kind", ["str", "Path", "LocalFileSystem"])
def test_result_storage_takes_a_path_or_a_local_file_system(tmp_path: Path, kind: str) -> None:
    where = tmp_path / "results"
    storage = {"str": str(where), "Path": where, "LocalFileSystem": LocalFileSystem(where)}[kind]
    calls: list[int] = []

    @task(cache_key_fn=task_input_hash, result_storage=storage)  # type: ignore[call-overload]
    def stored(x: int) -> int:
        calls.append(x)
        return x

    assert [stored(3), stored(3)] == [3, 3]
    RESULTS.forget_memo()
    assert stored(3) == 3
    assert calls == [3]
    assert len(files(where)) == 1


def test_result_storage_takes_any_object_with_read_and_write(backend: str) -> None:
    storage = MemoryStorage()
    assert isinstance(storage, ResultStorage)
    assert isinstance(LocalFileSystem(), ResultStorage)
    calls: list[int] = []

    @task(cache_key_fn=task_input_hash, result_storage=storage)  # type: ignore[call-overload]
    def stored(x: int) -> int:
        calls.append(x)
        return x

    @flow
    def main() -> list[str]:
        return [stored(4, return_state=True).name for _ in range(2)]

    assert main() == ["Completed", "Cached"]
    RESULTS.forget_memo()
    assert stored(4, return_state=True).name == "Cached"
    assert calls == [4]
    assert [json.loads(v) for v in storage.files.values()] == [4]


# Serializers


def test_a_serializer_object_writes_and_reads_results(tmp_path: Path) -> None:
    calls: list[str] = []

    @task(cache_key_fn=task_input_hash, result_serializer=Upper(), result_storage=tmp_path / "r")
    def shout(word: str) -> str:
        calls.append(word)
        return word

    assert shout("hi") == "hi"
    RESULTS.forget_memo()
    assert shout("hi") == "HI"  # read back through Upper.loads
    assert calls == ["hi"]
    [name] = files(tmp_path / "r")
    assert (tmp_path / "r" / name).read_bytes() == b"HI"


def test_cloudpickle_is_refused_with_the_fix_when_it_is_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # import raises ModuleNotFoundError
    with pytest.raises(ModuleNotFoundError, match="pip install cloudpickle, or use 'pickle'"):
        task(result_serializer="cloudpickle")(lambda: None)
    with pytest.raises(ModuleNotFoundError, match="pip install cloudpickle"):
        CloudPickleSerializer()


def test_cloudpickle_is_used_when_it_is_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = types.ModuleType("cloudpickle")
    fake.dumps = lambda obj: b"cp:" + pickle.dumps(obj)  # type: ignore[attr-defined]
    fake.loads = lambda blob: pickle.loads(blob[3:])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cloudpickle", fake)

    @task(
        cache_key_fn=task_input_hash, result_serializer="cloudpickle", result_storage=tmp_path / "r"
    )
    def made(x: int) -> set[int]:
        return {x}

    assert made(1) == {1}
    [name] = files(tmp_path / "r")
    assert name.endswith(".cloudpickle")
    assert (tmp_path / "r" / name).read_bytes().startswith(b"cp:")
    RESULTS.forget_memo()
    assert made(1, return_state=True).name == "Cached"
    assert CloudPickleSerializer().loads(CloudPickleSerializer().dumps({2})) == {2}


def test_an_unserializable_result_fails_a_run_that_asked_for_persistence(
    flowkit_home: Path, backend: str
) -> None:
    failures: list[str] = []

    @task(result_serializer="json", cache_key_fn=task_input_hash)
    def tags(x: int) -> set[int]:
        return {x}

    @tags.on_failure
    def noted(task: Any, run: Any, state: Any) -> None:
        failures.append(state.message)

    seen: list[Any] = []

    @flow
    def main() -> None:
        seen.append(tags(1, return_state=True))

    main()
    (state,) = seen
    assert state.is_failed()
    message = str(state.exception)
    assert isinstance(state.exception, SerializationError)
    for words in ("task 'tags'", "a set", "result_serializer='json'", "persist_result=False"):
        assert words in message
    assert failures == [message]
    assert files(flowkit_home / "results") == []  # never a partial file
    assert files(flowkit_home / "cache") == []


def test_an_unpersistable_result_not_asked_for_stays_in_memory(
    flowkit_home: Path, caplog: pytest.LogCaptureFixture, backend: str
) -> None:
    @task(cache_key_fn=task_input_hash)  # caching asks for persistence only implicitly
    def locked(x: int) -> threading.Lock:
        return threading.Lock()

    @flow
    def main() -> Any:
        return locked(1)

    assert isinstance(main(), type(threading.Lock()))
    assert any("keeps it in memory only" in r.getMessage() for r in caplog.records)
    assert [n for n in files(flowkit_home / "results") if "lock" in n.lower()] == []


# result_storage_key


def test_result_storage_key_names_the_file_and_is_the_cache_key(
    tmp_path: Path, backend: str
) -> None:
    calls: list[str] = []

    @task(result_storage_key="hello-{parameters[name]}.json", result_storage=tmp_path / "r")
    def hello(name: str = "world") -> str:
        calls.append(name)
        return f"hello {name}"

    @flow
    def main() -> list[str]:
        return [hello(), hello(name="foo"), hello(name="foo")]

    assert main() == ["hello world", "hello foo", "hello foo"]
    RESULTS.forget_memo()
    assert main() == ["hello world", "hello foo", "hello foo"]  # another flow run: cached
    assert calls == ["world", "foo"]
    assert files(tmp_path / "r") == ["hello-foo.json", "hello-world.json"]
    assert hello.cache_policy is None
    assert hello.persist_result is True


def test_result_storage_key_may_use_the_run(tmp_path: Path) -> None:
    @task(result_storage_key="{task_run.name}/{parameters[x]}", result_storage=tmp_path / "r")
    def named(x: int) -> int:
        return x

    assert named(7) == 7
    assert files(tmp_path / "r") == ["named-0/7"]


def test_a_result_storage_key_that_cannot_be_filled_in_fails_the_run(tmp_path: Path) -> None:
    @task(result_storage_key="{parameters[nope]}", result_storage=tmp_path / "r")
    def missing(x: int) -> int:
        return x

    @task(result_storage_key="../{parameters[x]}", result_storage=tmp_path / "r" / "inner")
    def climbing(x: str) -> str:
        return x

    state = missing(1, return_state=True)
    assert state.is_failed()
    assert "task 'missing': result_storage_key '{parameters[nope]}' cannot be filled" in str(
        state.exception
    )
    state = climbing("x", return_state=True)
    assert state.is_failed()
    assert "without '..'" in str(state.exception)
    assert files(tmp_path / "r") == []


# cache_result_in_memory


def test_cache_result_in_memory_false_keeps_only_where_the_result_is(
    flowkit_home: Path, backend: str
) -> None:
    @task(persist_result=True, cache_result_in_memory=False)
    def big(n: int) -> list[int]:
        return list(range(n))

    seen: list[Any] = []

    @flow
    def main() -> None:
        seen.append(big(3, return_state=True))

    main()
    (state,) = seen
    assert isinstance(state.data, ResultReference)
    assert state.result() == [0, 1, 2]
    assert RESULTS._memo == {}  # pyright: ignore[reportPrivateUsage]


def test_a_result_altered_after_it_left_memory_is_refused(flowkit_home: Path) -> None:
    @task(persist_result=True, cache_policy=None, cache_result_in_memory=False)
    def value() -> int:
        return 1

    state = value(return_state=True)
    [name] = files(flowkit_home / "results")
    (flowkit_home / "results" / name).write_text("2")
    with pytest.raises(ValueError, match="HMAC does not match"):
        state.result()


def test_a_result_gone_from_its_storage_is_a_missing_result(flowkit_home: Path) -> None:
    @task(persist_result=True, cache_policy=None, cache_result_in_memory=False)
    def value() -> int:
        return 1

    state = value(return_state=True)
    [name] = files(flowkit_home / "results")
    (flowkit_home / "results" / name).unlink()
    with pytest.raises(MissingResult, match="that file is gone; run the task again"):
        state.result()


# Flow retries reuse persisted task results


def test_a_retried_flow_reuses_the_persisted_results_of_its_completed_tasks(
    backend: str,
) -> None:
    calls: list[str] = []

    @task
    def extract() -> int:
        calls.append("extract")
        return 10

    @task
    def load(x: int) -> int:
        calls.append("load")
        if calls.count("load") == 1:
            raise ConnectionError("flaky")
        return x

    @flow(retries=1, persist_result=True)
    def etl() -> int:
        return load(extract())

    assert etl() == 10
    assert calls == ["extract", "load", "load"]


def test_without_persistence_a_retried_flow_runs_its_tasks_again(backend: str) -> None:
    calls: list[str] = []

    @task
    def extract() -> int:
        calls.append("extract")
        return 10

    @flow(retries=1)
    def etl() -> int:
        value = extract()
        if calls.count("extract") == 1:
            raise ConnectionError("flaky")
        return value

    assert etl() == 10
    assert calls == ["extract", "extract"]


def test_a_retried_flow_reuses_the_persisted_results_of_its_completed_subflows(
    backend: str,
) -> None:
    calls: list[int] = []

    @flow
    def child(x: int) -> int:
        calls.append(x)
        return 10 * x

    @flow(retries=1, persist_result=True)
    def parent() -> tuple[int, int]:
        first, second = child(1), child(2)  # matched by name and order in each attempt
        if flowkit.runtime.flow_run.run_count == 1:
            raise ConnectionError("flaky")
        return first, second

    assert parent() == (10, 20)
    assert calls == [1, 2]


@pytest.mark.anyio
async def test_a_retried_async_flow_reuses_its_completed_subflows_too() -> None:
    calls: list[str] = []

    @flow(persist_result=True)
    async def child() -> str:
        calls.append("child")
        return "hello"

    @flow(retries=1, persist_result=True)
    async def parent() -> str:
        value = await child()
        if flowkit.runtime.flow_run.run_count == 1:
            raise ConnectionError("flaky")
        return value

    assert await parent() == "hello"
    assert calls == ["child"]


def test_a_reused_subflow_says_so_in_its_state_and_its_record(backend: str) -> None:
    seen: list[Any] = []

    @flow
    def child() -> str:
        return "hello"

    @flow(retries=1, persist_result=True)
    def parent() -> Any:
        state = child(return_state=True)
        if flowkit.runtime.flow_run.run_count == 1:
            raise ConnectionError("flaky")
        return flowkit.quote(state)

    stop = events.subscribe(seen.append)
    try:
        state = parent().unquote()
    finally:
        stop()
    done = [e for e in seen if isinstance(e, events.StateChanged) and e.state.is_final()]
    first, again = [e for e in done if e.run.definition == "child"]
    assert (state.name, state.result()) == ("Completed", "hello")
    assert state.message == (
        f"Reused the result of subflow run {first.run.name!r} in attempt 1 of flow run "
        f"{first.run.parent.name!r}; not run again."
    )
    assert again.cache_note == state.message.removesuffix("; not run again.").replace(
        "Reused", "reused:"
    )
    assert again.result_location == first.result_location is not None


def test_a_reused_subflow_does_not_run_its_hooks_again(backend: str) -> None:
    completed: list[str] = []

    @flow(on_completion=[lambda _flow, run, _state: completed.append(run.name)])
    def child() -> str:
        return "hello"

    @flow(retries=1, persist_result=True)
    def parent() -> str:
        value = child()
        if flowkit.runtime.flow_run.run_count == 1:
            raise ConnectionError("flaky")
        return value

    assert parent() == "hello"
    assert len(completed) == 1


def test_a_retried_flow_runs_a_subflow_that_failed_again(backend: str) -> None:
    calls: list[str] = []

    @flow
    def child() -> str:
        calls.append("child")
        if len(calls) == 1:
            raise ConnectionError("flaky")
        return "hello"

    @flow(retries=1, persist_result=True)
    def parent() -> str:
        return child()

    assert parent() == "hello"
    assert calls == ["child", "child"]


def test_without_persistence_a_retried_flow_runs_its_subflows_again(backend: str) -> None:
    calls: list[str] = []

    @flow
    def child() -> str:
        calls.append("child")
        return "hello"

    @flow(retries=1)
    def parent() -> str:
        value = child()
        if flowkit.runtime.flow_run.run_count == 1:
            raise ConnectionError("flaky")
        return value

    assert parent() == "hello"
    assert calls == ["child", "child"]


@pytest.mark.anyio
async def test_async_flows_and_tasks_persist_and_reuse_too(flowkit_home: Path) -> None:
    calls: list[int] = []

    @task
    async def fetch(x: int) -> int:
        calls.append(x)
        return x

    attempts: list[int] = []

    @flow(retries=1, persist_result=True)
    async def main() -> int:
        value = await fetch(5)
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("flaky")
        return value

    assert await main() == 5
    assert (calls, attempts) == ([5], [1, 1])
    assert len(files(flowkit_home / "results")) == 2


# Trust: HMAC, containment


_EXECUTED: list[str] = []


def _planted() -> str:
    _EXECUTED.append("ran")
    return "planted"


class Exploit:
    def __reduce__(self) -> tuple[Any, ...]:
        return (_planted, ())


def _only(directory: Path) -> Path:
    [path] = [p for p in directory.rglob("*") if p.is_file()]
    return path


def test_a_forged_record_and_pickle_are_a_miss_and_never_unpickled(
    flowkit_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    @task(cache_key_fn=task_input_hash, result_serializer="pickle")
    def counted(x: int) -> dict[str, int]:
        calls.append(x)
        return {"x": x}

    counted(1)
    record_path = _only(flowkit_home / "cache")
    record = json.loads(record_path.read_text())
    (flowkit_home / "results" / record["result"]).write_bytes(pickle.dumps(Exploit()))
    record["mac"] = "0" * 64
    record_path.write_text(json.dumps(record))
    RESULTS.forget_memo()
    assert counted(1) == {"x": 1}
    assert calls == [1, 1]
    assert _EXECUTED == []
    assert any("HMAC does not match" in r.getMessage() for r in caplog.records)
    assert all(r.levelname == "WARNING" for r in caplog.records if "HMAC" in r.getMessage())


def test_a_result_altered_to_other_valid_json_is_a_miss(
    flowkit_home: Path, caplog: pytest.LogCaptureFixture, backend: str
) -> None:
    calls: list[int] = []

    @task(cache_key_fn=task_input_hash)
    def counted(x: int) -> int:
        calls.append(x)
        return x

    counted(5)
    result = _only(flowkit_home / "results")
    result.write_text("6")
    RESULTS.forget_memo()
    assert counted(5) == 5
    assert calls == [5, 5]
    assert any("HMAC does not match" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("name", ["../../elsewhere/evil.pickle", "/tmp/evil.pickle", "a/../../x"])
def test_a_record_pointing_outside_the_storage_is_a_miss(
    flowkit_home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    calls: list[int] = []

    @task(cache_key_fn=task_input_hash, result_serializer="pickle")
    def counted(x: int) -> int:
        calls.append(x)
        return x

    counted(1)
    record_path = _only(flowkit_home / "cache")
    record = json.loads(record_path.read_text())
    record["result"] = name
    record_path.write_text(json.dumps(record))
    RESULTS.forget_memo()
    assert counted(1) == 1
    assert calls == [1, 1]
    assert any("without '..'" in r.getMessage() for r in caplog.records)


def _local_point_class() -> type[Any]:
    class Point:  # defined inside a function: stdlib pickle refuses its instances
        def __init__(self, x: int) -> None:
            self.x = x

    return Point


def test_an_instance_of_a_locally_defined_class_persists_and_loads_back(
    flowkit_home: Path, backend: str
) -> None:
    point = _local_point_class()
    calls: list[int] = []

    @task(cache_key_fn=task_input_hash)
    def make(x: int) -> Any:
        calls.append(x)
        return point(x)

    @flow
    def main() -> Any:
        return make(3)

    first = main()
    RESULTS.forget_memo()
    second = main()  # read back from its file
    assert (first.x, second.x, type(second).__name__, calls) == (3, 3, "Point", [3])
    assert [Path(n).suffix for n in files(flowkit_home / "results")] == [".cloudpickle"]


def test_a_default_cloudpickle_result_altered_is_a_miss_and_never_unpickled(
    flowkit_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    point = _local_point_class()
    calls: list[int] = []

    @task(cache_key_fn=task_input_hash)
    def make(x: int) -> Any:
        calls.append(x)
        return point(x)

    make(1)
    _only(flowkit_home / "results").write_bytes(pickle.dumps(Exploit()))
    RESULTS.forget_memo()
    assert make(1).x == 1
    assert calls == [1, 1]
    assert _EXECUTED == []
    assert any("HMAC does not match" in r.getMessage() for r in caplog.records)


def test_a_local_file_system_refuses_traversal(tmp_path: Path) -> None:
    storage = LocalFileSystem(tmp_path / "root")
    with pytest.raises(ValueError, match="outside the base path"):
        storage.read_path("../secret")


def test_the_result_key_is_private_to_its_owner(flowkit_home: Path) -> None:
    @task(persist_result=True)
    def one() -> int:
        return 1

    one()
    mode = stat.S_IMODE((flowkit_home / "results.key").stat().st_mode)
    assert mode == 0o600
    assert len((flowkit_home / "results.key").read_bytes()) == 32


def test_pickle_serializer_objects_read_what_the_engine_wrote(tmp_path: Path) -> None:
    @task(
        cache_key_fn=task_input_hash,
        result_serializer=PickleSerializer(),
        result_storage=tmp_path / "r",
    )
    def pickled(x: int) -> frozenset[int]:
        return frozenset({x})

    assert pickled(2) == frozenset({2})
    assert PickleSerializer().loads(_only(tmp_path / "r").read_bytes()) == frozenset({2})


# Where a result lives


def test_runs_show_says_where_each_result_lives(
    flowkit_home: Path, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    @task(result_storage_key="double-{parameters[x]}.json")
    def double(x: int) -> int:
        return 2 * x

    @task
    def plain(x: int) -> int:
        return x

    @flow(name="shown")
    def shown() -> int:
        return double(1) + double(1) + plain(1)

    assert shown() == 5
    capsys.readouterr()
    assert flowkit_main(["runs", "show", "shown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    where = str((flowkit_home / "results" / "double-1.json").resolve())
    assert [line.strip(" │") for line in lines if "result:" in line] == [
        f"result: {where}",
        f"result: {where}",  # the Cached run: where its value came from
    ]
    with Store.open() as runs:
        records = runs.tree("shown")
    assert [r.result for r in records] == [None, where, where, None]


@given(st.lists(st.sampled_from(["a", "b", "..", ".", "/", "\\", "c:", "x.json"]), max_size=8))
def test_a_name_that_passes_the_check_stays_inside_the_storage(parts: list[str]) -> None:
    name = "".join(parts)
    root = Path("/srv/results")
    try:
        check_name(name)
    except ValueError:
        return
    assert (root / name).resolve().is_relative_to(root)
