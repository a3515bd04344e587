"""``assert_run``: assertions on the recorded tree of a flow run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from ..states import State
from ..store import RunRecord, Store, StoreError, default_path, flush

__all__ = ["RunAssertions", "assert_run"]


def assert_run(run: State[Any] | str, *, store: str | Path | None = None) -> RunAssertions:
    """Assertions on a finished root run and the runs it started, read from the run store.

    Args:
        run: The final state of a flow (or task) called with ``return_state=True``, or
            a run id, id prefix, run name or flow name (as ``flowkit runs show`` takes).
        store: The run store's path; by default ``$FLOWKIT_HOME/runs.db``.

    Raises:
        AssertionError: The run is not in the store (the message says why).
    """
    path = Path(store) if store is not None else default_path()
    flush()
    try:
        with Store.open(path) as opened:
            root = _find(opened, run)
            return RunAssertions(opened.tree(root.id))
    except (StoreError, KeyError) as exc:
        raise AssertionError(
            f"assert_run: no recorded run for {run!r} in {path} ({exc}); runs are recorded "
            "unless FLOWKIT_STORE=off or flowkit.store.disable() is in effect"
        ) from None


def _find(store: Store, run: State[Any] | str) -> RunRecord:
    if isinstance(run, str):
        return store.get(run)
    # A state carries no run id: the run is the root run whose final state it is.
    for record in store.flow_runs(limit=None):
        states = store.states(record.id)
        if states and states[-1].timestamp == run.timestamp and states[-1].name == run.name:
            return record
    raise KeyError(f"no root run ended in {run!r}")


class RunAssertions:
    """Checks on a recorded run tree; each returns ``self``, so checks chain.

    Task runs are named by their task's name (``"fetch"``), as in ``@task(name=...)``.
    """

    def __init__(self, tree: list[RunRecord]) -> None:
        self.tree = tree
        self.root = tree[0]

    def __repr__(self) -> str:
        return f"<RunAssertions of {self.root.kind} run {self.root.name!r}>"

    def completed(self) -> Self:
        """The root run completed (``Completed`` or ``Cached``).

        Raises:
            AssertionError: It did not.
        """
        if self.root.state_type != "COMPLETED":
            self._fail(f"expected the run to complete, but it ended {self.root.state_name}")
        return self

    def has_task_run(
        self, task: str, *, count: int | None = None, state: str | None = None
    ) -> Self:
        """The tree holds runs of ``task``: at least one, or exactly ``count``; with
        ``state``, every one of them ended in it (a state name or type, any case).

        Raises:
            AssertionError: It does not.
        """
        runs = self._runs_of(task, required=count != 0)
        if count is not None and len(runs) != count:
            self._fail(f"expected {count} run(s) of task {task!r}, found {len(runs)}")
        if state is not None:
            wrong = [r for r in runs if state.upper() not in (r.state_name.upper(), r.state_type)]
            if wrong:
                self._fail(
                    f"expected every run of task {task!r} to end {state}, but "
                    + ", ".join(f"{r.name} ended {r.state_name}" for r in wrong)
                )
        return self

    def retried(self, task: str, *, times: int) -> Self:
        """Every run of ``task`` was retried exactly ``times`` times (ran ``times + 1``).

        Raises:
            AssertionError: A run of it made another number of attempts, or there is none.
        """
        wrong = [r for r in self._runs_of(task) if r.run_count != times + 1]
        if wrong:
            self._fail(
                f"expected every run of task {task!r} to be retried {times} time(s), but "
                + ", ".join(f"{r.name} was retried {r.run_count - 1}" for r in wrong)
            )
        return self

    def cached(self, task: str) -> Self:
        """Every run of ``task`` took its result from the cache (ended ``Cached``).

        Raises:
            AssertionError: A run of it ran its body, or there is none.
        """
        wrong = [r for r in self._runs_of(task) if r.state_name != "Cached"]
        if wrong:
            self._fail(
                f"expected every run of task {task!r} to be Cached, but "
                + ", ".join(f"{r.name} ended {r.state_name}" for r in wrong)
            )
        return self

    def _runs_of(self, task: str, *, required: bool = True) -> list[RunRecord]:
        runs = [r for r in self.tree if r.kind == "task" and r.definition == task]
        if required and not runs:
            self._fail(f"expected runs of task {task!r}, found none")
        return runs

    def _fail(self, message: str) -> None:
        raise AssertionError(f"{message}\n{format_tree(self.tree)}")


def format_tree(tree: list[RunRecord]) -> str:
    """The run tree as indented lines: name, kind and definition, state, attempts."""
    children: dict[str | None, list[RunRecord]] = {}
    for record in tree:
        children.setdefault(record.parent_id, []).append(record)
    lines: list[str] = []

    def add(record: RunRecord, depth: int) -> None:
        attempts = f", {record.run_count} attempts" if record.run_count > 1 else ""
        error = f": {record.error}" if record.error else ""
        lines.append(
            f"{'  ' * depth}{record.name} ({record.kind} {record.definition!r}): "
            f"{record.state_name}{attempts}{error}"
        )
        for child in children.get(record.id, []):
            add(child, depth + 1)

    add(tree[0], 0)
    return "\n".join(lines)
