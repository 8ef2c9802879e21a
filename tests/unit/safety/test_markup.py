"""Answers cannot carry tags, event handlers or script URLs to a browser."""

from __future__ import annotations

import pytest

from safety.markup import sanitize_markup


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<script>alert(1)</script>", "&lt;script>alert(1)&lt;/script>"),
        ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)>"),
        ("[x](javascript:alert(1))", "[x](unsafe:javascript:alert(1))"),
        ("[x](JaVa\tScRiPt:alert(1))", "[x](unsafe:JaVa\tScRiPt:alert(1))"),
        ("[a](&#106;avascript:x)", "[a](&amp;#106;avascript:x)"),
        ("<!-- hidden -->", "&lt;!-- hidden -->"),
    ],
)
def test_active_markup_is_made_inert(text: str, expected: str) -> None:
    assert sanitize_markup(text) == expected


@pytest.mark.parametrize(
    "text",
    ["a < b and x<3", "**bold** and `code`", "JavaScript is a language", "[docs](https://x.io)"],
)
def test_ordinary_markdown_is_untouched(text: str) -> None:
    assert sanitize_markup(text) == text
