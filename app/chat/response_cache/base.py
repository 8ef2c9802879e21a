"""The response cache: the interface (``memory.py``, ``redis.py`` below) and its records.

An answer is cached under two keys built by ``app.chat.response_cache.keys``:

- ``exact``: everything that decides the answer (the normalised question, the
  conversation context that reaches the prompt, the sources in their order with
  their content hashes, the model version, the sampling settings);
- ``scope``: the same without the question and with the sources as a set: the
  semantic cache compares a new question's embedding with the questions cached in
  its scope, so a paraphrase hits only when it would have been answered from the
  very same chunks by the very same model and settings.

Because the chunks' content hashes are part of both keys, a cached answer can never
be served for a document that changed since: the new retrieval names other hashes.
``invalidate_document`` and ``retain_versions`` free what can no longer hit at once.
"""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import Counter

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    Admits = Callable[["CachedAnswer"], bool]

FORMAT = 1
"""Bumped when a record's shape or a key's recipe changes: older entries stop hitting."""

EVENTS = Counter(
    "ragserve:response_cache_events_total",
    "Response cache events: stores, evictions (the byte budget), invalidations (a "
    "document changed or a model version stopped answering), and semantic candidates "
    "above the threshold that the guard refused (each a wrong hit avoided).",
    ["event"],
)
SECONDS_SAVED = Counter(
    "ragserve:response_cache_seconds_saved_total",
    "Generation time cache hits did not spend again: the original answer's "
    "generation time minus the hit's replay.",
)


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Where an answer is cached and what it depends on."""

    tenant_id: str
    exact: str
    scope: str
    model: str
    version: str
    document_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A generated answer as the cache keeps it: enough to replay it as a turn."""

    pieces: tuple[str, ...]
    """The streamed pieces, replayed one event each."""
    finish_reason: str
    sources: tuple[dict[str, Any], ...]
    """The sources the answer was generated from, as the client saw them (``n`` and
    ``text`` included): a hit answers with these, whose numbers its markers cite."""
    question: str
    message_id: str
    """The answer it copies (the first turn that generated it)."""
    created_at: float
    embedding: tuple[float, ...] | None = None
    """The question's unit vector, for the semantic cache; ``None``: exact only."""
    generation_s: float = 0.0
    """How long generating it took (what a hit saves)."""

    def to_dict(self) -> dict[str, Any]:
        """The answer as JSON-ready values (how the Redis cache stores it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CachedAnswer:
        embedding = data.get("embedding")
        return cls(
            pieces=tuple(data["pieces"]),
            finish_reason=data["finish_reason"],
            sources=tuple(data["sources"]),
            question=data["question"],
            message_id=data["message_id"],
            created_at=data["created_at"],
            embedding=None if embedding is None else tuple(embedding),
            generation_s=float(data.get("generation_s", 0.0)),
        )

    @property
    def size(self) -> int:
        """Approximate bytes held in memory (the in-process cache's budget counts these)."""
        text = sum(len(p) for p in self.pieces) + len(self.question)
        sources = sum(len(str(s.get("text", ""))) + 200 for s in self.sources)
        return 2 * (text + sources) + 8 * len(self.embedding or ()) + 400


@dataclass(frozen=True, slots=True)
class CacheHit:
    answer: CachedAnswer
    kind: str
    """``exact`` or ``semantic``."""
    similarity: float
    """1.0 for an exact hit; the cosine of the two questions for a semantic one."""


@dataclass(slots=True)
class CacheProbe:
    """A turn's dealings with the cache: its key, its question's vector, its hit."""

    key: CacheKey
    embedding: tuple[float, ...] | None = None
    hit: CacheHit | None = None

    def usage(self) -> dict[str, Any]:
        """What the stored answer's ``usage`` says about the cache (nothing on a miss)."""
        if self.hit is None:
            return {}
        return {
            "cached": True,
            "cache_kind": self.hit.kind,
            "cache_similarity": round(self.hit.similarity, 4),
            "cached_from": self.hit.answer.message_id,
        }


@dataclass(slots=True)
class CacheCounters:
    exact_hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    stores: int = 0
    invalidated: int = 0
    evicted: int = 0
    guarded: int = 0
    """Semantic candidates above the threshold that the guard refused."""

    def count(self, event: str, n: int = 1) -> None:
        """Count ``n`` stores, evictions, invalidations or guard refusals, here and in
        the exported metrics."""
        if n:
            setattr(self, event, getattr(self, event) + n)
            EVENTS.labels(event).inc(n)


class ResponseCache(ABC):
    """Cached answers per tenant, in this process or shared through Redis."""

    @abstractmethod
    async def get_exact(self, key: CacheKey) -> CachedAnswer | None:
        """The answer cached under ``key.exact``, or ``None``."""

    @abstractmethod
    async def get_similar(
        self,
        key: CacheKey,
        embedding: Sequence[float],
        threshold: float,
        admits: Admits | None = None,
    ) -> CacheHit | None:
        """The answer in ``key.scope`` whose question is most similar to ``embedding``,
        if that similarity is at least ``threshold``, among those ``admits`` accepts."""

    @abstractmethod
    async def put(self, key: CacheKey, answer: CachedAnswer) -> None:
        """Cache ``answer`` under ``key`` (replacing one cached there)."""

    @abstractmethod
    async def invalidate_document(self, tenant_id: str, document_id: str) -> int:
        """Drop every answer generated from a chunk of the document; returns how many."""

    @abstractmethod
    async def retain_versions(self, serving: Iterable[tuple[str, str]]) -> int:
        """Drop every answer of a model version not in ``serving`` ((model, version)
        pairs that answer now); returns how many."""

    @abstractmethod
    async def clear(self, tenant_id: str | None = None) -> None:
        """Drop every answer, or one tenant's."""

    @property
    @abstractmethod
    def counters(self) -> CacheCounters:
        """What this process saw: hits, misses, stores, invalidations, evictions."""


_SPACES = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s?!.,;:]+$")


def normalize_question(text: str) -> str:
    """The question as the exact cache compares it: Unicode NFKC, case-folded, runs of
    spaces as one, without trailing punctuation ("How do I X?" == "how do i x")."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _TRAILING.sub("", _SPACES.sub(" ", folded).strip())


def best_match(
    embedding: Sequence[float],
    candidates: Sequence[tuple[str, CachedAnswer]],
    threshold: float,
    admits: Admits | None,
    counters: CacheCounters,
) -> tuple[str, float] | None:
    """The candidate (id, answer with its question's vector) most similar to
    ``embedding`` by cosine with at least ``threshold``, that ``admits`` accepts,
    and that cosine; each more similar one the guard refused is counted."""
    if not candidates:
        return None
    query = np.asarray(embedding, dtype=np.float32)
    matrix = np.asarray([answer.embedding for _, answer in candidates], dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(query))
    scores = matrix @ query / np.where(norms > 0, norms, 1.0)
    for best in np.argsort(-scores, kind="stable"):
        score = float(scores[best])
        if score < threshold:
            return None
        if admits is None or admits(candidates[best][1]):
            return candidates[best][0], score
        counters.count("guarded")
    return None
