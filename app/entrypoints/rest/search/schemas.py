"""Wire schemas of search (retrieval only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from app.entrypoints.schemas import LABEL_PATTERN, Schema

if TYPE_CHECKING:
    from retrieval import ChunkHit


class SearchRequest(Schema):
    """``POST /v1/search``: a query and how to rank."""

    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(default=5, ge=1, le=50)
    """Chunks wanted."""
    collection: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=LABEL_PATTERN
    )
    """Only this collection of the tenant's; all of them when absent."""
    mode: Literal["dense", "sparse", "hybrid"] = "hybrid"
    """``dense`` (meaning), ``sparse`` (BM25 over words) or ``hybrid`` (both, fused)."""
    fusion: Literal["rrf", "dbsf"] = "rrf"
    """How ``hybrid`` fuses its two rankings: reciprocal rank or distribution-based."""
    score_floor: float | None = Field(default=None, ge=-1.0, le=1000.0)
    """Drop weaker chunks: the least cosine similarity in ``dense`` and ``hybrid``
    mode (hybrid holds each chunk to its dense cosine), the least BM25 score in ``sparse``."""
    use_cache: bool = True
    """Let the node-local chunk cache answer (``false``: always ask the vector store)."""


class ChunkOut(Schema):
    chunk_id: str
    document_id: str
    document_name: str
    collection: str
    position: int
    text: str
    score: float
    """Cosine similarity (dense), BM25 (sparse) or the fused score (hybrid)."""
    similarity: float | None
    """The chunk's cosine similarity with the query, whatever the mode ranked by."""

    @classmethod
    def of(cls, hit: ChunkHit) -> ChunkOut:
        return cls(
            chunk_id=hit.chunk_id,
            document_id=hit.document_id,
            document_name=hit.document_name,
            collection=hit.collection,
            position=hit.position,
            text=hit.text,
            score=hit.score,
            similarity=hit.similarity,
        )


class SearchResponse(Schema):
    results: list[ChunkOut]
    """Best first."""
