"""Markdown to HTML, safely: a small subset, every character of the source escaped.

Artifacts come from user code, and their text may come from anywhere; the page must show
``<script>`` as text. So this renderer never passes raw HTML through: it escapes the whole
source first and only then adds the tags of the subset it knows, whose attributes it
writes itself (a link's address only when it is ``http``, ``https`` or ``mailto``).

The subset: ATX headings, paragraphs, ``-``/``*``/``1.`` lists (one level), ``>`` quotes,
fenced code blocks, rules, GitHub-style pipe tables (a header row, a delimiter row such as
``|---|:--:|``, then rows; ``\\|`` is a pipe in a cell; a row's extra cells are kept),
inline ``code``, ``**strong**``,
``*emphasis*``/``_emphasis_`` and ``[links](https://...)``. A dependency would have bought
little more than this.
"""

from __future__ import annotations

import html
import re

__all__ = ["render_markdown"]

_HEADING = re.compile(r"(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"\s{0,3}[-*+]\s+(.*)")
_NUMBERED = re.compile(r"\s{0,3}\d{1,9}[.)]\s+(.*)")
_RULE = re.compile(r"\s{0,3}([-*_])(\s*\1){2,}\s*$")
_FENCE = re.compile(r"\s{0,3}(```|~~~)")
_CODE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])[*_](?=\S)(.+?)(?<=\S)[*_](?![\w*])")
_SAFE_SCHEMES = ("http://", "https://", "mailto:")
_DELIMITER_CELL = re.compile(r"\s*(:?)-+(:?)\s*")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_ESCAPED_PIPE = "\\|"
_ALIGN = {(True, False): "left", (True, True): "center", (False, True): "right"}


def render_markdown(text: str) -> str:
    """``text`` as HTML: the subset above; anything else shows as the text it is."""
    blocks: list[str] = []
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif fence := _FENCE.match(line):
            end = i + 1
            while end < len(lines) and not lines[end].lstrip().startswith(fence.group(1)):
                end += 1
            code = html.escape("\n".join(lines[i + 1 : end]))
            blocks.append(f"<pre><code>{code}</code></pre>")
            i = end + 1
        elif heading := _HEADING.match(line):
            level = len(heading.group(1))
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            i += 1
        elif _RULE.match(line):
            blocks.append("<hr>")
            i += 1
        elif line.lstrip().startswith(">"):
            quoted: list[str] = []
            while i < len(lines) and lines[i].lstrip().startswith(">"):
                quoted.append(lines[i].lstrip()[1:].removeprefix(" "))
                i += 1
            blocks.append(f"<blockquote>{render_markdown(chr(10).join(quoted))}</blockquote>")
        elif (aligns := _table_start(lines, i)) is not None:
            i = _table(lines, i, aligns, blocks)
        elif (kind := _list_kind(line)) is not None:
            tag, pattern = kind
            items: list[str] = []
            while i < len(lines) and (item := pattern.match(lines[i])):
                items.append(f"<li>{_inline(item.group(1))}</li>")
                i += 1
            blocks.append(f"<{tag}>{''.join(items)}</{tag}>")
        else:
            paragraph: list[str] = []
            while i < len(lines) and lines[i].strip() and not _starts_block(lines[i]):
                if paragraph and _table_start(lines, i) is not None:
                    break  # a table interrupts a paragraph, as on GitHub
                paragraph.append(lines[i].strip())
                i += 1
            blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    return "\n".join(blocks)


def _cells(line: str) -> list[str]:
    """A table row's cells, stripped: split on ``|`` but not ``\\|``, less the outer ones."""
    row = line.strip()
    row = row.removeprefix("|")
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return [cell.strip() for cell in _CELL_SPLIT.split(row)]


def _table_start(lines: list[str], i: int) -> list[str | None] | None:
    """The alignments of the table whose header is ``lines[i]``; ``None`` if no table
    starts there (the next line must be a delimiter row with as many cells)."""
    if i + 1 >= len(lines) or "|" not in lines[i] + lines[i + 1]:
        return None
    delimiter = _cells(lines[i + 1])
    matches = [_DELIMITER_CELL.fullmatch(cell) for cell in delimiter]
    if not all(matches) or len(delimiter) != len(_cells(lines[i])):
        return None
    return [_ALIGN.get((bool(m.group(1)), bool(m.group(2)))) for m in matches if m]


def _table(lines: list[str], i: int, aligns: list[str | None], blocks: list[str]) -> int:
    """Render the table starting at ``lines[i]`` into ``blocks``; return the line after."""

    def row(line: str, tag: str) -> str:
        cells = _cells(line)
        cells += [""] * (len(aligns) - len(cells))
        # A row longer than the header keeps its extra cells (GitHub drops them): the page
        # never loses a word of an artifact.
        out: list[str] = []
        for cell, align in zip(cells, aligns + [None] * (len(cells) - len(aligns)), strict=True):
            # A class, not a style attribute: the page's policy allows no inline style.
            style = f' class="align-{align}"' if align else ""
            out.append(f"<{tag}{style}>{_inline(cell.replace(_ESCAPED_PIPE, '|'))}</{tag}>")
        return f"<tr>{''.join(out)}</tr>"

    head = row(lines[i], "th")
    body: list[str] = []
    i += 2
    while i < len(lines) and lines[i].strip() and not _starts_block(lines[i]):
        body.append(row(lines[i], "td"))
        i += 1
    tbody = f"<tbody>{''.join(body)}</tbody>" if body else ""
    blocks.append(f"<table><thead>{head}</thead>{tbody}</table>")
    return i


def _list_kind(line: str) -> tuple[str, re.Pattern[str]] | None:
    if _BULLET.match(line) and not _RULE.match(line):
        return "ul", _BULLET
    if _NUMBERED.match(line):
        return "ol", _NUMBERED
    return None


def _starts_block(line: str) -> bool:
    return bool(
        _FENCE.match(line) or _HEADING.match(line) or _RULE.match(line)
        or line.lstrip().startswith(">") or _list_kind(line)
    )  # fmt: skip


def _inline(text: str) -> str:
    # Code spans first, kept aside, so nothing inside them is read as markup.
    spans: list[str] = []

    def keep(match: re.Match[str]) -> str:
        spans.append(f"<code>{html.escape(match.group(1))}</code>")
        return f"\x00{len(spans) - 1}\x00"

    text = html.escape(_CODE.sub(keep, text.replace("\x00", "")))
    text = _LINK.sub(_link, text)
    text = _STRONG.sub(r"<strong>\1</strong>", text)
    text = _EMPHASIS.sub(r"<em>\1</em>", text)
    return re.sub("\x00(\\d+)\x00", lambda m: spans[int(m.group(1))], text)


def _link(match: re.Match[str]) -> str:
    label, address = match.group(1), match.group(2)
    # The address was escaped with the rest; unescape to check its scheme, then escape
    # it again for the attribute.
    raw = html.unescape(address)
    if not raw.lower().startswith(_SAFE_SCHEMES):
        return match.group(0)
    return f'<a href="{html.escape(raw, quote=True)}" rel="noopener noreferrer">{label}</a>'
