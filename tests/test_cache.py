"""Caching and persisted results. Expiry uses an injected clock, never a sleep."""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowkit import flow, task
from flowkit._engine.results.cache import RESULTS, Unencodable, canonical, digest
from flowkit.cache_policies import INPUTS, RUN_ID, TASK_SOURCE
from flowkit.store import Store
from flowkit.tasks import task_input_hash
from flowkit.testing import VirtualClock


@pytest.fixture(autouse=True)
def fresh_memo() -> Iterator[None]:
    RESULTS.forget_memo()
    yield
    RESULTS.forget_memo()


def counting_task(**options: Any) -> tuple[Any, list[Any]]:
    calls: list[Any] = []

    @task(name="counted", **options)
    def counted(x: Any) -> Any:
        calls.append(x)
        return {"x": x}

    return counted, calls


def test_a_hit_returns_the_stored_value_without_running(backend: str) -> None:
    counted, calls = counting_task(cache_key_fn=task_input_hash)

    @flow
    def main() -> tuple[Any, ...]:
        first = counted(1, return_state=True)
        second = counted(1, return_state=True)
        return first.name, second.name, second.result(), second.is_completed()

    assert main() == ("Completed", "Cached", {"x": 1}, True)
    assert calls == [1]


def test_a_key_of_none_is_not_cached(backend: str) -> None:
    counted, calls = counting_task(cache_key_fn=lambda ctx, params: None)
    counted(1)
    counted(1)
    assert calls == [1, 1]


def test_results_survive_the_process(tmp_path: Path) -> None:
    code = (
        "from flowkit import task\n"
        "from flowkit.tasks import task_input_hash\n"
        "calls = []\n"
        "@task(cache_key_fn=task_input_hash)\n"
        "def slow(x):\n"
        "    calls.append(x)\n"
        "    return [x, x]\n"
        "print(slow(3), len(calls))\n"
    )
    script = tmp_path / "job.py"
    script.write_text(code)
    runs = [
        subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    assert [r.stdout.strip() for r in runs] == ["[3, 3] 1", "[3, 3] 0"]


def test_task_input_hash_is_the_same_in_another_process(tmp_path: Path) -> None:
    code = (
        "from flowkit import task\n"
        "from flowkit.cache_policies import CacheContext\n"
        "from flowkit.tasks import task_input_hash\n"
        "@task(name='same')\n"
        "def same(x): ...\n"
        "print(task_input_hash(CacheContext(same), {'x': {'b': 1, 'a': [1.5, None]}}))\n"
    )
    script = tmp_path / "key.py"
    script.write_text(code)
    keys = {
        subprocess.run([sys.executable, str(script)], capture_output=True, text=True).stdout
        for _ in range(2)
    }
    assert len(keys) == 1
    assert len(keys.pop().strip()) == 64


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(a=json_values, b=json_values)
def test_keys_are_equal_exactly_when_canonical_forms_are(a: Any, b: Any) -> None:
    same = json.dumps(canonical(a), sort_keys=True) == json.dumps(canonical(b), sort_keys=True)
    assert (digest(a) == digest(b)) == same


@given(st.dictionaries(st.text(), st.integers(), min_size=2))
def test_dict_order_does_not_change_the_key(d: dict[str, int]) -> None:
    assert digest(d) == digest(dict(reversed(list(d.items()))))


def test_lookalike_values_get_different_keys() -> None:
    keys = {digest(v) for v in (1, 1.0, True, "1", (1,), [1], {1}, b"1")}
    assert len(keys) == 8


def test_an_unencodable_argument_runs_uncached_with_one_warning(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    counted, calls = counting_task(cache_key_fn=task_input_hash)
    thing = object()
    with pytest.raises(Unencodable):
        canonical(thing)
    counted(thing)
    counted(thing)
    assert calls == [thing, thing]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "task 'counted': parameter 'x' (type object)" in w]) == 2


def test_expiry_follows_the_clock(virtual_clock: VirtualClock) -> None:
    counted, calls = counting_task(
        cache_key_fn=task_input_hash, cache_expiration=timedelta(hours=1)
    )
    counted(1)
    virtual_clock.advance(59 * 60)
    counted(1)
    virtual_clock.advance(60)
    counted(1)
    assert calls == [1, 1]


def test_refresh_cache_recomputes_and_overwrites() -> None:
    counted, calls = counting_task(cache_key_fn=task_input_hash)
    counted(1)
    counted.with_options(refresh_cache=True)(1)
    counted(1)
    assert calls == [1, 1]


def test_policies_add_up() -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS + TASK_SOURCE)
    def keyed(x: int) -> int:
        calls.append(x)
        return x

    keyed(1)
    keyed(1)
    keyed(2)
    assert calls == [1, 2]


def test_run_id_policy_reuses_within_one_flow_run(backend: str) -> None:
    counted, calls = counting_task(cache_policy=INPUTS + RUN_ID)

    @flow
    def main() -> None:
        counted(1)
        counted(1)

    main()
    main()
    assert calls == [1, 1]


def test_results_are_written_atomically_under_the_home(flowkit_home: Path) -> None:
    counted, _ = counting_task(cache_key_fn=task_input_hash)
    counted(7)
    results = list((flowkit_home / "results").iterdir())
    records = list((flowkit_home / "cache").rglob("*.json"))
    assert [p.suffix for p in results] == [".json"]
    assert len(records) == 1
    assert not [p for p in flowkit_home.rglob("*.tmp")]
    record = json.loads(records[0].read_text())
    assert (flowkit_home / "results" / record["result"]).exists()
    assert record["location"] == str((flowkit_home / "results" / record["result"]).resolve())


@pytest.mark.parametrize("target", ["record", "result"])
def test_a_corrupt_entry_is_a_miss_with_a_warning(
    flowkit_home: Path, caplog: pytest.LogCaptureFixture, target: str
) -> None:
    counted, calls = counting_task(cache_key_fn=task_input_hash)
    counted(1)
    record = next((flowkit_home / "cache").rglob("*.json"))
    name = json.loads(record.read_text())["result"]
    victim = record if target == "record" else flowkit_home / "results" / name
    victim.write_text("{ not json")
    RESULTS.forget_memo()
    assert counted(1) == {"x": 1}
    assert calls == [1, 1]
    assert any("unusable" in r.getMessage() for r in caplog.records)


def test_persist_result_false_turns_caching_off(flowkit_home: Path) -> None:
    # Prefect's rule: results that are not persisted cannot be reused (NO_CACHE).
    counted, calls = counting_task(cache_key_fn=task_input_hash, persist_result=False)
    counted(1)
    counted(1)
    assert calls == [1, 1]
    assert not (flowkit_home / "results").exists()


def test_serializers_and_storage(tmp_path: Path) -> None:
    storage = tmp_path / "store"

    @task(cache_key_fn=task_input_hash, result_serializer="pickle", result_storage=storage)
    def pickled(x: int) -> set[int]:
        return {x}

    assert pickled(1) == {1}
    assert [p.suffix for p in storage.iterdir()] == [".pickle"]


def test_pickles_outside_flowkit_storage_are_never_read(
    flowkit_home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counted, calls = counting_task(cache_key_fn=task_input_hash, result_serializer="pickle")
    counted(1)
    record_path = next((flowkit_home / "cache").rglob("*.json"))
    record = json.loads(record_path.read_text())
    planted = tmp_path / "elsewhere" / "evil.pickle"
    planted.parent.mkdir()
    planted.write_bytes(pickle.dumps({"x": "planted"}))
    record["result"] = "../../elsewhere/evil.pickle"
    record_path.write_text(json.dumps(record))
    RESULTS.forget_memo()
    assert counted(1) == {"x": 1}
    assert calls == [1, 1]
    assert any("without '..'" in r.getMessage() for r in caplog.records)


def test_concurrent_runs_with_one_key_compute_once(backend: str) -> None:
    calls: list[int] = []
    gate = threading.Event()

    @task(cache_key_fn=task_input_hash)
    def shared(x: int) -> int:
        gate.wait(5)
        calls.append(x)
        return x

    @flow
    def main() -> list[str]:
        futures = [shared.submit(1) for _ in range(4)]
        gate.set()
        return sorted(f.state.name for f in futures if f.wait() is None)

    assert main() == ["Cached", "Cached", "Cached", "Completed"]
    assert calls == [1]


@pytest.mark.anyio
async def test_async_tasks_cache_too() -> None:
    calls: list[int] = []

    @task(cache_key_fn=task_input_hash)
    async def fetch(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        calls.append(x)
        return x

    assert [await fetch(2), await fetch(2)] == [2, 2]
    assert calls == [2]


def test_explain_cache_says_why() -> None:
    counted, _ = counting_task(cache_key_fn=task_input_hash)
    before = counted.explain_cache(5)
    counted(5)
    after = counted.explain_cache(5)
    assert (before.hit, before.reason) == (False, "no result is cached under this key")
    assert after.hit
    assert after.key == before.key
    assert after.parts == {"CacheKeyFnPolicy(task_input_hash)": after.key}
    assert after.record is not None
    assert "cached by run" in after.reason


def test_the_store_records_each_cache_decision(backend: str) -> None:
    counted, _ = counting_task(cache_key_fn=task_input_hash)

    @flow
    def cached_twice() -> None:
        counted(1)
        counted(1)

    cached_twice()
    with Store.open() as store:
        runs = store.tree("cached-twice")
    notes = [r.cache for r in runs if r.kind == "task"]
    assert notes[0] is not None
    assert notes[0].startswith("miss:")
    assert notes[1] is not None
    assert notes[1].startswith("hit:")


def test_page_example_hits_the_cache_in_a_second_process(tmp_path: Path, local_http: Any) -> None:
    api, seen = local_http(lambda path: b'{"stargazers_count": 5}')
    script = tmp_path / "repo.py"
    script.write_text(
        "import sys, httpx\n"
        "from datetime import timedelta\n"
        "from flowkit import flow, task\n"
        "from flowkit.tasks import task_input_hash\n"
        "@task(cache_key_fn=task_input_hash, cache_expiration=timedelta(hours=1))\n"
        "def get_url(url, params=None):\n"
        "    return httpx.get(url, params=params).json()\n"
        "@flow\n"
        "def get_repo_info():\n"
        "    return get_url(sys.argv[1] + '/repos/x/y')['stargazers_count']\n"
        "print(get_repo_info())\n"
    )
    outs = [
        subprocess.run(
            [sys.executable, str(script), api], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    assert outs == ["5", "5"]
    assert seen == ["/repos/x/y"]
