"""What the task page shows of a task: the conversation up to the answer, the
sources the model was given (withheld ones marked) with the spans its citations
lean on highlighted, the safety verdicts, and the labels so far."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from safety.audit import StoredVerdict

__all__ = ["CATEGORIES", "SourceView", "highlight", "source_views", "verdict_rows"]

CATEGORIES: tuple[tuple[str, str], ...] = (
    ("good", "Good"),
    ("hallucination", "Hallucination"),
    ("wrong_citation", "Wrong citation"),
    ("irrelevant_source", "Irrelevant source"),
    ("unsafe", "Unsafe"),
    ("pii_leak", "PII leak"),
    ("over_refusal", "Refusal that should have answered"),
)
"""Label categories, in the order of their keyboard shortcuts (1 to 7)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of a source's text, highlighted when a citation leans on it."""

    text: str
    cited_by: tuple[int, ...] = ()


@dataclass(slots=True)
class SourceView:
    """One source as the page shows it."""

    n: int | None
    """Its number in the prompt; ``None`` for a withheld chunk (not in the prompt)."""
    document: str
    score: float | None
    segments: list[Segment]
    withheld: bool = False
    verdict: dict[str, Any] | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)


def highlight(text: str, spans: Iterable[tuple[int, int, int]]) -> list[Segment]:
    """``text`` cut into segments at the ``(start, end, citation n)`` spans; an
    overlap of two citations' spans is marked with both."""
    cuts = {0, len(text)}
    kept = [(max(0, s), min(len(text), e), n) for s, e, n in spans if 0 <= s < e]
    for start, end, _ in kept:
        cuts.update((start, end))
    points = sorted(cuts)
    segments = []
    for start, end in itertools.pairwise(points):
        by = tuple(sorted({n for s, e, n in kept if s <= start and end <= e}))
        segments.append(Segment(text[start:end], by))
    return segments or [Segment(text)]


def source_views(
    sources: Sequence[dict[str, Any]], citations: Sequence[dict[str, Any]]
) -> list[SourceView]:
    """The answer's sources in prompt order, withheld ones last, each with its
    citations and their supporting spans highlighted."""
    views = []
    for source in sources:
        n = source.get("n")
        text = str(source.get("text") or "")
        cites = [c for c in citations if n is not None and c.get("n") == n]
        spans = [
            (int(c["support"]["start"]), int(c["support"]["end"]), int(n))
            for c in cites
            if isinstance(c.get("support"), dict) and n is not None
        ]
        verdict = source.get("verdict")
        views.append(
            SourceView(
                n=n,
                document=str(source.get("document_name") or source.get("document_id") or ""),
                score=source.get("score"),
                segments=highlight(text, spans),
                withheld=n is None,
                verdict=verdict if isinstance(verdict, dict) else None,
                citations=cites,
            )
        )
    return sorted(views, key=lambda v: (v.withheld, v.n or 0))


def verdict_rows(verdicts: Iterable[StoredVerdict]) -> list[dict[str, Any]]:
    """The stored safety verdicts of the answer and its question, for a table."""
    return [
        {
            "filter": v.verdict.filter,
            "stage": str(v.verdict.stage),
            "category": str(v.verdict.category),
            "action": str(v.verdict.action),
            "score": round(v.verdict.score, 3),
            "reason": v.verdict.reason,
        }
        for v in verdicts
    ]
