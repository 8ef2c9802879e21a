"""A learned classifier of short word windows, for instructions planted in documents.

A retrieved chunk is mostly its document; an indirect injection is a span of it.
Judging the chunk as a whole (one embedding, one score) lets the document drown
the span out, so this layer scores every window of 12 and of 32 words (half
overlapping) and keeps the highest.

Each window is a bag of its words and word pairs (the ``normalize``d text, so
homoglyphs and invisible characters do not split words), hashed into ``DIM``
buckets and divided by the window's length; the score is a logistic model over
it: ``bias + mean(weight of each n-gram)``. Because the model is linear, a
chunk's windows are scored from one lookup of its n-grams' weights: ~0.5 ms a
chunk on one CPU core (the patterns take ~0.8 ms).

The weights, the bias and the threshold ship as ``injection_windows.npz``; they
are fitted by ``python -m bench.safety_windows --build`` on the dev half of the
labelled attack prompts against documents of other corpora than the ones the
quality benchmark reports on (see that module).
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from safety.normalize import normalize

DIM = 1 << 18
SIZES = (12, 32)
WEIGHTS_PATH = Path(__file__).with_name("injection_windows.npz")

# Words (with apostrophes) and single punctuation marks: "ignore" and "ignore:"
# share the word, and code punctuation is its own token.
_TOKEN = re.compile(r"[a-z0-9']+|[^\sa-z0-9']")


def tokens(text: str) -> list[str]:
    """The folded text's tokens (lowercase, homoglyphs and invisibles undone)."""
    return folded_tokens(normalize(text).folded)


def folded_tokens(folded: str) -> list[str]:
    """The tokens of a text already folded by ``normalize``; a run of one
    punctuation mark counts once, so banners (``!!!!``, ``====``, ``----``) do not
    fill a window with one repeated n-gram."""
    out: list[str] = []
    for token in _TOKEN.findall(folded):
        if out and token == out[-1] and not token[0].isalnum():
            continue
        out.append(token)
    return out


def _bucket(gram: str) -> int:
    # NOTE: crc32, not hash(): Python salts str hashes per process.
    return zlib.crc32(gram.encode()) % DIM


def ngram_buckets(toks: list[str]) -> tuple[list[int], list[int]]:
    """Bucket of each token, and of each pair of neighbouring tokens."""
    unigrams = [_bucket(t) for t in toks]
    bigrams = [_bucket(f"{a} {b}") for a, b in itertools.pairwise(toks)]
    return unigrams, bigrams


def spans(count: int, sizes: tuple[int, ...] = SIZES) -> list[tuple[int, int]]:
    """``(start, end)`` of every window over ``count`` tokens (words and
    punctuation marks), sorted.

    Windows of each size step by half a size from the start; the last one ends
    at the text's end, so it may be as short as half a size and one token. A
    text no longer than a size is one window, the whole text.
    """
    out: set[tuple[int, int]] = set()
    for size in sizes:
        if count <= size:
            out.add((0, count))
            continue
        step = size // 2
        for start in range(0, count - size + step, step):
            out.add((start, min(start + size, count)))
    return sorted(out)


def window_grams(unigrams: list[int], bigrams: list[int], start: int, end: int) -> list[int]:
    """The n-gram buckets of the window ``[start, end)``."""
    return unigrams[start:end] + bigrams[start : max(start, end - 1)]


@dataclass(frozen=True, slots=True)
class WindowScore:
    """A text's best window: its logit and its words."""

    logit: float
    window: str


class WindowClassifier:
    """The logistic model over hashed n-grams of word windows.

    Args:
        weights: One weight per bucket (``DIM``).
        bias: The model's intercept.
        threshold: The logit at or above which a window counts as an injection
            (chosen on calibration documents when the model was fitted).
    """

    def __init__(self, weights: np.ndarray, bias: float, threshold: float) -> None:
        if weights.shape != (DIM,):
            raise ValueError(f"window classifier: expected {DIM} weights, got {weights.shape}")
        self.weights = weights.astype(np.float32)
        self.bias = float(bias)
        self.threshold = float(threshold)

    @classmethod
    def load(cls, path: Path = WEIGHTS_PATH) -> WindowClassifier:
        """Read a model written by ``save``.

        Raises:
            ValueError: The file is missing, unreadable, not a model of this shape
                or holds a weight, bias or threshold that is not a finite number.
        """
        try:
            with np.load(path) as data:
                model = cls(data["weights"], float(data["bias"]), float(data["threshold"]))
        except Exception as exc:  # a zip, an array or a number: each fails its own way
            raise ValueError(f"window classifier {path}: {exc!r}") from exc
        finite = np.isfinite(model.weights).all() and math.isfinite(model.bias + model.threshold)
        if not finite:
            raise ValueError(f"window classifier {path}: a weight is not a finite number")
        return model

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            weights=self.weights.astype(np.float16),
            bias=np.float32(self.bias),
            threshold=np.float32(self.threshold),
        )

    def best(self, text: str) -> WindowScore:
        """The highest-scoring window of ``text``."""
        return self.best_of(tokens(text))

    def judge(self, folded: str) -> tuple[float, str]:
        """The best window of a ``normalize``d text as a detector's score and rule:
        the sigmoid of its logit less the threshold (0.5 exactly at the threshold),
        and ``learned_window:<logit>``."""
        best = self.best_of(folded_tokens(folded))
        margin = max(min(best.logit - self.threshold, 50.0), -50.0)
        return 1.0 / (1.0 + math.exp(-margin)), f"learned_window:{best.logit:.2f}"

    def best_of(self, toks: list[str]) -> WindowScore:
        """The highest-scoring window of a text's ``tokens``."""
        if not toks:
            return WindowScore(-math.inf, "")
        unigrams, bigrams = ngram_buckets(toks)
        gram_weights = self.weights[np.asarray(unigrams + bigrams, dtype=np.int64)]
        # Prefix sums: a window's mean weight is two lookups per n-gram kind.
        uni = np.concatenate(([0.0], np.cumsum(gram_weights[: len(unigrams)], dtype=np.float64)))
        bi = np.concatenate(([0.0], np.cumsum(gram_weights[len(unigrams) :], dtype=np.float64)))
        best_logit, best_span = -math.inf, (0, 0)
        for start, end in spans(len(toks)):
            bi_end = max(start, end - 1)
            total = uni[end] - uni[start] + bi[bi_end] - bi[start]
            logit = self.bias + total / (end - start + bi_end - start)
            if logit > best_logit:
                best_logit, best_span = logit, (start, end)
        return WindowScore(float(best_logit), " ".join(toks[best_span[0] : best_span[1]]))


@cache
def packaged_classifier() -> WindowClassifier:
    """The model that ships with ragserve, read once per process."""
    return WindowClassifier.load()
