"""Prompt-injection and jailbreak detection in layers.

1. ``normalize`` undoes obfuscation (see ``safety.normalize``); the evidence of
   obfuscation (invisible characters, homoglyphs inside words) adds to the score.
2. ``PatternDetector``: weighted regexes over every normalised variant.
3. ``SimilarityDetector``: cosine similarity of the text's sentences to known
   attack exemplars, with the embedding model the app already loaded.

``InjectionDetector`` combines them: ``1 - prod(1 - p_i)`` over the layers' scores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from safety.exemplars import ATTACK_EXEMPLARS, INJECTION_PATTERNS
from safety.normalize import Normalized, normalize


class TextEmbedder(Protocol):
    """The part of the app's embedder this package uses (unit-length float32 rows)."""

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Detection:
    """A detector's score in [0, 1] and the names of the rules behind it."""

    score: float
    rules: tuple[str, ...] = ()


def combine(scores: list[float]) -> float:
    """Noisy-OR of independent pieces of evidence."""
    keep = 1.0
    for s in scores:
        keep *= 1.0 - min(max(s, 0.0), 1.0)
    return 1.0 - keep


class PatternDetector:
    """Weighted regexes over the normalised variants of a text."""

    def __init__(self, patterns: tuple[tuple[str, float, str], ...] = INJECTION_PATTERNS) -> None:
        self._patterns = [(re.compile(p), w, name) for p, w, name in patterns]

    def detect(self, norm: Normalized) -> Detection:
        fired: dict[str, float] = {}
        for text in norm.variants():
            for pattern, weight, name in self._patterns:
                if name not in fired and pattern.search(text):
                    fired[name] = weight
        if norm.invisible_count:
            fired["invisible_characters"] = 0.25
        if norm.confusable_count >= 2:
            fired["homoglyphs"] = 0.25
        if norm.decoded and fired:
            fired["base64_payload"] = 0.2
        return Detection(combine(list(fired.values())), tuple(sorted(fired)))


_SENTENCE = re.compile(r"(?<=[.!?\n])\s+")


def windows(text: str, size: int = 60, limit: int = 4) -> list[str]:
    """Sentences of ``text``, long ones split into ``size``-word windows, at most ``limit``."""
    out: list[str] = []
    for sentence in _SENTENCE.split(text):
        words = sentence.split()
        for i in range(0, max(len(words), 1), size):
            piece = " ".join(words[i : i + size])
            if len(piece) >= 12:
                out.append(piece)
    if len(out) > limit:
        # NOTE: attacks put the instruction up front or at the very end.
        out = out[: limit // 2] + out[-(limit - limit // 2) :]
    return out


class SimilarityDetector:
    """Closeness of a text's sentences to known attack exemplars.

    Args:
        embedder: The app's embedding model.
        exemplars: Attack sentences; embedded once here.
        threshold: Cosine at which the score reaches 0.5; it rises linearly to 1
            at ``threshold + 0.15``.
    """

    def __init__(
        self,
        embedder: TextEmbedder,
        exemplars: tuple[str, ...] = ATTACK_EXEMPLARS,
        threshold: float = 0.62,
    ) -> None:
        self._embedder = embedder
        self._matrix = np.asarray(embedder.embed_documents(list(exemplars)), dtype=np.float32)
        self.threshold = threshold

    def similarity(self, texts: list[str]) -> float:
        """The highest cosine of any of ``texts`` to any exemplar."""
        if not texts:
            return 0.0
        vectors = np.asarray(self._embedder.embed_documents(texts), dtype=np.float32)
        return float((vectors @ self._matrix.T).max())

    def detect(self, norm: Normalized) -> Detection:
        texts = windows(norm.folded)
        for decoded in norm.decoded:
            texts.extend(windows(decoded, limit=2))
        if norm.leet != norm.folded:
            texts.extend(windows(norm.leet, limit=2))
        best = self.similarity(texts)
        score = min(1.0, max(0.0, 0.5 + (best - self.threshold) / 0.3))
        if best < self.threshold - 0.15:
            score = 0.0
        return Detection(score, (f"similar_to_attack:{best:.2f}",) if score >= 0.5 else ())


class InjectionDetector:
    """All layers together; ``similarity`` is optional (no embedder, no layer 3)."""

    def __init__(
        self,
        patterns: PatternDetector | None = None,
        similarity: SimilarityDetector | None = None,
    ) -> None:
        self.patterns = patterns or PatternDetector()
        self.similarity = similarity

    def detect(self, text: str) -> Detection:
        norm = normalize(text)
        found = [self.patterns.detect(norm)]
        if self.similarity is not None:
            found.append(self.similarity.detect(norm))
        rules = tuple(r for d in found for r in d.rules)
        return Detection(combine([d.score for d in found]), rules)
