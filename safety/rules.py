"""Pattern rules that rewrite spans of text, and the engine that applies them.

A ``Rule`` is a regex (the ``regex`` module, for partial matches), an optional
check of each match, and a replacement. ``RuleSet.apply`` rewrites a whole text;
``RuleSet.settled`` tells the streaming redactor how much of a growing text no
later character can change (see ``safety.stream``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import regex

from safety.types import Category

Validator = Callable[[str], int | None]
"""Given a raw match, the length of the span to rewrite (a prefix), or ``None``."""


def _whole(text: str) -> int | None:
    return len(text)


@dataclass(frozen=True, slots=True)
class Rule:
    """One kind of span to rewrite.

    Attributes:
        name: Entity or rule name, e.g. ``"EMAIL"``; also the placeholder text.
        category: What the verdict calls it.
        pattern: The candidate spans. Must not match the empty string.
        validate: Accepts (returning the span length) or rejects a candidate.
        replace: The rewrite of an accepted span; ``[NAME]`` by default.
        margin: Characters after a match's end that can still change it (an
            optional tail such as ``.uk`` after ``bob@ex.co``). A match that ends
            closer than this to the end of a growing text is not final yet.
        priority: Breaks ties between overlapping matches of equal start and length.
    """

    name: str
    category: Category
    pattern: regex.Pattern[str]
    validate: Validator = _whole
    replace: Callable[[str], str] | None = None
    margin: int = 2
    priority: int = 0

    def rewrite(self, span: str) -> str:
        return self.replace(span) if self.replace is not None else f"[{self.name}]"


@dataclass(frozen=True, slots=True)
class Hit:
    """An accepted span: ``text[start:end]`` is ``rule``'s entity."""

    rule: Rule
    start: int
    end: int


def compile_rule(pattern: str, flags: int = 0) -> regex.Pattern[str]:
    return regex.compile(pattern, flags | regex.VERSION0)


class RuleSet:
    """An ordered set of rules applied together, overlaps resolved once."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)

    def hits(self, text: str, pos: int = 0, endpos: int | None = None) -> list[Hit]:
        """Accepted, non-overlapping spans of ``text[pos:endpos]``, in order.

        Characters before ``pos`` are context only (look-behinds and ``\\b`` see
        them); no span starts there.
        """
        end = len(text) if endpos is None else endpos
        found: list[Hit] = []
        for rule in self.rules:
            for m in rule.pattern.finditer(text, pos, end):
                length = rule.validate(m.group(0))
                if length:
                    found.append(Hit(rule, m.start(), m.start() + length))
        return _resolve(found)

    def apply(self, text: str, pos: int = 0, endpos: int | None = None) -> tuple[str, list[Hit]]:
        """``text[pos:endpos]`` with every accepted span rewritten, and the spans."""
        end = len(text) if endpos is None else endpos
        hits = self.hits(text, pos, end)
        return rewrite(text, hits, pos, end), hits

    def settled(self, text: str, pos: int = 0) -> int:
        """The end of the prefix of ``text[pos:]`` that more text cannot change.

        NOTE: a span is unsettled when a rule partially matches there (the text
        ends inside a possible match), when a full match ends within the rule's
        ``margin`` of the end, or when it overlaps an unsettled span. Candidates
        count whether or not they validate, so each rule's scan resumes where a
        scan of the whole text would.
        """
        n = len(text)
        spans: list[tuple[int, int]] = []
        cut = n
        for rule in self.rules:
            for m in rule.pattern.finditer(text, pos, n, partial=True):
                if m.partial or n - m.end() <= rule.margin:
                    cut = min(cut, m.start())
                else:
                    spans.append((m.start(), m.end()))
        # NOTE: a partial search reports a partial match only where no full match
        # follows, so a longer candidate starting earlier can hide behind a short
        # full match near the end: try each unreleased position anchored.
        for start in range(pos, cut):
            if any(_unsettled_at(rule, text, start) for rule in self.rules):
                cut = start
                break
        changed = True
        while changed:
            changed = False
            for start, end in spans:
                if start < cut < end:
                    cut, changed = start, True
        return cut


def _unsettled_at(rule: Rule, text: str, start: int) -> bool:
    m = rule.pattern.match(text, start, len(text), partial=True)
    return m is not None and (m.partial or len(text) - m.end() <= rule.margin)


def rewrite(text: str, hits: Iterable[Hit], start: int, end: int) -> str:
    """``text[start:end]`` with ``hits`` (sorted, inside that range) rewritten."""
    out, cursor = [], start
    for hit in hits:
        out.append(text[cursor : hit.start])
        out.append(hit.rule.rewrite(text[hit.start : hit.end]))
        cursor = hit.end
    out.append(text[cursor:end])
    return "".join(out)


def _resolve(hits: Iterable[Hit]) -> list[Hit]:
    """Keep the earliest, then longest, then highest-priority of overlapping hits."""
    ordered = sorted(hits, key=lambda h: (h.start, -(h.end - h.start), -h.rule.priority))
    kept: list[Hit] = []
    for hit in ordered:
        if not kept or hit.start >= kept[-1].end:
            kept.append(hit)
    return kept
