"""Keep answers from carrying active HTML or script URLs to a browser.

Rules rather than an HTML parser, so they run on the stream like the PII rules:

- ``<`` followed by a letter, ``/``, ``!`` or ``?`` becomes ``&lt;``: no tag,
  comment or processing instruction can form, so no ``<script>``, no ``<img
  onerror=...>`` (event handlers only exist inside tags). ``a < b`` is untouched.
- ``javascript:``, ``vbscript:`` and ``data:text/html`` schemes (also with
  whitespace or control characters inside, which browsers skip) get an
  ``unsafe:`` prefix, as Angular's sanitiser does; a browser treats
  ``unsafe:javascript:...`` as an unknown scheme.
- numeric character references (``&#106;``) are escaped, since Markdown
  renderers decode them and could rebuild a scheme from them.
"""

from __future__ import annotations

from safety.rules import Rule, RuleSet, compile_rule
from safety.types import Category

TAG_OPEN = Rule(
    "HTML_TAG",
    Category.UNSAFE_MARKUP,
    compile_rule(r"<[A-Za-z/!?]"),
    replace=lambda span: "&lt;" + span[1:],
    margin=0,
)
_GAP = r"[\s\x00-\x1f]*"
SCRIPT_URL = Rule(
    "SCRIPT_URL",
    Category.UNSAFE_MARKUP,
    compile_rule(
        "(?i)(?<![A-Za-z])(?:"
        + "|".join(_GAP.join(word) for word in ("javascript", "vbscript"))
        + f"){_GAP}:|"
        + _GAP.join("data")
        + f"{_GAP}:{_GAP}text/html"
    ),
    replace=lambda span: "unsafe:" + span,
    margin=1,
)
CHAR_REF = Rule(
    "CHAR_REF",
    Category.UNSAFE_MARKUP,
    compile_rule(r"&#"),
    replace=lambda span: "&amp;#",
    margin=0,
)

MARKUP_RULES = (TAG_OPEN, SCRIPT_URL, CHAR_REF)


def markup_rules() -> RuleSet:
    return RuleSet(MARKUP_RULES)


def sanitize_markup(text: str) -> str:
    """``text`` with tags, script URLs and character references made inert."""
    return markup_rules().apply(text)[0]
