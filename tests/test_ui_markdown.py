"""The page's markdown: a small subset rendered, and nothing of the source ever markup."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowkit.ui._markdown import render_markdown

ALLOWED = re.compile(
    r"</?(h[1-6]|p|ul|ol|li|blockquote|pre|code|strong|em|hr)>"
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


@given(st.text(alphabet=st.sampled_from("<>&\"'`*_#-[]()/:\n abcjavscript="), max_size=80))
def test_every_tag_is_one_of_the_subset(source: str) -> None:
    rendered = render_markdown(source)
    for tag in re.findall(r"<[^>]*>", rendered):
        assert ALLOWED.fullmatch(tag), (source, rendered, tag)


@given(st.text(max_size=80))
def test_the_words_survive(source: str) -> None:
    rendered = html.unescape(re.sub(r"<[^>]*>", "", render_markdown(source)))
    for word in re.findall(r"[A-Za-z0-9]+", source):
        assert word in rendered
