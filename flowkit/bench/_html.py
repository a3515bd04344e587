"""``flowkit bench --html``: the JSON document as one self-contained HTML page.

The page needs nothing but itself: inline CSS, plots as inline SVG drawn by matplotlib
(the ``bench`` extra, imported only when a report is written), no script, no fetch. Every
string taken from the document reaches the page through ``_tag``, which escapes it.
"""

from __future__ import annotations

import contextlib
import html
import os
import secrets
import shlex
import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import attrs

from ..exceptions import MatplotlibMissingError

if TYPE_CHECKING:
    from ._plots import Plot

__all__ = ["FORMAT", "Cell", "Record", "write_html"]

FORMAT = "flowkit-bench/1"
"""The ``format`` of the documents this module reads."""

RUN_PAGE = "/#/run/{id}"
"""Where ``flowkit ui`` shows a flow run, on whatever host and port it serves."""


@attrs.frozen
class Record:
    """One round of one cell, as the document's ``records`` give it."""

    cell: str
    system: str
    round: int
    status: str
    error: str | None
    throughput: float | None
    latencies_s: tuple[float, ...]
    phases_s: Mapping[str, float] | None
    flow_run_id: str | None


@attrs.frozen
class Cell:
    """One cell's summary (the document's ``cells``) with its rounds' records."""

    id: str
    workload: str
    system: str
    floor: str | None
    backend: str
    runner: str
    limit: int | None
    n: int
    rounds: int
    ok: int
    failed: int
    timeout: int
    median_s: float | None
    min_s: float | None
    max_s: float | None
    spread: float | None
    ratio: float | None
    floor_cell: str | None
    records: tuple[Record, ...]

    @property
    def runner_kind(self) -> str:
        """``threads`` for ``threads:8``."""
        return self.runner.partition(":")[0]

    @property
    def workers(self) -> int | None:
        """``8`` for ``threads:8``; None when the runner names no count."""
        count = self.runner.partition(":")[2]
        return int(count) if count.isdigit() else None

    @property
    def throughput(self) -> float | None:
        """Tasks per second, the median over the ok rounds."""
        values = [r.throughput for r in self.records if r.status == "ok" and r.throughput]
        return statistics.median(values) if values else None

    @property
    def latencies_s(self) -> list[float]:
        """Every ok round's latency samples."""
        return [s for r in self.records if r.status == "ok" for s in r.latencies_s]

    @property
    def phases_s(self) -> dict[str, float] | None:
        """Each phase's time, the median over the ok rounds that have phases."""
        phased = [r.phases_s for r in self.records if r.status == "ok" and r.phases_s]
        if not phased:
            return None
        names = dict.fromkeys(name for phases in phased for name in phases)
        return {name: statistics.median(p.get(name, 0.0) for p in phased) for name in names}


def write_html(document: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the report of a ``flowkit bench`` JSON document to ``path`` as one HTML file.

    The file is whole or absent: it is written beside ``path`` under a temporary name,
    then renamed over it.

    Args:
        document: The document ``flowkit bench --json`` writes (format ``flowkit-bench/1``).
        path: The HTML file to write; an existing file is replaced.

    Raises:
        MatplotlibMissingError: matplotlib is not installed (``pip install 'flowkit[bench]'``).
        ValueError: ``document`` is not a ``flowkit-bench/1`` document; the message names
            the field at fault.
        OSError: The file cannot be written.
    """
    machine, cells = _read(document)
    try:
        from . import _plots
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != "matplotlib":
            raise
        raise MatplotlibMissingError(
            "flowkit bench --html needs matplotlib: pip install 'flowkit[bench]'"
        ) from None
    plots = [
        _plots.throughput(cells),
        _plots.latencies(cells),
        _plots.overhead(cells),
        _plots.phases(cells),
    ]
    page = _page(document, machine, cells, plots)
    _write_atomic(Path(path), page.encode())


# Reading the document.


def _field(obj: Mapping[str, Any], key: str, kinds: tuple[type, ...], where: str) -> Any:
    """``obj[key]``, checked to be of one of ``kinds`` (``type(None)`` for null)."""
    if key not in obj:
        raise ValueError(f"bench document: {where} has no {key!r}; is it a {FORMAT} document?")
    value = obj[key]
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        expected = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise ValueError(f"bench document: {where}[{key!r}] is {value!r}, expected {expected}")
    return value


_NUMBER = (int, float)
_NUMBER_OR_NULL = (int, float, type(None))
_STR_OR_NULL = (str, type(None))


def _record(obj: Any, where: str) -> Record:
    if not isinstance(obj, Mapping):
        raise ValueError(f"bench document: {where} is {obj!r}, expected an object")
    raw = cast("Mapping[str, Any]", obj)
    latencies = _field(raw, "latencies_s", (list,), where)
    if not all(isinstance(s, _NUMBER) and not isinstance(s, bool) for s in latencies):
        raise ValueError(f"bench document: {where}['latencies_s'] holds a non-number")
    phases = _field(raw, "phases_s", (dict, type(None)), where)
    if phases is not None and not all(isinstance(v, _NUMBER) for v in phases.values()):
        raise ValueError(f"bench document: {where}['phases_s'] is {phases!r}, expected numbers")
    return Record(
        cell=_field(raw, "cell", (str,), where),
        system=_field(raw, "system", (str,), where),
        round=_field(raw, "round", (int,), where),
        status=_field(raw, "status", (str,), where),
        error=_field(raw, "error", _STR_OR_NULL, where),
        throughput=_field(raw, "throughput", _NUMBER_OR_NULL, where),
        latencies_s=tuple(latencies),
        phases_s=phases,
        flow_run_id=_field(raw, "flow_run_id", _STR_OR_NULL, where),
    )


def _cell(obj: Any, where: str, records: Sequence[Record]) -> Cell:
    if not isinstance(obj, Mapping):
        raise ValueError(f"bench document: {where} is {obj!r}, expected an object")
    raw = cast("Mapping[str, Any]", obj)
    cell = _field(raw, "cell", (str,), where)
    numbers = {
        key: _field(raw, key, _NUMBER_OR_NULL, where)
        for key in ("median_s", "min_s", "max_s", "spread", "ratio")
    }
    counts = {key: _field(raw, key, (int,), where) for key in ("rounds", "ok", "failed", "timeout")}
    return Cell(
        id=cell,
        workload=_field(raw, "workload", (str,), where),
        system=_field(raw, "system", (str,), where),
        floor=_field(raw, "floor", _STR_OR_NULL, where),
        backend=_field(raw, "backend", (str,), where),
        runner=_field(raw, "runner", (str,), where),
        limit=_field(raw, "limit", (int, type(None)), where),
        n=_field(raw, "n", (int,), where),
        floor_cell=_field(raw, "floor_cell", _STR_OR_NULL, where),
        records=tuple(r for r in records if r.cell == cell),
        **counts,
        **numbers,
    )


def _read(document: Mapping[str, Any]) -> tuple[Mapping[str, Any], list[Cell]]:
    """The document's machine description and its cells, checked."""
    if not isinstance(document, Mapping) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, Mapping) else document
        raise ValueError(f"bench document: format is {found!r}, expected {FORMAT!r}")
    for key, kinds in {"started": (str,), "argv": (list,), "machine": (dict,)}.items():
        _field(document, key, kinds, "the document")
    _field(document["machine"], "versions", (dict,), "machine")
    raw_records = _field(document, "records", (list,), "the document")
    records = [_record(r, f"records[{i}]") for i, r in enumerate(raw_records)]
    raw_cells = _field(document, "cells", (list,), "the document")
    cells = [_cell(c, f"cells[{i}]", records) for i, c in enumerate(raw_cells)]
    known = {c.id for c in cells}
    for i, record in enumerate(records):
        if record.cell not in known:
            raise ValueError(
                f"bench document: records[{i}] is of cell {record.cell!r}, which is not in cells"
            )
    return document["machine"], cells


# Numbers as people read them.


def _digits(value: float, trim: bool) -> str:
    """Three significant digits, or the whole number past 100: 2.91, 34.4, 1,234.
    ``trim``: without trailing zeros (for a plot's ticks: 2.5, 40)."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if trim:
        return f"{value:.3g}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def seconds(value: float | None, *, trim: bool = False) -> str:
    """``0.00042`` as ``420 µs``; ``None`` as a dash."""
    if value is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(value) >= scale:
            return f"{_digits(value / scale, trim)} {unit}"
    return "0 s" if value == 0 else f"{_digits(value / 1e-9, trim)} ns"


def number(value: float) -> str:
    """A plot tick's number: 0, 2.5, 40, 1,200."""
    return _digits(value, trim=True)


def _started(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# Markup: escaped by construction.


class _Html(str):
    """Markup, already escaped: ``_tag`` takes it as it is and escapes everything else."""

    __slots__ = ()


def _tag(name: str, *children: object, **attributes: object) -> _Html:
    """``<name attributes>children</name>``. Children are escaped unless ``_Html``;
    lists are flattened; None is nothing. ``class_`` is ``class``, ``data_x`` is ``data-x``.
    """
    attrs = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{html.escape(str(value))}"'
        for key, value in attributes.items()
        if value is not None
    )
    return _Html(f"<{name}{attrs}>{_join(children)}</{name}>")


def _join(children: Iterable[object]) -> _Html:
    parts: list[str] = []
    for child in children:
        if isinstance(child, _Html):
            parts.append(child)
        elif isinstance(child, list | tuple):
            parts.append(_join(cast("Iterable[object]", child)))
        elif child is not None:
            parts.append(html.escape(str(child)))
    return _Html("".join(parts))


def _table(head: Sequence[str], rows: Iterable[_Html], class_: str | None = None) -> _Html:
    header = _tag("thead", _tag("tr", [_tag("th", h) for h in head]))
    return _tag(
        "div", _tag("table", header, _tag("tbody", list(rows)), class_=class_), class_="wide"
    )


# The page.

_LABELS = {
    "cores": "Cores", "cpu": "CPU", "python": "Python", "platform": "Platform",
    "governor": "CPU governor",
}  # fmt: skip


def _header(document: Mapping[str, Any], machine: Mapping[str, Any]) -> _Html:
    argv = [str(a) for a in document["argv"]]
    fields = [
        _tag("tr", _tag("th", _LABELS.get(key, key)), _tag("td", "unknown" if v is None else v))
        for key, v in machine.items()
        if key != "versions"
    ]
    versions: Mapping[str, Any] = machine["versions"]
    installed = [
        _tag("tr", _tag("th", name), _tag("td", "not installed" if v is None else v))
        for name, v in versions.items()
    ]
    return _tag(
        "header",
        _tag("h1", "flowkit bench report"),
        _tag("p", _tag("code", shlex.join(["flowkit", "bench", *argv])), class_="command"),
        _tag("p", "Started ", _tag("time", _started(document["started"]))),
        _tag(
            "div",
            _tag("section", _tag("h3", "Machine"), _tag("table", fields, class_="facts")),
            _tag("section", _tag("h3", "Versions"), _tag("table", installed, class_="facts")),
            class_="machine",
        ),
    )


def _ratio(cell: Cell) -> str:
    if cell.system != "flowkit":
        return "floor"
    if cell.ratio is None:
        return "no floor" if cell.floor_cell is None else "—"
    return f"{cell.ratio:.2f}×"


def _rounds(cell: Cell) -> _Html:
    """``5 / 0 / 0``, a count of bad rounds in red, and the total when it is not their sum."""
    counts = [
        _tag("span", count, class_="bad" if count and bad else None)
        for count, bad in ((cell.ok, False), (cell.failed, True), (cell.timeout, True))
    ]
    total = cell.ok + cell.failed + cell.timeout
    other = f" of {cell.rounds}" if cell.rounds != total else None
    return _join([counts[0], " / ", counts[1], " / ", counts[2], other])


def _summary(cells: Sequence[Cell]) -> _Html:
    head = ["Workload", "System", "Backend", "Runner", "Limit", "n"]
    head += ["Rounds ok / failed / timeout", "Median", "Min", "Max", "Spread", "vs floor"]
    rows = [
        _tag(
            "tr",
            _tag("td", c.workload, class_="workload", title=c.id),
            _tag("td", c.system if c.system != "floor" else f"floor: {c.floor}", class_="system"),
            _tag("td", c.backend),
            _tag("td", c.runner),
            _tag("td", "none" if c.limit is None else c.limit, class_="num"),
            _tag("td", f"{c.n:,}", class_="num"),
            _tag("td", _rounds(c), class_="num"),
            _tag("td", seconds(c.median_s), class_="num"),
            _tag("td", seconds(c.min_s), class_="num"),
            _tag("td", seconds(c.max_s), class_="num"),
            _tag("td", "—" if c.spread is None else f"{c.spread:.1%}", class_="num"),
            _tag("td", _ratio(c), class_="num"),
            data_cell=c.id,
            class_="floor" if c.system == "floor" else None,
        )
        for c in cells
    ]
    return _tag(
        "section",
        _tag("h2", "Cells"),
        _tag(
            "p",
            "One row per cell: a workload on one backend and runner, with a limit and n tasks, "
            "run by flowkit or by its floor (the plain implementation it is compared with). "
            "Times are the wall time of a round over the ok rounds; spread is (max − min) / "
            "median; vs floor is flowkit's median over its floor's.",
        ),
        _table(head, rows, class_="cells"),
        _failures(cells),
    )


def _failures(cells: Sequence[Cell]) -> _Html:
    bad = [(c, r) for c in cells for r in c.records if r.status != "ok"]
    if not bad:
        return _tag("p", "Every round finished ok.")
    rows = [
        _tag(
            "tr",
            _tag("td", _tag("code", c.id)),
            _tag("td", r.round, class_="num"),
            _tag("td", r.status, class_="bad"),
            _tag("td", _tag("code", r.error or "(no message)"), class_="error"),
            data_cell=c.id,
        )
        for c, r in bad
    ]
    return _tag(
        "section",
        _tag("h3", f"Failed and timed-out rounds ({len(bad)})"),
        _table(["Cell", "Round", "Status", "Error"], rows, class_="failures"),
        class_="failed",
    )


def _plot(index: int, title: str, plot: Plot) -> _Html:
    return _tag(
        "section",
        _tag("h2", f"{index}. {title}"),
        _tag("p", plot.note, class_="note" if plot.svg is not None else "note undrawn"),
        _tag("figure", _Html(plot.svg)) if plot.svg is not None else None,
        class_="plot",
    )


def _flow_run(record: Record) -> _Html:
    page = RUN_PAGE.format(id=record.flow_run_id) if record.flow_run_id else "no flow run"
    status = None if record.status == "ok" else _tag("span", f" {record.status}", class_="bad")
    return _tag("li", f"round {record.round}  ", _tag("code", page), status)


def _flow_runs(cells: Sequence[Cell]) -> _Html:
    rows = [
        _tag(
            "tr",
            _tag("td", _tag("code", c.id)),
            _tag("td", _tag("ul", [_flow_run(r) for r in c.records]) if c.records else "—"),
            data_cell=c.id,
        )
        for c in cells
        if c.system == "flowkit"
    ]
    content: list[_Html] = [
        _tag(
            "p",
            "Each round of a flowkit cell is a flow run in the run store. To see its timeline, "
            "serve the store with ",
            _tag("code", "flowkit ui"),
            " and open the path below on the address it prints; ",
            _tag("code", "flowkit runs show ID"),
            " prints the same run in the terminal.",
        )
    ]
    if rows:
        head = ["Cell", "Each round's flow run, as a path on flowkit ui's address"]
        content.append(_table(head, rows, class_="runs"))
    else:
        content = [_tag("p", "No flowkit cell was run, so no flow run was recorded.")]
    return _tag("section", _tag("h2", "Flow runs"), content)


_CSS = """
:root { --ink: #1d2330; --quiet: #5b6475; --line: #dde1e8; --bad: #b42318;
  --floor: #f6f7f9; --accent: #2f5d9b; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 8px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p { margin: 6px 0 10px; max-width: 90ch; }
code { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.command code { display: block; padding: 8px 12px; background: var(--floor);
  border: 1px solid var(--line); border-radius: 6px; white-space: pre-wrap;
  word-break: break-all; }
.machine { display: grid; grid-template-columns: 2fr 1fr; gap: 28px; }
.facts th { text-align: left; color: var(--quiet); font-weight: 500; padding-right: 16px; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13.5px; }
.cells, .failures, .runs { width: 100%; }
.cells th, .cells td, .failures th, .failures td, .runs th, .runs td {
  padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
thead th { background: var(--floor); font-weight: 600; vertical-align: bottom; }
.system { white-space: nowrap; }
.num { text-align: right !important; font-variant-numeric: tabular-nums;
  white-space: nowrap; }
tr.floor td { background: var(--floor); color: #3b4252; }
.workload { font-weight: 600; word-break: break-all; }
.bad { color: var(--bad); font-weight: 600; }
.error code { white-space: pre-wrap; word-break: break-word; color: var(--bad); }
.note { color: var(--quiet); }
.runs ul { list-style: none; margin: 0; padding: 0; white-space: pre; }
.runs li { font-size: 13px; }
figure { margin: 8px 0 0; }
figure svg { display: block; width: 100%; height: auto; max-width: 1120px; }
.undrawn { padding: 10px 14px; background: var(--floor); border-left: 3px solid var(--line); }
"""


def _page(
    document: Mapping[str, Any],
    machine: Mapping[str, Any],
    cells: Sequence[Cell],
    plots: Sequence[Plot],
) -> str:
    titles = [
        "Throughput against concurrency",
        "Latency distribution per cell",
        "flowkit's overhead against n",
        "Where time went",
    ]
    body = _tag(
        "main",
        _header(document, machine),
        _summary(cells),
        [
            _plot(i, title, plot)
            for i, (title, plot) in enumerate(zip(titles, plots, strict=True), 1)
        ],
        _flow_runs(cells),
    )
    head = _tag(
        "head",
        _Html('<meta charset="utf-8">'),
        _Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
        # No fetch of any kind: a report must open offline and leak nothing when shared.
        _Html(
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'; img-src data:\">"
        ),
        _tag("title", f"flowkit bench: {_started(document['started'])}"),
        _tag("style", _Html(_CSS)),
    )
    return f"<!doctype html>\n{_tag('html', head, body, lang='en')}\n"


# Writing.


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a new file beside it, renamed over it.

    Not ``_engine.results.write_atomic``: that one writes flowkit's own files (0600, in
    private directories, sweeping temporaries), while a report goes where the user says,
    with the permissions any new file of theirs gets.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
