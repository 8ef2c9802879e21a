"""Whether two similar questions may share an answer: what embeddings blur and words don't.

Two questions a sentence embedder scores 0.95 alike can still ask different things:
``"except"`` against ``"except*"``, ``async for`` against ``async with``, *enable*
against *disable*, a question against its negation. A semantic hit needs, besides the
similarity, that the two questions

- name the same entities: quoted or back-ticked text, identifiers with digits,
  underscores, dots, hyphens, stars or other marks (``__init__``, ``dict.get``,
  ``user-defined``, ``except*``), numbers, and words in capitals (``GIL``, ``PEP``);
- agree on negation: as many negating words (*not*, *no*, *never*, *without*,
  *n't*, ...) in one as in the other, up to parity;
- hold no pair of words where one is the other with a negating prefix, or both one
  stem with two prefixes (*install*/*uninstall*, *valid*/*invalid*,
  *enable*/*disable*, *encode*/*decode*).
"""

from __future__ import annotations

import re
import unicodedata

_QUOTED = re.compile(r"\"([^\"]+)\"|(?<!\w)'([^']+)'(?!\w)|`([^`]+)`|“([^”]+)”|‘([^’]+)’")
_TOKEN = re.compile(r"[^\s,;:!?()\[\]{}\"'`“”‘’]+")
_WORD = re.compile(r"[a-z]+")
_NEGATIONS = frozenset(
    {"not", "no", "never", "none", "nothing", "without", "cannot", "neither", "nor"}
)
_NEGATING_PREFIXES = ("dis", "un", "non", "in", "im", "il", "ir", "de", "anti")
_PREFIXES = ("anti", "dis", "non", "un", "in", "im", "il", "ir", "de", "en", "em")


def compatible(a: str, b: str) -> bool:
    """Whether questions ``a`` and ``b`` agree on entities, negation and polarity."""
    a, b = _fold(a), _fold(b)
    if _entities(a) != _entities(b):
        return False
    if _negations(a) % 2 != _negations(b) % 2:
        return False
    only_a, only_b = _words(a) - _words(b), _words(b) - _words(a)
    return not any(_opposite(x, y) for x in only_a for y in only_b)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().rstrip("?!.")


def _entities(text: str) -> frozenset[str]:
    found = {next(g for g in m.groups() if g).casefold() for m in _QUOTED.finditer(text)}
    for token in _TOKEN.findall(_QUOTED.sub(" ", text)):
        token = token.rstrip(".")
        core = token.strip("*_")
        if not any(c.isalnum() for c in core):
            continue
        if not token.isalpha() or (len(core) > 1 and core.isupper()):
            found.add(token.casefold())
    return frozenset(found)


def _negations(text: str) -> int:
    folded = text.casefold()
    return sum(w in _NEGATIONS for w in _WORD.findall(folded)) + folded.count("n't")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.casefold()))


def _opposite(word: str, other: str) -> bool:
    """Whether two words are one with a negating prefix and one without, or two
    prefixes on one stem (*install*/*uninstall*, *enable*/*disable*, *encode*/*decode*)."""
    if any(word == p + other or other == p + word for p in _NEGATING_PREFIXES):
        return True
    stem, stem_other = _stem(word), _stem(other)
    return stem is not None and stem == stem_other


def _stem(word: str) -> str | None:
    for prefix in _PREFIXES:
        if word.startswith(prefix) and len(word) - len(prefix) >= 3:
            return word[len(prefix) :]
    return None
