"""The page's markdown: a small subset rendered, and nothing of the source ever markup."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowkit.ui._markdown import render_markdown

ALLOWED = re.compile(
    r"</?(h[1-6]|p|ul|ol|li|blockquote|pre|code|strong|em|hr|table|thead|tbody|tr|th|td)>"
    r'|<(th|td) class="align-(left|center|right)">'
    r'|<a href="(https?://|mailto:)[^"<>]*" rel="noopener noreferrer">|</a>'
)


@pytest.mark.parametrize(
    ("source", "rendered"),
    [
        ("# Title", "<h1>Title</h1>"),
        ("### Three ###", "<h3>Three</h3>"),
        ("one\ntwo\n\nthree", "<p>one two</p>\n<p>three</p>"),
        ("**b** and *e* and _e_", "<p><strong>b</strong> and <em>e</em> and <em>e</em></p>"),
        ("- a\n- b", "<ul><li>a</li><li>b</li></ul>"),
        ("1. a\n2. b", "<ol><li>a</li><li>b</li></ol>"),
        ("> said", "<blockquote><p>said</p></blockquote>"),
        ("```\n<b>x</b>\n```", "<pre><code>&lt;b&gt;x&lt;/b&gt;</code></pre>"),
        ("---", "<hr>"),
        ("`*not em*`", "<p><code>*not em*</code></p>"),
        ("snake_case_name", "<p>snake_case_name</p>"),
        ("[site](https://a.b/?x=1&y=2)",
         '<p><a href="https://a.b/?x=1&amp;y=2" rel="noopener noreferrer">site</a></p>'),
    ],
)  # fmt: skip
def test_the_subset(source: str, rendered: str) -> None:
    assert render_markdown(source) == rendered


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        '[x](https://a.b/" onmouseover="alert(1))',
        "`</code><script>alert(1)</script>`",
    ],
)
def test_html_and_unsafe_links_stay_text(source: str) -> None:
    rendered = render_markdown(source)
    assert "<script" not in rendered
    assert "<img" not in rendered
    assert 'href="javascript' not in rendered.lower()
    assert 'onmouseover="' not in rendered


@given(st.text(alphabet=st.sampled_from("<>&\"'`*_#-[]()/:|\\\n abcjavscript="), max_size=80))
def test_every_tag_is_one_of_the_subset(source: str) -> None:
    rendered = render_markdown(source)
    for tag in re.findall(r"<[^>]*>", rendered):
        assert ALLOWED.fullmatch(tag), (source, rendered, tag)


@given(st.text(max_size=80))
def test_the_words_survive(source: str) -> None:
    rendered = html.unescape(re.sub(r"<[^>]*>", "", render_markdown(source)))
    for word in re.findall(r"[A-Za-z0-9]+", source):
        assert word in rendered


@pytest.mark.parametrize(
    ("source", "rendered"),
    [
        ("| a | b |\n|---|---|\n| 1 | 2 |",
         "<table><thead><tr><th>a</th><th>b</th></tr></thead>"
         "<tbody><tr><td>1</td><td>2</td></tr></tbody></table>"),
        ("a | b\n--|--\n1 | 2",
         "<table><thead><tr><th>a</th><th>b</th></tr></thead>"
         "<tbody><tr><td>1</td><td>2</td></tr></tbody></table>"),
        ("| l | c | r |\n|:--|:-:|--:|",
         '<table><thead><tr><th class="align-left">l</th><th class="align-center">c</th>'
         '<th class="align-right">r</th></tr></thead></table>'),
        ("| a | b |\n|---|---|\n| 1 |\n| 1 | 2 | 3 |",
         "<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody>"
         "<tr><td>1</td><td></td></tr><tr><td>1</td><td>2</td><td>3</td></tr></tbody></table>"),
        ("| a |\n|---|\n| x \\| y |",
         "<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>x | y</td></tr></tbody></table>"),
        ("| **a** | `b` |\n|---|---|",
         "<table><thead><tr><th><strong>a</strong></th><th><code>b</code></th></tr></thead>"
         "</table>"),
        ("intro\n| a |\n|---|\n| 1 |\n\nafter",
         "<p>intro</p>\n<table><thead><tr><th>a</th></tr></thead>"
         "<tbody><tr><td>1</td></tr></tbody></table>\n<p>after</p>"),
        ("| a |\n|---|\n| 1 |\n# next",
         "<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>"
         "\n<h1>next</h1>"),
    ],
    ids=["piped", "bare", "aligned", "ragged-rows", "escaped-pipe", "inline", "after-paragraph",
         "ends-at-block"],
)  # fmt: skip
def test_pipe_tables_render_as_tables(source: str, rendered: str) -> None:
    assert render_markdown(source) == rendered


@pytest.mark.parametrize(
    "source",
    [
        "| a | b |\n|---|",  # the delimiter row has fewer cells than the header
        "| a |\n| b |",  # no delimiter row
        "a | b",  # one line
    ],
)
def test_rows_without_a_matching_delimiter_row_stay_a_paragraph(source: str) -> None:
    assert render_markdown(source).startswith("<p>")


def test_markup_in_a_table_cell_stays_text() -> None:
    rendered = render_markdown(
        '| <script>alert(1)</script> | [x](javascript:alert(1)) |\n|---|---|\n| <img src=x> | "q" |'
    )
    assert rendered.startswith("<table>")
    assert "<script" not in rendered
    assert "<img" not in rendered
    assert "href=" not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
