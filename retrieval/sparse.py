"""BM25-style sparse vectors: what the ``sparse`` named vector of a chunk holds.

A document's vector holds, for each stemmed word, BM25's saturated and
length-normalised term frequency; a query's vector holds 1.0 per distinct word.
The IDF factor is not in either: Qdrant applies it at query time from its own
collection statistics (``Modifier.IDF``), so the score of a chunk is exactly

    sum over query words t of
        idf(t) * tf(t) * (k1 + 1) / (tf(t) + k1 * (1 - b + b * len / avg_len))

which is Okapi BM25. Words are Unicode words (``regex`` ``\\w+``), case-folded and
reduced with the Snowball English stemmer, so "Refunds" matches "refund".
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import regex
import snowballstemmer

if TYPE_CHECKING:
    from collections.abc import Sequence

_WORD = regex.compile(r"\w+", regex.UNICODE)
_MAX_WORD_CHARS = 64


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Parallel arrays of term indices (sorted, unique) and weights."""

    indices: list[int]
    values: list[float]

    def as_dict(self) -> dict[int, float]:
        return dict(zip(self.indices, self.values, strict=True))


_stemmers = threading.local()


@lru_cache(maxsize=1 << 18)
def _stem(language: str, word: str) -> str:
    # NOTE: memoised, since stemming in pure Python costs ~30 µs a word and a
    # vocabulary repeats itself (Zipf): ingesting 100k chunks would spend minutes here.
    # A Snowball stemmer object is not thread-safe, hence one per thread.
    stemmers = _stemmers.__dict__.setdefault("by_language", {})
    stemmer = stemmers.get(language)
    if stemmer is None:
        stemmer = stemmers[language] = snowballstemmer.stemmer(language)
    return str(stemmer.stemWord(word.casefold()))


@lru_cache(maxsize=1 << 18)
def _term(language: str, word: str) -> int:
    return term_index(_stem(language, word))


def term_index(term: str) -> int:
    """A term's index: the first 4 bytes of its BLAKE2b hash (stable across runs and nodes).

    NOTE: Python's ``hash`` is salted per process, so it would give every node and
    every restart different indices; a cryptographic hash does not. 2**32 buckets
    make collisions between the words of one vocabulary vanishingly rare.
    """
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "big")


class Bm25Encoder:
    """Turns text into BM25 sparse vectors (documents) and term sets (queries).

    Thread-safe and cheap to share: it holds only its parameters and a stemmer.
    """

    def __init__(
        self, k1: float = 1.2, b: float = 0.75, avg_len: float = 150.0, language: str = "english"
    ) -> None:
        """Set BM25's parameters.

        Args:
            k1: Term-frequency saturation; higher lets repeated words count longer.
            b: Length normalisation, 0 (none) to 1 (full).
            avg_len: Average chunk length in words, BM25's ``avgdl``.
            language: Snowball stemmer language.

        NOTE: ``avg_len`` is fixed rather than measured over the corpus, since the
        weights are computed on the client at upsert time and must not change as the
        corpus grows. 150 words is about a default 200-token chunk.
        """
        if k1 < 0 or not 0 <= b <= 1 or avg_len <= 0:
            raise ValueError("need k1 >= 0, 0 <= b <= 1 and avg_len > 0")
        self.k1, self.b, self.avg_len = k1, b, avg_len
        self._language = language

    def words(self, text: str) -> list[str]:
        """The text's stemmed, case-folded words, in order."""
        return [_stem(self._language, w) for w in _WORD.findall(text) if len(w) <= _MAX_WORD_CHARS]

    def terms(self, text: str) -> list[int]:
        """The text's words as term indices, in order."""
        language = self._language
        return [_term(language, w) for w in _WORD.findall(text) if len(w) <= _MAX_WORD_CHARS]

    def encode_document(self, text: str) -> SparseVector:
        """A chunk's vector: BM25 term-frequency weights (Qdrant multiplies in the IDF)."""
        terms = self.terms(text)
        counts = Counter(terms)
        norm = self.k1 * (1 - self.b + self.b * len(terms) / self.avg_len)
        indices = sorted(counts)
        values = [counts[i] * (self.k1 + 1) / (counts[i] + norm) for i in indices]
        return SparseVector(indices, values)

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        return [self.encode_document(text) for text in texts]

    def encode_query(self, text: str) -> SparseVector:
        """A query's vector: 1.0 per distinct word."""
        indices = sorted(set(self.terms(text)))
        return SparseVector(indices, [1.0] * len(indices))
