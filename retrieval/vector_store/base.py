"""The ``VectorStore`` interface, and what every implementation of it shares.

One store holds every tenant's chunks; tenants are separated by a ``tenant_id``
payload filter on every read and delete (docs/security.md), never by trusting the
caller to pass one. ``collection`` in the payload is the tenant's own document
grouping, unrelated to a Qdrant collection.

Every point has two named vectors: ``dense`` (the embedder's, cosine) and
``sparse`` (BM25 term weights from ``retrieval.sparse``, with Qdrant's IDF
modifier). A store computes the sparse vector itself from the chunk text at
upsert, so callers only ever hand it ``ChunkPoint``s. The sparse leg's IDF is
measured over the searching tenant's chunks alone, so no score depends on another
tenant's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from retrieval.points import Candidate, ChunkPoint
from retrieval.sparse import SparseVector
from retrieval.types import ChunkHit, Fusion, SearchMode

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from retrieval.sparse import Bm25Encoder

# NOTE: v2 holds named dense + sparse vectors; the v1 collection (one unnamed dense
# vector) is left alone, and its documents must be re-ingested to be found.
DEFAULT_COLLECTION_NAME = "ragserve_chunks_v2"
DENSE = "dense"
SPARSE = "sparse"
# Each leg of a hybrid query reads at least this many candidates before fusion, so
# a chunk ranked moderately by both legs can still win.
HYBRID_PREFETCH_MIN = 20
# Qdrant's own default RRF constant (qdrant-client's fusion and the server's): the
# embedded engine is given it explicitly so every implementation fuses alike.
RRF_K = 2
UPSERT_BATCH = 256
SCROLL_PAGE = 1024


@runtime_checkable
class VectorStore(Protocol):
    """Where chunk vectors live. Every read and delete is scoped to one tenant.

    Implementations never run their engine's work on the event loop: calls go to a
    bounded pool of threads, and a search beyond its bound raises
    ``VectorStoreOverloadedError`` rather than waiting in a queue without end.
    """

    @property
    def sparse_encoder(self) -> Bm25Encoder:
        """The encoder of the ``sparse`` vectors (the chunk cache ranks with the same one)."""
        ...

    async def ensure_ready(self, dimension: int) -> None:
        """Create the store and its indexes if missing; check the dimension if not."""
        ...

    async def upsert(self, points: Sequence[ChunkPoint]) -> None:
        """Insert or overwrite points (idempotent: point ids are deterministic)."""
        ...

    async def delete_document(
        self, tenant_id: str, document_id: str, keep_ids: Collection[str] = ()
    ) -> None:
        """Delete a document's points, except those whose ids are in ``keep_ids``."""
        ...

    async def search(
        self,
        tenant_id: str,
        vector: np.ndarray,
        k: int,
        collection: str | None = None,
        score_floor: float | None = None,
        *,
        text: str | None = None,
        mode: SearchMode = SearchMode.DENSE,
        fusion: Fusion = Fusion.RRF,
    ) -> list[Candidate]:
        """The ``k`` best chunks of this tenant for a query, best first.

        Args:
            tenant_id: Whose chunks.
            vector: The query's dense vector.
            k: Chunks wanted.
            collection: Only this collection, if given.
            score_floor: In ``dense`` and ``hybrid`` mode, the least cosine similarity
                of a chunk to ``vector``; in ``sparse`` mode, the least BM25 score.
            text: The query text, required by ``sparse`` and ``hybrid``.
            mode: Rank by the dense vector, the sparse vector, or both fused.
            fusion: How ``hybrid`` fuses the two rankings.

        Raises:
            VectorStoreOverloadedError: Too many searches are running or waiting.
            VectorStoreUnavailableError: The store cannot answer.
        """
        ...

    async def count(self, tenant_id: str, document_id: str | None = None) -> int:
        """Number of points of a tenant, or of one of its documents."""
        ...

    async def payloads(
        self, tenant_id: str, document_id: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """Every point of a tenant (or of one of its documents): its payload by point id.

        For tests, benchmarks and audits; it reads the whole set, so not for requests.
        """
        ...

    async def check_health(self) -> None:
        """Raise ``VectorStoreUnavailableError`` when the store cannot answer."""
        ...

    async def close(self) -> None:
        """Release threads, connections and file locks."""
        ...


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """A search as every implementation runs it, after the shared decisions.

    Attributes:
        tenant_id: Whose chunks.
        collection: Only this collection, if given.
        dense: The query's dense vector (float32).
        terms: The query's BM25 terms; ``None`` when no sparse leg runs.
        mode: The mode actually run (a hybrid query without words runs dense).
        fusion: How ``hybrid`` fuses.
        limit: Chunks wanted.
        floor: The score floor handed to the engine (``None`` in hybrid: fused
            scores are ranks, so the floor is applied to the dense cosine after).
        dense_floor: The least dense cosine a hybrid result must have.
    """

    tenant_id: str
    collection: str | None
    dense: np.ndarray
    terms: SparseVector | None
    mode: SearchMode
    fusion: Fusion
    limit: int
    floor: float | None
    dense_floor: float | None

    @property
    def legs(self) -> int:
        """Candidates each hybrid leg reads before fusion."""
        return max(self.limit, HYBRID_PREFETCH_MIN)


def plan_search(
    encoder: Bm25Encoder,
    tenant_id: str,
    vector: np.ndarray,
    k: int,
    collection: str | None,
    score_floor: float | None,
    text: str | None,
    mode: SearchMode,
    fusion: Fusion,
) -> SearchPlan | None:
    """What to run for a search, or ``None`` when nothing can match.

    Raises:
        ValueError: ``tenant_id`` is empty (always a bug: every query is scoped).
    """
    if not tenant_id:
        # Defence in depth: an empty tenant would still filter, but it is always a bug.
        raise ValueError("tenant_id is required for every vector store query")
    terms = encoder.encode_query(text or "") if mode != SearchMode.DENSE else None
    if terms is not None and not terms.indices:
        if mode == SearchMode.SPARSE:
            return None  # no word to match: BM25 scores every chunk 0
        mode, terms = SearchMode.DENSE, None  # a hybrid query without words is its dense half
    hybrid = mode == SearchMode.HYBRID
    return SearchPlan(
        tenant_id=tenant_id,
        collection=collection,
        dense=np.asarray(vector, dtype=np.float32),
        terms=terms,
        mode=mode,
        fusion=fusion,
        limit=k,
        floor=None if hybrid else score_floor,
        dense_floor=score_floor if hybrid else None,
    )


def to_candidate(
    point_id: object,
    payload: Mapping[str, Any],
    vector: Any,
    score: float,
    query: np.ndarray,
) -> Candidate:
    """A search result of any engine as a ``Candidate`` (with its cosine to ``query``)."""
    dense = np.asarray(vector, dtype=np.float32)
    cosine = float(dense @ query)
    hit = ChunkHit(
        chunk_id=str(point_id),
        document_id=str(payload["document_id"]),
        document_name=str(payload["document_name"]),
        collection=str(payload["collection"]),
        position=int(payload["position"]),
        text=str(payload["text"]),
        score=float(score),
        similarity=cosine,
    )
    return Candidate(hit, dense, cosine)


def apply_dense_floor(plan: SearchPlan, found: list[Candidate]) -> list[Candidate]:
    """Hybrid results held to the floor by their dense cosine, as in dense mode."""
    if plan.dense_floor is None:
        return found
    return [c for c in found if c.dense_score >= plan.dense_floor]


__all__ = [
    "DEFAULT_COLLECTION_NAME",
    "DENSE",
    "HYBRID_PREFETCH_MIN",
    "RRF_K",
    "SPARSE",
    "Candidate",
    "ChunkPoint",
    "SearchPlan",
    "VectorStore",
    "apply_dense_floor",
    "plan_search",
    "to_candidate",
]
