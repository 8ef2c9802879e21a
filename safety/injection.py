"""Prompt-injection and jailbreak detection in layers.

1. ``normalize`` undoes obfuscation (see ``safety.normalize``); the evidence of
   obfuscation (invisible characters, homoglyphs inside words) adds to the score.
2. ``PatternDetector``: weighted regexes over every normalised variant.
3. ``SimilarityDetector``: cosine similarity of the text's sentences to known
   attack exemplars and to benign exemplars, with the embedding model the app
   already loaded.

4. ``WindowClassifier`` (``safety.injection_windows``, chunks only): a learned
   model of 12- and 32-word windows, for attacks planted in a document.

``InjectionDetector`` combines them. With the packaged exemplar bank
(``safety/injection_exemplars.json``) it is a logistic model over [pattern
score, best attack cosine, best benign cosine] and the text's mean sentence
vector, fitted on the dev half of the benchmark data (``python -m bench.safety
--build``) and shifted so that 0.5 is the operating point chosen on dev.
Without weights (custom exemplars) it is the noisy-OR ``1 - prod(1 - p_i)`` of
the layers' scores.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from safety.exemplar_cache import cached_embeddings
from safety.exemplars import ATTACK_EXEMPLARS, INJECTION_PATTERNS
from safety.normalize import Normalized, normalize

if TYPE_CHECKING:
    from safety.injection_windows import WindowClassifier
    from safety.types import TextEmbedder


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
                if weight > fired.get(name, 0.0) and pattern.search(text):
                    fired[name] = weight
        if norm.invisible_count:
            fired["invisible_characters"] = 0.25
        if norm.confusable_count >= 2:
            fired["homoglyphs"] = 0.25
        if norm.decoded and fired:
            fired["encoded_payload"] = 0.2
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


BANK_PATH = Path(__file__).with_name("injection_exemplars.json")


@cache
def load_bank(path: Path = BANK_PATH) -> dict[str, Any]:
    """The packaged exemplar bank: attack and benign sentences, and the weights.

    Falls back to the hand-written ``ATTACK_EXEMPLARS`` (no benign ones, no
    weights) when the file is missing.
    """
    if not path.is_file():
        return {"attack": list(ATTACK_EXEMPLARS), "benign": [], "weights": None}
    bank: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return bank


def sentences(norm: Normalized) -> list[str]:
    """The pieces of a normalised text that the similarity layer embeds."""
    texts = windows(norm.folded)
    for decoded in norm.decoded:
        texts.extend(windows(decoded, limit=2))
    if norm.leet != norm.folded:
        texts.extend(windows(norm.leet, limit=2))
    return texts


@dataclass(frozen=True, slots=True)
class Weights:
    """Logistic model over [pattern score, attack cosine, benign cosine] and, when
    ``vector`` is given, the text's mean sentence vector (unit length).

    NOTE: the three scores say how close a text comes to *some* attack; the vector
    says what kind of text it is as a whole (a support question that says "ignore my
    last email" against an order to ignore the rules). At the same dev operating
    point it refused 10 of 31 bastioncorpus traps and 3 of 470 Do-Not-Answer
    questions of the held-out half, against 12 and 7 without it, at the same catch.
    """

    pattern: float
    attack: float
    benign: float
    bias: float
    vector: np.ndarray | None = field(default=None, compare=False)

    @classmethod
    def from_bank(cls, weights: dict[str, Any]) -> Weights:
        """The bank's ``weights`` entry, its vector as an array once (it serves every
        question)."""
        vector = weights.get("vector")
        array = None if vector is None else np.asarray(vector, dtype=np.float32)
        return cls(**{**weights, "vector": array})

    def score(
        self, pattern: float, attack: float, benign: float, mean: np.ndarray | None = None
    ) -> float:
        z = self.bias + self.pattern * pattern + self.attack * attack + self.benign * benign
        if self.vector is not None and mean is not None:
            z += float(np.dot(self.vector, mean))
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def mean_direction(vectors: np.ndarray) -> np.ndarray:
    """The unit-length mean of ``vectors`` (rows); zeros when they cancel out."""
    mean: np.ndarray = vectors.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 1e-9 else mean


class SimilarityDetector:
    """Closeness of a text's sentences to attack exemplars and to benign ones.

    Args:
        embedder: The app's embedding model.
        exemplars: Attack sentences; by default the packaged bank (see
            ``load_bank``), which also brings benign sentences and the weights
            of the calibrated combination. All are embedded once here.
        threshold: For custom exemplars only (no weights): the cosine at which
            the score reaches 0.5; it rises linearly to 1 at ``threshold + 0.15``.
        benign: Benign sentences to go with custom ``exemplars``.
        cache_dir: Where the exemplar vectors are kept between processes
            (``safety.exemplar_cache``); ``None`` embeds them every time.
    """

    def __init__(
        self,
        embedder: TextEmbedder,
        exemplars: tuple[str, ...] | None = None,
        threshold: float = 0.62,
        benign: tuple[str, ...] = (),
        cache_dir: Path | None = None,
    ) -> None:
        self._embedder = embedder
        self._cache_dir = cache_dir
        if exemplars is None:
            bank = load_bank()
            exemplars = tuple(bank["attack"])
            benign = tuple(bank["benign"])
            w = bank.get("weights")
            self.weights = Weights.from_bank(w) if w else None
        else:
            self.weights = None
        self._matrix = self._embed(list(exemplars))
        self._benign = self._embed(list(benign))
        self.threshold = threshold

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return cached_embeddings(self._embedder, texts, self._cache_dir)

    def cosines(self, texts: list[str]) -> tuple[float, float]:
        """The highest cosine of any of ``texts`` to an attack and to a benign exemplar."""
        attack, benign, _ = self.features(texts)
        return attack, benign

    def features(self, texts: list[str]) -> tuple[float, float, np.ndarray | None]:
        """``cosines`` and the unit-length mean of the texts' vectors (``None`` for none)."""
        if not texts:
            return 0.0, 0.0, None
        vectors = np.asarray(self._embedder.embed_documents(texts), dtype=np.float32)
        attack = float((vectors @ self._matrix.T).max())
        benign = float((vectors @ self._benign.T).max()) if self._benign.size else 0.0
        return attack, benign, mean_direction(vectors)

    def similarity(self, texts: list[str]) -> float:
        """The highest cosine of any of ``texts`` to any attack exemplar."""
        return self.cosines(texts)[0]

    def detect(self, norm: Normalized) -> Detection:
        """The uncalibrated layer score (used when there are no weights)."""
        best = self.similarity(sentences(norm))
        score = min(1.0, max(0.0, 0.5 + (best - self.threshold) / 0.3))
        if best < self.threshold - 0.15:
            score = 0.0
        return Detection(score, (f"similar_to_attack:{best:.2f}",) if score >= 0.5 else ())


class InjectionDetector:
    """All layers together; ``similarity`` and ``windows`` are optional."""

    def __init__(
        self,
        patterns: PatternDetector | None = None,
        similarity: SimilarityDetector | None = None,
        windows: WindowClassifier | None = None,
    ) -> None:
        self.patterns = patterns or PatternDetector()
        self.similarity = similarity
        self.windows = windows

    def detect(self, text: str) -> Detection:
        norm = normalize(text)
        found = self._detect(norm)
        if self.windows is None:
            return found
        score, rule = self.windows.judge(norm.folded)
        if score <= found.score:
            return found
        return Detection(score, (*found.rules, rule))

    def _detect(self, norm: Normalized) -> Detection:
        pattern = self.patterns.detect(norm)
        found = [pattern]
        if self.similarity is not None and self.similarity.weights is not None:
            attack, benign, mean = self.similarity.features(sentences(norm))
            # NOTE: a pattern hit alone still counts (patterns fire on no benign dev prompt).
            weights = self.similarity.weights
            score = max(pattern.score, weights.score(pattern.score, attack, benign, mean))
            extra = (f"similar_to_attack:{attack:.2f}",) if score >= 0.5 else ()
            return Detection(score, pattern.rules + extra)
        if self.similarity is not None:
            found.append(self.similarity.detect(norm))
        rules = tuple(r for d in found for r in d.rules)
        return Detection(combine([d.score for d in found]), rules)
