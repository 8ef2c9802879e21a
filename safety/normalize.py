"""Undo the obfuscations attackers use to slip past text filters.

``normalize`` folds a text to lowercase ASCII-ish words: NFKC (full-width and
styled letters), confusable letters from Cyrillic and Greek mapped to the Latin
ones they imitate, zero-width and bidi controls removed, accents stripped.
``fold_leet`` also reads digits and symbols as the letters they stand for, and
``safety.decode`` finds segments in base64, hex, binary, Morse and other encodings
that decode to readable text. Detectors scan every variant (see ``variants``),
the text read as ROT13 and backwards among them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from safety.decode import decoded_segments, rot13

# Format characters that render as nothing: zero-width spaces and joiners, word
# joiner, BOM, soft hyphen, the Mongolian vowel separator, and every bidi control.
INVISIBLE = frozenset(
    "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)

# NOTE: a hand-picked subset of Unicode's confusables.txt (the letters that pass
# for Latin ones in common fonts). Transliterators get these wrong on purpose:
# Cyrillic "р" is "r" to them, but an attacker uses it for "p".
CONFUSABLES = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i",
    "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "һ": "h", "ո": "n", "ս": "u",
    "А": "a", "В": "b", "Е": "e", "К": "k", "М": "m", "Н": "h", "О": "o", "Р": "p",
    "С": "c", "Т": "t", "Х": "x", "Ѕ": "s", "І": "i", "Ј": "j", "Ү": "y",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "Α": "a", "Β": "b", "Ε": "e",
    "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m", "Ν": "n", "Ο": "o", "Ρ": "p",
    "Τ": "t", "Υ": "y", "Χ": "x",
    # Latin look-alikes and punctuation
    "ı": "i", "ȷ": "j", "ℓ": "l", "ß": "ss", "æ": "ae", "ø": "o", "đ": "d",
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
}  # fmt: skip

LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
     "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e"}
)  # fmt: skip

_WS = re.compile(r"\s+")
# NOTE: a leet word is found in two linear steps, a run of these characters and then
# a walk over it (``_fold_leet_run``). The one regex that said it all,
# ``\b(?=[…]*[a-z])(?=[…]*[0-9…])[…]+``, rescanned the rest of the run from every
# word boundary: quadratic, 0.37 s on 8k characters of "1@1@…".
_LEET_RUN = re.compile(r"[a-z0-9@$!|+€]+")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")
_SPACED = re.compile(r"\b(?:[a-z] ){3,}[a-z]\b")


@dataclass(frozen=True, slots=True)
class Normalized:
    """The variants of one text that detectors scan.

    Attributes:
        folded: Lowercase, confusables mapped, invisibles removed, spaces collapsed.
        leet: ``folded`` with leetspeak read as letters and s p a c e d letters joined.
        decoded: Normalised texts of the encoded segments that decode to text.
        invisible_count: Zero-width and bidi characters removed.
        confusable_count: Letters mapped from other scripts inside Latin words.
    """

    folded: str
    leet: str
    decoded: tuple[str, ...]
    invisible_count: int
    confusable_count: int

    def variants(self) -> tuple[str, ...]:
        """Every distinct form to scan, the plain folded one first; then the decoded
        segments, and the text read as ROT13 and backwards (for patterns only: they
        are never embedded, since they read as nonsense unless they are an attack)."""
        seen: dict[str, None] = {self.folded: None, self.leet: None}
        for text in self.decoded:
            seen[text] = None
        for disguised in (rot13(self.folded), self.folded[::-1]):
            # NOTE: a disguised reading is scanned only when it holds an attack's
            # vocabulary: it is nonsense otherwise, and each form scanned costs every
            # pattern's pass over the text.
            if _ATTACK_WORDS.search(disguised):
                seen[disguised] = None
        return tuple(seen)


_ATTACK_WORDS = re.compile(
    r"\b(?:ignore|disregard|forget|instructions?|prompt|system|previous|rules|reveal"
    r"|jailbreak|dan|pretend|restrictions|assistant|ai|developer|mode|unfiltered|persona)\b"
)


# Letters of other scripts in CONFUSABLES: disguise when a Latin letter touches them.
_FOREIGN = frozenset(
    ch for ch in CONFUSABLES if unicodedata.name(ch, "").startswith(("CYRILLIC", "GREEK"))
)


def _latin(text: str, i: int) -> bool:
    return 0 <= i < len(text) and text[i].isascii() and text[i].isalpha()


def fold(text: str) -> tuple[str, int, int]:
    """Lowercase ASCII-ish form of ``text``; also counts invisibles and confusables."""
    invisible = sum(1 for ch in text if ch in INVISIBLE)
    text = "".join(ch for ch in text if ch not in INVISIBLE)
    text = unicodedata.normalize("NFKC", text)
    confusable = 0
    out = []
    for i, ch in enumerate(text):
        mapped = CONFUSABLES.get(ch)
        if mapped is None:
            out.append(ch)
            continue
        out.append(mapped)
        # NOTE: counted only inside a Latin word: typographic quotes, dashes, "ß"
        # and Greek or Cyrillic words are ordinary text, not disguise.
        if ch in _FOREIGN and (_latin(text, i - 1) or _latin(text, i + 1)):
            confusable += 1
    text = unicodedata.normalize("NFKD", "".join(out))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _WS.sub(" ", text.lower()).strip(), invisible, confusable


def _is_word(ch: str) -> bool:
    """Whether ``re`` counts ``ch`` as a word character (``\\w``, str patterns)."""
    return ch.isalnum() or ch == "_"


def _fold_leet_run(match: re.Match[str]) -> str:
    """A run of letters, digits and leet symbols, its leet word read as letters.

    The leet word starts at the run's first word boundary from which the rest of
    the run still holds a letter and a digit or symbol, and ends with the run.
    """
    run, start = match.group(0), match.start()
    last_letter = last_leet = -1
    for i, ch in enumerate(run):
        if ch in _LETTERS:
            last_letter = i
        else:
            last_leet = i
    before = match.string[start - 1] if start else " "
    for i in range(min(last_letter, last_leet) + 1):
        if _is_word(before) != _is_word(run[i]):
            return run[:i] + run[i:].translate(LEET)
        before = run[i]
    return run


def fold_leet(folded: str) -> str:
    """Read leetspeak words (letters mixed with digits or symbols) as letters.

    Linear in the length of ``folded`` (the input is a user's message).
    """
    text = _LEET_RUN.sub(_fold_leet_run, folded)
    return _SPACED.sub(lambda m: m.group(0).replace(" ", ""), text)


def normalize(text: str) -> Normalized:
    """All the variants of ``text`` that detectors should scan."""
    folded, invisible, confusable = fold(text)
    decoded = tuple(fold(d)[0] for d in decoded_segments(text))
    return Normalized(
        folded=folded,
        leet=fold_leet(folded),
        decoded=decoded,
        invisible_count=invisible,
        confusable_count=confusable,
    )
