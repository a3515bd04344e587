"""From records to figures: each cell's median, min, max and spread over its ok rounds,
its ratio to its floor, and the change per cell against a baseline."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

__all__ = ["CELL_FIELDS", "Change", "Comparison", "Summary", "compare", "summarise", "summary"]

CELL_FIELDS = ("cell", "workload", "system", "floor", "backend", "runner", "limit", "n")
"""The fields a cell summary copies from its records."""


@attrs.frozen
class Summary:
    """Figures of a sample of wall times.

    Attributes:
        median, min, max: In seconds.
        spread: ``(max - min) / median``: how far apart the rounds were, as a fraction.
    """

    median: float
    min: float
    max: float
    spread: float


def summary(samples: Sequence[float]) -> Summary:
    """The median, min, max and spread of ``samples`` (at least one).

    Raises:
        ValueError: ``samples`` is empty.
    """
    if not samples:
        raise ValueError("no samples to summarise: every round failed or timed out")
    median = statistics.median(samples)
    low, high = min(samples), max(samples)
    return Summary(median, low, high, (high - low) / median if median > 0 else 0.0)


def summarise(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One summary per cell of ``records``, in the order cells first appear: its rounds
    counted by status, the figures of its ok rounds (``None`` without any), and its
    ratio to the matching floor cell's median."""
    by_cell: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_cell.setdefault(record["cell"], []).append(record)
    cells: list[dict[str, Any]] = []
    for cell_id, rounds in by_cell.items():
        first = rounds[0]
        ok = [r["wall_s"] for r in rounds if r["status"] == "ok"]
        figures = summary(ok) if ok else None
        ns = {r["n"] for r in rounds if r["status"] == "ok"} or {first["n"]}
        floor_cell = None
        if first["system"] != "floor" and first["floor"] is not None:
            floor_cell = "|".join([*cell_id.split("|")[:-1], "floor"])
        cells.append({
            **{k: first[k] for k in CELL_FIELDS},
            "n": max((n for n in ns if n is not None), default=None),
            "rounds": len(rounds),
            "ok": len(ok),
            "failed": sum(r["status"] == "failed" for r in rounds),
            "timeout": sum(r["status"] == "timeout" for r in rounds),
            "median_s": figures.median if figures else None,
            "min_s": figures.min if figures else None,
            "max_s": figures.max if figures else None,
            "spread": figures.spread if figures else None,
            "ratio": None,
            "floor_cell": floor_cell,
        })  # fmt: skip
    medians = {c["cell"]: c["median_s"] for c in cells}
    for cell in cells:
        floor = medians.get(cell["floor_cell"]) if cell["floor_cell"] else None
        if cell["median_s"] is not None and floor:
            cell["ratio"] = cell["median_s"] / floor
    return cells


@attrs.frozen
class Change:
    """A cell in both runs: its medians (``None`` without an ok round) and the change,
    ``median / baseline - 1``; ``regressed`` when slower beyond the tolerance, or when it
    has no ok round now but had one in the baseline."""

    cell: str
    baseline: float | None
    median: float | None
    change: float | None
    regressed: bool


@attrs.frozen
class Comparison:
    """A run against a baseline: the cells of both, and those of only one."""

    changes: list[Change]
    only_here: list[str]
    only_baseline: list[str]

    @property
    def regressed(self) -> bool:
        """Whether any cell regressed."""
        return any(c.regressed for c in self.changes)


def compare(
    cells: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]], tolerance: float
) -> Comparison:
    """Match ``cells`` with ``baseline``'s by id, and say how each changed."""
    before = {c["cell"]: c.get("median_s") for c in baseline}
    here = {c["cell"]: c.get("median_s") for c in cells}
    changes: list[Change] = []
    for cell, median in here.items():
        if cell not in before:
            continue
        old = before[cell]
        change = median / old - 1 if median is not None and old else None
        regressed = (change is not None and change > tolerance) or (
            median is None and old is not None
        )
        changes.append(Change(cell, old, median, change, regressed))
    return Comparison(
        changes,
        [c for c in here if c not in before],
        [c for c in before if c not in here],
    )
