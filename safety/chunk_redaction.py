"""Neutralise a retrieved chunk by removing only the sentences that carry the attack.

A chunk the injection filter withholds is mostly its document: an instruction
planted in a page is a sentence or two of it, and a benign chunk the filter
misjudges loses all its knowledge when the whole of it is replaced. So ``redact``
looks for the smallest pieces that fire on their own: sentences (long ones cut into
``PIECE_WORDS``-word pieces), then runs of 2 and of 4 of them. Each run that fires
is replaced by ``REMOVED``, with its neighbours that reach half the threshold;
once the rest scores at most half the threshold, the rest is kept. When
it still fires after the runs of 4 (an attack spread over the whole chunk, or one
that only the whole text reveals, such as a payload encoded across sentences), the
whole chunk is replaced, as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

REMOVED = "[removed: instructions addressed to the assistant]"
WHOLE = "[content removed: it contained instructions addressed to the assistant]"
PIECE_WORDS = 32
RUN_LENGTHS = (1, 2, 4)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class Redaction:
    """The text to use and the character spans of the original that were removed."""

    text: str
    removed: tuple[tuple[int, int], ...]

    @property
    def whole(self) -> bool:
        return self.text == WHOLE


def pieces(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of the text's sentences, ones over ``PIECE_WORDS`` words cut
    into pieces of that many; whitespace between them belongs to none."""
    out: list[tuple[int, int]] = []
    start = 0
    for end_mark in [*_SENTENCE_END.finditer(text), None]:
        end = end_mark.start() if end_mark else len(text)
        words = list(_WORD.finditer(text, start, end))
        for i in range(0, len(words), PIECE_WORDS):
            group = words[i : i + PIECE_WORDS]
            out.append((group[0].start(), group[-1].end()))
        if end_mark:
            start = end_mark.end()
    return out


def _render(
    text: str, spans: list[tuple[int, int]], removed: set[int], marker: str = REMOVED
) -> tuple[str, list[tuple[int, int]]]:
    """The text with each run of removed pieces replaced by ``marker``, and the
    original spans of those runs."""
    out: list[str] = []
    runs: list[tuple[int, int]] = []
    at = 0
    for i in sorted(removed):
        start, end = spans[i]
        if runs and i - 1 in removed:
            runs[-1] = (runs[-1][0], end)
            at = end
            continue
        out.append(text[at:start])
        out.append(marker)
        runs.append((start, end))
        at = end
    out.append(text[at:])
    return "".join(out), runs


def whole(text: str) -> Redaction:
    """``text`` replaced by ``WHOLE``: all of it removed."""
    return Redaction(WHOLE, ((0, len(text)),))


def redact(text: str, score: Callable[[str], float], threshold: float) -> Redaction:
    """``text`` with its offending pieces replaced (those whose ``score`` reaches
    ``threshold``, and their neighbours that reach half of it); ``WHOLE`` when
    removing them does not leave a text scoring at most half of ``threshold``."""
    spans = pieces(text)
    # Each piece alone, scored once: the runs of 1 and the neighbours both read them.
    alone = [score(text[start:end]) for start, end in spans]
    removed: set[int] = set()

    def run_score(run: range) -> float:
        if len(run) == 1:
            return alone[run[0]]
        return score(text[spans[run[0]][0] : spans[run[-1]][1]])

    for length in RUN_LENGTHS:
        for i in range(len(spans)):
            run = range(i, min(i + length, len(spans)))
            # NOTE: a run holding a removed piece would fire for that piece alone.
            if not any(j in removed for j in run) and run_score(run) >= threshold:
                removed.update(run)
        # An attack's first and last sentences may say little on their own ("Begin
        # each reply with [X]."): next to a removed piece, half the evidence will do.
        grown = True
        while grown:
            edge = {j for i in removed for j in (i - 1, i + 1) if 0 <= j < len(spans)}
            near = {j for j in edge - removed if alone[j] >= threshold / 2}
            removed |= near
            grown = bool(near)
        if len(removed) == len(spans):
            break
        if removed:
            rest, runs = _render(text, spans, removed)
            # NOTE: half, not all of it: what is left of an attack once its plainest
            # sentences are gone says less, and a whole chunk was the rule before.
            # (Scored without the markers, whose words would count against it.)
            if score(_render(text, spans, removed, "\n")[0]) <= threshold / 2:
                return Redaction(rest, tuple(runs))
    return whole(text)
