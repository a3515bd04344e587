"""The report's four plots, drawn by matplotlib as SVG text.

Each plot is a ``matplotlib.figure.Figure`` of its own, never pyplot: no global figure
state and no backend to switch, so a report can be drawn from any thread. A plot that
would be empty or meaningless is not drawn; its note says why instead.
"""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Callable, Iterable, Sequence

import attrs
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator

from ._html import Cell, number, seconds

# matplotlib's stubs leave every method's **kwargs untyped, which strict pyright reports
# at each call as a "partially unknown" member: the calls themselves are typed.
# pyright: reportUnknownMemberType=false

__all__ = ["Plot", "latencies", "overhead", "phases", "throughput"]

# Tableau's ten: distinct, print well, and a flowkit line and its floor share one.
_COLORS = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
]  # fmt: skip
_FLOOR = "#c9ced6"  # a floor's box: grey beside flowkit's blue
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h"]
_PHASES = {"waiting": "#f28e2b", "running": "#4e79a7", "recording": "#59a14f"}
_WIDTH = 11.0  # inches: 1,056 px at the page's 96 px per inch, inside its 1,180 px column


@attrs.frozen
class Plot:
    """A drawn plot (``svg``) with the note that explains it, or only the note saying why
    nothing was drawn."""

    svg: str | None
    note: str


# What tells cells apart in a legend: only the fields that vary among those drawn.

_FIELDS: dict[str, Callable[[Cell], str]] = {
    "workload": lambda c: c.workload,
    "backend": lambda c: c.backend,
    "runner": lambda c: c.runner,
    "runner kind": lambda c: c.runner_kind,
    "limit": lambda c: "no limit" if c.limit is None else f"limit {c.limit}",
    "n": lambda c: f"n={c.n:,}",
    "system": lambda c: "flowkit" if c.system == "flowkit" else f"floor: {c.floor}",
}


def _labeller(cells: Sequence[Cell], fields: Sequence[str]) -> Callable[[Cell], str]:
    """Label a cell by those of ``fields`` that differ among ``cells`` (or the first one)."""
    varying = [f for f in fields if len({_FIELDS[f](c) for c in cells}) > 1] or [fields[0]]
    return lambda cell: " · ".join(_text(_FIELDS[f](cell)) for f in varying)


def _common(cells: Sequence[Cell], fields: Sequence[str]) -> str:
    """What ``cells`` share among ``fields``, for a title: ``cpu · asyncio``."""
    same = [_FIELDS[f](cells[0]) for f in fields if len({_FIELDS[f](c) for c in cells}) == 1]
    return " · ".join(_text(s) for s in same)


def _text(value: str) -> str:
    """``value`` shown as it is: a ``$`` in a workload name is no mathtext."""
    return value.replace("$", r"\$")


def _figure(height: float) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(_WIDTH, height), layout="constrained")
    axes = figure.add_subplot()
    axes.grid(True, color="#e3e6eb", linewidth=0.8)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return figure, axes


def _svg(figure: Figure) -> str:
    """The figure as an ``<svg>`` element to put in a page.

    Its ids get a prefix of their own: several SVGs inline in one page share one id space,
    and matplotlib numbers its groups (``figure_1``) the same way in each.
    """
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    prefix = f"f{secrets.token_hex(3)}-"
    return re.sub(r'(\bid="|href="#|url\(#)', rf"\g<1>{prefix}", text[text.index("<svg") :])


def _tick_seconds(value: float, _: object) -> str:
    return seconds(value, trim=True)


def _tick_per_second(value: float, _: object) -> str:
    return f"{number(value)}/s"


def _tick_times(value: float, _: object) -> str:
    return f"{value:.3g}×"


def _tick_count(value: float, _: object) -> str:
    return f"{value:,.0f}"


def _ticks_at(axes: Axes, values: Iterable[float]) -> None:
    """x ticks exactly at the counts ``values`` (a log axis would label powers of 10 only)."""
    axes.xaxis.set_major_locator(FixedLocator(sorted(set(values))))
    axes.xaxis.set_major_formatter(FuncFormatter(_tick_count))
    axes.xaxis.set_minor_locator(NullLocator())
    axes.xaxis.set_minor_formatter(NullFormatter())


def _legend(axes: Axes, handles: Sequence[Line2D | Patch]) -> None:
    axes.legend(
        handles=list(handles), loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
        fontsize=9, handlelength=2.6,
    )  # fmt: skip


def throughput(cells: Sequence[Cell]) -> Plot:
    """Tasks per second against concurrency, one line per workload, backend, runner kind
    and system, at each workload's largest n; floors dashed."""
    measured = [c for c in cells if c.throughput is not None and c.workers is not None]
    if not measured:
        return Plot(None, "No cell finished a round, so there is no throughput to plot.")
    largest = {c.workload: max(d.n for d in measured if d.workload == c.workload) for c in measured}
    measured = [c for c in measured if c.n == largest[c.workload]]
    workers = {c.workers for c in measured}
    limits = {c.limit for c in measured}
    keyed = ["workload", "backend", "runner kind", "system"]
    if len(workers) > 1 or len(limits) == 1:
        axis, unit = "the runner's worker count (threads:8 is 8)", "worker count"
        if len(limits) > 1:
            keyed.append("limit")

        def x(cell: Cell) -> int:
            return cell.workers or 0

    else:
        axis = "the limit (a cell without one is drawn at its runner's worker count)"
        unit = "limit"

        def x(cell: Cell) -> int:
            return cell.limit if cell.limit is not None else cell.workers or 0

    lines: dict[tuple[str, ...], list[Cell]] = {}
    for cell in measured:
        lines.setdefault(tuple(_FIELDS[f](cell) for f in keyed), []).append(cell)
    at_n = ", ".join(f"{w} at n={n:,}" for w, n in largest.items())
    if all(len(line) == 1 for line in lines.values()):
        return Plot(
            None,
            f"Every configuration ran at one concurrency only ({at_n}), so there is no line "
            "to draw: run several worker counts (--runner threads:1,threads:4) or limits.",
        )
    figure, axes = _figure(4.6)
    label = _labeller(measured, keyed)
    system = keyed.index("system")
    colours: dict[tuple[str, ...], str] = {}  # a flowkit line and its floor's share one
    handles: list[Line2D] = []
    for key, line in lines.items():
        line.sort(key=x)
        floor = line[0].system != "flowkit"
        group = key[:system] + key[system + 1 :]
        colour = colours.setdefault(group, _COLORS[len(colours) % len(_COLORS)])
        (drawn,) = axes.plot(
            [x(c) for c in line], [c.throughput or 0.0 for c in line], color=colour,
            linestyle="--" if floor else "-", marker="s" if floor else "o", markersize=5,
            linewidth=1.6, label=label(line[0]),
        )  # fmt: skip
        handles.append(drawn)
    xs = [x(c) for c in measured]
    if min(xs) > 0 and max(xs) / min(xs) >= 4:
        axes.set_xscale("log", base=2)
    _ticks_at(axes, xs)
    axes.set_ylim(bottom=0)
    axes.yaxis.set_major_formatter(FuncFormatter(_tick_per_second))
    axes.set_xlabel(f"concurrency ({unit})")
    axes.set_ylabel("throughput (tasks/s, median over rounds)")
    axes.set_title(_title("Throughput against concurrency", measured, keyed), loc="left")
    _legend(axes, handles)
    return Plot(
        _svg(figure),
        f"Concurrency is {axis}: it is what varies in this run. Each point is the median "
        f"over a cell's ok rounds, at the largest n of each workload ({at_n}). "
        "Solid lines are flowkit, dashed lines its floors.",
    )


def _share(name: str, fraction: float) -> str:
    return f"{name} <1%" if fraction < 0.005 else f"{name} {fraction:.0%}"


def _title(title: str, cells: Sequence[Cell], fields: Sequence[str]) -> str:
    common = _common(cells, fields)
    return f"{title} ({common})" if common else title


def _paired(cells: Sequence[Cell]) -> list[Cell]:
    """``cells`` with each flowkit cell's floor right after it."""
    by_id = {c.id: c for c in cells}
    ordered: dict[str, Cell] = {}
    for cell in cells:
        ordered.setdefault(cell.id, cell)
        if cell.floor_cell in by_id:
            ordered.setdefault(cell.floor_cell, by_id[cell.floor_cell])
    return list(ordered.values())


def latencies(cells: Sequence[Cell]) -> Plot:
    """Box plots of each cell's latency samples, flowkit and floor side by side."""
    sampled = [c for c in _paired(cells) if c.latencies_s]
    skipped = [c.id for c in cells if not c.latencies_s]
    without = f" Cells without samples: {', '.join(skipped)}." if skipped else ""
    if not sampled:
        return Plot(None, f"No cell has latency samples, so there is nothing to draw.{without}")
    fields = ["workload", "backend", "runner", "limit", "n", "system"]
    label = _labeller(sampled, fields)
    figure, axes = _figure(1.3 + 0.36 * len(sampled))
    positions = list(range(len(sampled), 0, -1))  # the first cell on top
    boxes = axes.boxplot(
        [c.latencies_s for c in sampled], positions=positions, orientation="horizontal",
        whis=(5, 95), showfliers=False, patch_artist=True, widths=0.6,
        medianprops={"color": "#1d2330", "linewidth": 1.4},
    )  # fmt: skip
    for box, cell in zip(boxes["boxes"], sampled, strict=True):
        box.set_facecolor(_COLORS[0] if cell.system == "flowkit" else _FLOOR)
        box.set_edgecolor("#3b4252")
    axes.set_yticks(positions, [_text(label(c)) for c in sampled])
    samples = [s for c in sampled for s in c.latencies_s]
    scale = ""
    if min(samples) > 0 and max(samples) / min(samples) > 20:
        axes.set_xscale("log")
        axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axes.xaxis.set_minor_formatter(NullFormatter())
        scale = " (log scale)"
    axes.xaxis.set_major_formatter(FuncFormatter(_tick_seconds))
    axes.grid(False, axis="y")
    axes.set_xlabel(f"latency per task, submit to result{scale}")
    axes.set_title(_title("Latency distribution per cell", sampled, fields), loc="left")
    systems = {c.system == "flowkit" for c in sampled}
    _legend(
        axes,
        [
            Patch(facecolor=colour, edgecolor="#3b4252", label=name)
            for flowkit, colour, name in ((True, _COLORS[0], "flowkit"), (False, _FLOOR, "floor"))
            if flowkit in systems
        ],
    )
    return Plot(
        _svg(figure),
        "Each box holds a cell's samples over its ok rounds: the box spans the quartiles, "
        "the line is the median, the whiskers reach the 5th and 95th percentiles (points "
        f"beyond them are not drawn).{without}",
    )


def overhead(cells: Sequence[Cell]) -> Plot:
    """flowkit's median over its floor's, against n, one line per configuration."""
    rated = [c for c in cells if c.system == "flowkit" and c.ratio is not None]
    if not rated:
        return Plot(
            None,
            "No flowkit cell has a floor's median to compare with, so there is no overhead to "
            "plot.",
        )
    ns = sorted({c.n for c in rated})
    if len(ns) == 1:
        return Plot(
            None,
            f"Only one n was run ({ns[0]:,} tasks), so overhead against n would be one point "
            "per configuration: the table's vs floor column has them. Run several n to draw "
            "this plot.",
        )
    fields = ["workload", "backend", "runner", "limit"]
    lines: dict[tuple[str, ...], list[Cell]] = {}
    for cell in rated:
        lines.setdefault(tuple(_FIELDS[f](cell) for f in fields), []).append(cell)
    label = _labeller(rated, fields)
    figure, axes = _figure(4.6)
    handles: list[Line2D] = []
    for i, line in enumerate(lines.values()):
        line.sort(key=lambda c: c.n)
        (drawn,) = axes.plot(
            [c.n for c in line], [c.ratio or 0.0 for c in line],
            color=_COLORS[i % len(_COLORS)], marker=_MARKERS[i // len(_COLORS) % len(_MARKERS)],
            markersize=5, linewidth=1.6, label=label(line[0]),
        )  # fmt: skip
        handles.append(drawn)
    parity = axes.axhline(1.0, color="#5b6475", linestyle=":", linewidth=1.2)
    parity.set_label("as fast as the floor")
    handles.append(parity)
    axes.set_xscale("log")
    _ticks_at(axes, ns)
    axes.yaxis.set_major_formatter(FuncFormatter(_tick_times))
    axes.set_xlabel("n, tasks in the workload (log scale)")
    axes.set_ylabel("flowkit's median ÷ the floor's")
    axes.set_title(_title("flowkit's overhead against n", rated, fields), loc="left")
    _legend(axes, handles)
    return Plot(
        _svg(figure),
        "Each point is a flowkit cell's median wall time over its floor's (1× is as fast as "
        "the floor; 2× takes twice as long). A fixed cost per run fades as n grows; a cost "
        "per task stays.",
    )


def phases(cells: Sequence[Cell]) -> Plot:
    """Stacked bars of where a flowkit cell's task runs spent their time."""
    phased = [c for c in cells if c.system == "flowkit" and c.phases_s is not None]
    if not phased:
        return Plot(
            None,
            "No flowkit cell finished a round with phase times from its run records, so "
            "there is nothing to draw.",
        )
    names = list(_PHASES) + sorted({p for c in phased for p in c.phases_s or {}} - set(_PHASES))
    fields = ["workload", "backend", "runner", "limit", "n"]
    label = _labeller(phased, fields)
    figure, axes = _figure(1.3 + 0.36 * len(phased))
    positions = list(range(len(phased), 0, -1))
    per_task = [{p: (c.phases_s or {}).get(p, 0.0) / c.n for p in names} for c in phased]
    left = [0.0] * len(phased)
    for i, name in enumerate(names):
        widths = [share[name] for share in per_task]
        colour = _PHASES.get(name, _COLORS[(i + 3) % len(_COLORS)])
        axes.barh(positions, widths, left=left, height=0.62, color=colour, label=name)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for position, total, share in zip(positions, left, per_task, strict=True):
        parts = [_share(name, share[name] / total) for name in names if total and share[name]]
        axes.annotate(
            "  " + " · ".join(parts), (total, position), va="center", fontsize=8.5,
            color="#3b4252",
        )  # fmt: skip
    axes.set_xlim(0, max(left) * 1.65 or 1.0)  # room for the shares beside the bars
    axes.set_yticks(positions, [_text(label(c)) for c in phased])
    axes.xaxis.set_major_formatter(FuncFormatter(_tick_seconds))
    axes.grid(False, axis="y")
    axes.set_xlabel("time per task run (the phase's time summed over the run's tasks, ÷ n)")
    axes.set_title(_title("Where time went", phased, fields), loc="left")
    figure.legend(loc="outside upper right", ncols=len(names), frameon=False, fontsize=9)
    return Plot(
        _svg(figure),
        "From the run records of each flowkit cell: waiting for a worker or a slot, running "
        "the task's body, and recording its states, each summed over the task runs of a "
        "round, divided by n, the median over the ok rounds. Floors keep no records.",
    )
