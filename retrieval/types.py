"""Value types returned by the retrieval service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class DocumentStatus(StrEnum):
    QUEUED = "queued"
    INDEXING = "indexing"
    READY = "ready"
    FAILED = "failed"


class IngestOutcome(StrEnum):
    """What an ingest call did with the document."""

    CREATED = "created"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    id: str
    tenant_id: str
    collection: str
    name: str
    content_type: str
    content_hash: str
    size_bytes: int
    chunk_count: int
    status: DocumentStatus
    error: str | None
    created_at: datetime
    updated_at: datetime
    error_code: str | None = None
    """Why the document failed, as a code (``retrieval.errors.FAILURES``)."""


@dataclass(frozen=True, slots=True)
class IngestionQuota:
    """How much one tenant may store: documents and bytes (of the uploads as sent)."""

    max_bytes: int
    max_documents: int


@dataclass(frozen=True, slots=True)
class IngestResult:
    document: DocumentInfo
    outcome: IngestOutcome


@dataclass(frozen=True, slots=True)
class ChunkHit:
    """One retrieved chunk, best first in a result list."""

    chunk_id: str
    document_id: str
    document_name: str
    collection: str
    position: int
    text: str
    score: float
    """The score the search ranked by: a cosine (dense), BM25 (sparse) or a fused
    rank score (hybrid)."""
    similarity: float | None = None
    """The chunk's cosine similarity with the query, whatever the mode ranked by: how
    close in meaning the best chunk is, which a fused score cannot say."""


@dataclass(frozen=True, slots=True)
class DocumentPage:
    items: list[DocumentInfo]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class IngestJob:
    """What a queue entry carries: a reference to a stored upload, never its bytes.

    Attributes:
        tenant_id: The owning tenant.
        document_id: The document to (re)index.
        content_hash: SHA-256 of the upload; a job whose hash no longer matches the
            document's row was superseded by a newer upload and is dropped.
    """

    tenant_id: str
    document_id: str
    content_hash: str


@dataclass(frozen=True, slots=True)
class Upload:
    """A document to ingest, as a client sent it."""

    name: str
    data: bytes
    content_type: str | None = None
    collection: str = "default"


OnChunksChanged = Callable[[str, str, str], Awaitable[None]]
"""``(tenant_id, collection, document_id)``: called after a document's points were
upserted, replaced or deleted, so node-local caches can drop what they hold of it."""


async def no_chunks_changed(tenant_id: str, collection: str, document_id: str) -> None:
    """The default ``OnChunksChanged``: nothing to invalidate."""


class SearchMode(StrEnum):
    """Which vectors a search ranks by."""

    DENSE = "dense"
    """Cosine similarity of all-MiniLM-L6-v2 embeddings (meaning)."""
    SPARSE = "sparse"
    """BM25 over the chunks' words (exact terms: names, codes, rare words)."""
    HYBRID = "hybrid"
    """Both rankings, fused."""


class Fusion(StrEnum):
    """How a hybrid search merges its dense and sparse rankings."""

    RRF = "rrf"
    """Reciprocal rank fusion: ranks only, robust to the scores' different scales."""
    DBSF = "dbsf"
    """Distribution-based score fusion: each ranking's scores normalised by mean ± 3σ, summed."""


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """One validated search: what ``RetrievalService.search`` hands to the search path."""

    tenant_id: str
    query: str
    k: int
    collection: str | None
    score_floor: float | None
    mode: SearchMode = SearchMode.HYBRID
    fusion: Fusion = Fusion.RRF


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of the node-local chunk cache since the process started."""

    hits: int
    misses: int
    evictions: int
    entries: int
    """Chunks held."""
    queries: int
    """Recent queries held (each with its candidate set)."""
    bytes: int
    """Approximate memory held, what the byte budget bounds."""
    invalidations: int
    prefetches: int
    """Prefetch queries that ran and admitted their candidates."""
    prefetches_dropped: int
    """Prefetches refused because the queue was full."""

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
