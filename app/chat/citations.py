"""Turn ``[n]`` markers in an answer into citations of the chunks that support them.

Each marker's claim (the answer's sentence holding it) is scored against every
sentence of the cited chunk: the share of the claim's words the sentence holds
(lexical) and, when an embedder is given, the cosine of the two sentences' MiniLM
vectors. The best sentence is the citation's ``support`` span; a marker whose best
score stays below the calibrated threshold is dropped and counted (issue 11). An
answer without markers gets attributions instead (``"kind": "overlap"``), each
saying whether it is supported.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import structlog

from app.chat.prompt import Source

log = structlog.get_logger(__name__)

EmbedPassages = Callable[
    [Sequence[str]], Awaitable[tuple[Sequence[Sequence[float]], Sequence[int]]]
]
"""Texts to unit vectors (and token counts, unused here): ``RetrievalService.embed``."""

# Calibrated by ``python -m bench.citation_support`` on the dev half of the labelled
# claim/chunk pairs in ``bench/labels/citation_support.jsonl`` (seed 11): the weight of
# the lexical share in the combined score and the combined score a supported claim
# reaches; figures on the test half are in docs/benchmarks.md ("Grounded answers").
LEXICAL_WEIGHT = 0.6
SUPPORT_THRESHOLD = 0.727
# The same calibration with the lexical share alone, for callers without an
# embedder (the shadow comparison).
LEXICAL_THRESHOLD = 0.6

_MARKER = re.compile(r"\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]")
_WORD = re.compile(r"[a-z0-9]{4,}")
# A sentence: up to and including its end mark, or to a blank line or the end. A
# single line break is a space (documents and small models wrap lines), and so is a
# mark followed by a non-space ("x.y"); a line opening a list item starts a sentence.
_SENTENCE = re.compile(
    r"\S(?:[^.!?\n]|[.!?]+(?=\S)|\n(?![ \t]*(?:\n|[*•-] |\d+\. )))*(?:[.!?]+|(?=\n)|$)"
)
_SPACED_MARK = re.compile(r"\s+([.!?,;:])")
_MIN_OVERLAP = 0.2
"""Share of an answer's words a source must hold to be attributed (no markers)."""
_MIN_CLAIM_WORDS = 2


@dataclass(slots=True)
class Cited:
    """An answer's citations and how many of its ``[n]`` markers were dropped."""

    citations: list[dict[str, object]] = field(default_factory=list)
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class _Pair:
    source: Source
    claim: str


async def cite(answer: str, sources: Sequence[Source], embed: EmbedPassages | None = None) -> Cited:
    """Citations for ``answer``, in order of first supported mention, and the markers
    dropped.

    A marker that names a real source whose chunk supports its claim makes that
    source a citation with ``"kind": "marker"`` (once, with the span of its first
    supported claim); every marker whose source does not support its claim is
    dropped and counted; markers beyond the source list are ignored. When the answer
    carries no valid marker at all, the sources sharing enough of its words are cited
    with ``"kind": "overlap"`` (``_attribute``), so a small model that forgets to cite
    still points the reader at where its answer came from; their ``support`` says
    whether a sentence of the answer is supported by them.

    Args:
        answer: The model's answer.
        sources: The numbered sources shown to the model.
        embed: Embeds sentences (one call per answer); ``None`` scores by shared
            words alone, against ``LEXICAL_THRESHOLD``.
    """
    by_number = {s.n: s for s in sources}
    pairs: list[_Pair] = []
    for match in _MARKER.finditer(answer):
        claim = _claim(answer, match.start())
        for part in match.group(1).split(","):
            if int(part) in by_number:
                pairs.append(_Pair(by_number[int(part)], claim))
    if not pairs:
        return await _attribute(answer, sources, embed)
    scorer = await SupportScorer.build(
        [p.claim for p in pairs], [p.source.text for p in pairs], embed
    )
    out = Cited()
    cited: set[int] = set()
    for i, pair in enumerate(pairs):
        span = scorer.support(i)
        if span is None or not scorer.supported(span):
            out.dropped += 1
        elif pair.source.n not in cited:
            cited.add(pair.source.n)
            out.citations.append(_citation(pair.source, "marker", span | {"supported": True}))
    return out


async def _attribute(answer: str, sources: Sequence[Source], embed: EmbedPassages | None) -> Cited:
    """An answer without markers: the sources holding at least ``_MIN_OVERLAP`` of its
    words, each with the span of the answer sentence it supports best and whether that
    reaches the calibrated threshold (``supported``).

    NOTE: this is attribution, not a checked claim: the packaged model writes no
    markers, and the calibrated rule alone found a supporting sentence for only a
    quarter of its answers where this rule names a section that answers the
    question for nine in ten (docs/benchmarks.md, "Grounded answers").
    """
    text = _MARKER.sub("", answer)
    answer_words = _words(text)
    if not answer_words:
        return Cited()
    chosen = [
        s for s in sources if len(answer_words & _words(s.text)) / len(answer_words) >= _MIN_OVERLAP
    ]
    said = [t for _, _, t in sentences(text) if _enough(t)] or [text]
    pairs = [_Pair(source, claim) for source in chosen for claim in said]
    scorer = await SupportScorer.build(
        [p.claim for p in pairs], [p.source.text for p in pairs], embed
    )
    best: dict[int, dict[str, object]] = {}
    for i, pair in enumerate(pairs):
        span = scorer.support(i)
        if span is None:
            continue
        span["supported"] = scorer.supported(span)
        held = best.get(pair.source.n)
        if held is None or float(span["combined"]) > float(held["combined"]):  # type: ignore[arg-type]
            best[pair.source.n] = span
    return Cited([_citation(s, "overlap", best.get(s.n)) for s in chosen])


class SupportScorer:
    """Scores claims against chunk texts; build it once per answer (one embed call)."""

    def __init__(
        self,
        claims: Sequence[str],
        texts: Sequence[str],
        vectors: dict[str, np.ndarray] | None,
    ) -> None:
        self._claims = claims
        self._texts = texts
        self._vectors = vectors

    @classmethod
    async def build(
        cls,
        claims: Sequence[str],
        texts: Sequence[str],
        embed: EmbedPassages | None,
        *,
        prune: bool = True,
    ) -> SupportScorer:
        """A scorer for ``claims[i]`` against ``texts[i]``, embedding the claims and
        chunk sentences in one call when ``embed`` is given.

        With ``prune``, only the sentences sharing enough of a claim's words to pass
        even at a cosine of 1 are embedded (with their claims): the decision is the
        same, at a fraction of the cost. Calibration turns it off to vary the weight.
        """
        if embed is None or not claims:
            return cls(claims, texts, None)
        floor = (SUPPORT_THRESHOLD - (1 - LEXICAL_WEIGHT)) / LEXICAL_WEIGHT if prune else -1.0
        wanted: set[str] = set()
        for claim, text in zip(claims, texts, strict=True):
            words = _words(claim)
            near = [s for _, _, s in sentences(text) if words and _share(words, s) >= floor]
            wanted.update([claim, *near] if near else [])
        if not wanted:
            return cls(claims, texts, {})
        order = sorted(wanted)
        try:
            vectors, _ = await embed(order)
        except Exception as exc:
            # NOTE: citations must never cost the caller an answer; shared words
            # alone still decide them.
            log.warning("citation_embedding_failed", error=repr(exc))
            return cls(claims, texts, None)
        matrix = np.asarray(vectors, dtype=np.float32)
        return cls(claims, texts, dict(zip(order, matrix, strict=True)))

    def supported(self, span: dict[str, object]) -> bool:
        """Whether a span from ``support`` reaches the calibrated threshold."""
        threshold = LEXICAL_THRESHOLD if self._vectors is None else SUPPORT_THRESHOLD
        return float(span["combined"]) >= threshold  # type: ignore[arg-type]

    def support(self, i: int, weight: float = LEXICAL_WEIGHT) -> dict[str, object] | None:
        """The sentence of ``texts[i]`` that best supports ``claims[i]``: its character
        offsets, the share of the claim's words it holds (``score``), the cosine of
        the two (``similarity``, with an embedder) and their calibrated combination
        (``combined``); ``None`` when the claim has no word of four letters or more."""
        claim, text = self._claims[i], self._texts[i]
        wanted = _words(claim)
        if not wanted:
            return None
        best: dict[str, object] | None = None
        for start, end, sentence in sentences(text):
            lexical = _share(wanted, sentence)
            span: dict[str, object] = {"start": start, "end": end, "score": round(lexical, 3)}
            if self._vectors is None:
                combined = lexical
            else:
                pair = self._vectors.get(claim), self._vectors.get(sentence)
                # A sentence left out by pruning cannot pass: count its cosine as 0.
                cosine = 0.0 if pair[0] is None or pair[1] is None else float(pair[0] @ pair[1])
                if pair[0] is not None and pair[1] is not None:
                    span["similarity"] = round(cosine, 3)
                combined = weight * lexical + (1 - weight) * cosine
            span["combined"] = round(combined, 3)
            if best is None or combined > float(best["combined"]):  # type: ignore[arg-type]
                best = span
        return best


def sentences(text: str) -> list[tuple[int, int, str]]:
    """The sentences of ``text`` with their character offsets."""
    return [(m.start(), m.end(), m.group()) for m in _SENTENCE.finditer(text)]


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _share(wanted: set[str], sentence: str) -> float:
    return len(wanted & _words(sentence)) / len(wanted)


def _enough(claim: str) -> bool:
    return len(_words(claim)) >= _MIN_CLAIM_WORDS


def _claim(answer: str, marker_at: int) -> str:
    """The answer's sentence a marker at ``marker_at`` belongs to, markers removed: the
    one it ends, or (a marker opening a sentence, "... valleys. [1]") the one before."""
    spans = sentences(answer)
    for k, (start, end, text) in enumerate(spans):
        if start <= marker_at < end:
            opens = not _MARKER.sub("", answer[start:marker_at]).strip()
            chosen = spans[k - 1][2] if opens and k > 0 else text
            return _SPACED_MARK.sub(r"\1", _MARKER.sub("", chosen)).strip()
    return ""


def _citation(source: Source, kind: str, span: dict[str, object] | None) -> dict[str, object]:
    return {
        "n": source.n,
        "kind": kind,
        "chunk_id": source.chunk_id,
        "document_id": source.document_id,
        "document_name": source.document_name,
        "position": source.position,
        "support": span,
    }
