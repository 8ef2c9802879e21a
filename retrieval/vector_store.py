"""Chunk vectors: the ``VectorStore`` interface and its Qdrant implementation.

One Qdrant collection holds every tenant's chunks; tenants are separated by a
``tenant_id`` payload filter on every read and delete (docs/security.md), never by
trusting the caller to pass one. ``collection`` in the payload is the tenant's own
document grouping, unrelated to the Qdrant collection.

Every point has two named vectors: ``dense`` (the embedder's, cosine) and
``sparse`` (BM25 term weights from ``retrieval.sparse``, with Qdrant's IDF
modifier). The store computes the sparse vector itself from the chunk text at
upsert, so callers only ever hand it ``ChunkPoint``s.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from retrieval.errors import RetrievalError, VectorStoreUnavailableError
from retrieval.points import Candidate, ChunkPoint, chunk_point_id
from retrieval.sparse import Bm25Encoder, SparseVector
from retrieval.types import ChunkHit, Fusion, SearchMode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection, Sequence

# NOTE: v2 holds named dense + sparse vectors; the v1 collection (one unnamed dense
# vector) is left alone, and its documents must be re-ingested to be found.
DEFAULT_COLLECTION_NAME = "ragserve_chunks_v2"
DENSE = "dense"
SPARSE = "sparse"
# Each leg of a hybrid query reads at least this many candidates before fusion, so
# a chunk ranked moderately by both legs can still win.
HYBRID_PREFETCH_MIN = 20
_UPSERT_BATCH = 256
_HTTP_CONFLICT = 409

__all__ = [
    "DEFAULT_COLLECTION_NAME",
    "Candidate",
    "ChunkPoint",
    "QdrantVectorStore",
    "VectorStore",
    "chunk_point_id",
]


@runtime_checkable
class VectorStore(Protocol):
    """Where chunk vectors live. Every read and delete is scoped to one tenant."""

    async def ensure_ready(self, dimension: int) -> None:
        """Create the collection and its indexes if missing; check the dimension if not."""
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
        """
        ...

    async def count(self, tenant_id: str, document_id: str | None = None) -> int:
        """Number of points of a tenant, or of one of its documents."""
        ...

    async def check_health(self) -> None:
        """Raise ``VectorStoreUnavailableError`` when the store cannot answer."""
        ...

    async def close(self) -> None:
        """Release connections and file locks."""
        ...


class QdrantVectorStore:
    """A ``VectorStore`` on Qdrant: local mode (a folder) or a Qdrant server.

    NOTE: local mode takes a file lock on its folder, so exactly one client per
    folder may exist: the server process owns it, and a second process (a CLI, a
    second worker) must talk to the server instead. Local mode also runs its work
    synchronously on the event loop (the async client only wraps it) and ignores
    payload indexes, which is fine for the embedded default's data sizes; use a
    server for anything larger.
    """

    def __init__(
        self,
        *,
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        collection_name: str = DEFAULT_COLLECTION_NAME,
        timeout: int = 10,
        sparse_encoder: Bm25Encoder | None = None,
    ) -> None:
        """Configure the client; nothing is opened or contacted until first use.

        Args:
            path: Local-mode folder, or ``":memory:"`` for a throwaway store.
            url: Qdrant server URL (scaled deployment); exclusive with ``path``.
            api_key: Server API key.
            collection_name: The Qdrant collection holding every tenant's chunks.
            timeout: Server request timeout in seconds.
            sparse_encoder: Makes the ``sparse`` vectors; default BM25 with k1=1.2, b=0.75.

        Raises:
            ValueError: Neither or both of ``path`` and ``url`` were given.
        """
        if (path is None) == (url is None):
            raise ValueError("give exactly one of path (local mode) or url (server)")
        self._collection = collection_name
        self._local = url is None
        self._sparse = sparse_encoder or Bm25Encoder()
        self._client_args: dict[str, Any]
        if path == ":memory:":
            self._client_args = {"location": ":memory:"}
        elif path is not None:
            self._client_args = {"path": path}
        else:
            # NOTE: no version check: it would contact the server in the constructor.
            self._client_args = {
                "url": url,
                "api_key": api_key,
                "timeout": timeout,
                "check_compatibility": False,
            }
        self._client: AsyncQdrantClient | None = None

    @property
    def collection_name(self) -> str:
        return self._collection

    @property
    def sparse_encoder(self) -> Bm25Encoder:
        """The encoder of the ``sparse`` vectors (the chunk cache ranks with the same one)."""
        return self._sparse

    @property
    def client(self) -> AsyncQdrantClient:
        # Created lazily: local mode takes its file lock here, not at import or wiring.
        if self._client is None:
            self._client = AsyncQdrantClient(**self._client_args)
        return self._client

    async def ensure_ready(self, dimension: int) -> None:
        async with _unavailable_on_error():
            if not await self.client.collection_exists(self._collection):
                await self._create_collection(dimension)
            info = await self.client.get_collection(self._collection)
        vectors = info.config.params.vectors
        dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
        sparse = (info.config.params.sparse_vectors or {}).get(SPARSE)
        if dense is None or sparse is None or sparse.modifier != models.Modifier.IDF:
            raise RetrievalError(
                f"Qdrant collection {self._collection!r} was made by an older ragserve (no "
                f"named '{DENSE}' and '{SPARSE}' vectors): configure a new collection name "
                "and re-ingest the documents"
            )
        if dense.size != dimension:
            raise RetrievalError(
                f"Qdrant collection {self._collection!r} holds vectors of size {dense.size}, "
                f"but the embedder makes {dimension}: use another collection name or re-ingest"
            )
        if not self._local:
            await self._create_payload_indexes()

    async def _create_collection(self, dimension: int) -> None:
        dense = {DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)}
        # IDF is applied by Qdrant at query time from live statistics, so the stored
        # weights stay valid however the corpus grows.
        sparse = {SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)}
        # NOTE: every query filters by tenant, so the server builds per-tenant HNSW
        # graphs (payload_m) instead of one global graph (m=0), as Qdrant advises
        # for multitenancy. Local mode has no HNSW and ignores this.
        hnsw = None if self._local else models.HnswConfigDiff(payload_m=16, m=0)
        try:
            await self.client.create_collection(
                self._collection,
                vectors_config=dense,
                sparse_vectors_config=sparse,
                hnsw_config=hnsw,
            )
        except UnexpectedResponse as exc:
            # Another API node created it between our check and our create.
            if exc.status_code != _HTTP_CONFLICT:
                raise
        except ValueError:
            # Local mode says "already exists" with a ValueError.
            if not await self.client.collection_exists(self._collection):
                raise

    async def _create_payload_indexes(self) -> None:
        # Server mode only: local mode has no payload indexes and warns about each.
        indexes: list[tuple[str, models.KeywordIndexParams]] = [
            (
                "tenant_id",
                models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
            ),
            ("collection", models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD)),
            ("document_id", models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD)),
        ]
        async with _unavailable_on_error():
            for field, schema in indexes:
                # Creating an index that exists with the same schema is a no-op.
                await self.client.create_payload_index(
                    self._collection, field_name=field, field_schema=schema, wait=True
                )

    async def upsert(self, points: Sequence[ChunkPoint]) -> None:
        async with _unavailable_on_error():
            for start in range(0, len(points), _UPSERT_BATCH):
                batch = points[start : start + _UPSERT_BATCH]
                sparse = self._sparse.encode_documents([point.text for point in batch])
                structs = [
                    models.PointStruct(
                        id=point.id,
                        vector={
                            DENSE: np.asarray(point.vector, dtype=np.float32).tolist(),
                            SPARSE: _qdrant_sparse(weights),
                        },
                        payload=point.payload(),
                    )
                    for point, weights in zip(batch, sparse, strict=True)
                ]
                await self.client.upsert(self._collection, points=structs, wait=True)

    async def delete_document(
        self, tenant_id: str, document_id: str, keep_ids: Collection[str] = ()
    ) -> None:
        query = _tenant_filter(tenant_id, document_id=document_id)
        if keep_ids:
            query.must_not = [models.HasIdCondition(has_id=list(keep_ids))]
        async with _unavailable_on_error():
            await self.client.delete(
                self._collection, points_selector=models.FilterSelector(filter=query), wait=True
            )

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
        where = _tenant_filter(tenant_id, collection=collection)
        dense = np.asarray(vector, dtype=np.float32)
        terms = self._sparse.encode_query(text or "") if mode != SearchMode.DENSE else None
        if terms is not None and not terms.indices:
            if mode == SearchMode.SPARSE:
                return []  # no word to match: BM25 scores every chunk 0
            mode, terms = SearchMode.DENSE, None  # a hybrid query without words is its dense half
        args: dict[str, Any] = {"query_filter": where, "limit": k}
        if terms is None:
            args |= {"query": dense.tolist(), "using": DENSE, "score_threshold": score_floor}
        elif mode == SearchMode.SPARSE:
            args |= {
                "query": _qdrant_sparse(terms),
                "using": SPARSE,
                "score_threshold": score_floor,
            }
        else:
            legs = max(k, HYBRID_PREFETCH_MIN)
            # NOTE: the tenant filter goes into each prefetch (that is where the
            # candidates are chosen) and again on the fused query, for defence in depth.
            args["prefetch"] = [
                models.Prefetch(query=dense.tolist(), using=DENSE, filter=where, limit=legs),
                models.Prefetch(
                    query=_qdrant_sparse(terms), using=SPARSE, filter=where, limit=legs
                ),
            ]
            args["query"] = models.FusionQuery(fusion=_FUSIONS[fusion])
        async with _unavailable_on_error():
            response = await self.client.query_points(
                self._collection, with_payload=True, with_vectors=[DENSE], **args
            )
        candidates = [_candidate(point, dense) for point in response.points]
        if mode == SearchMode.HYBRID and score_floor is not None:
            # Fused scores are ranks, not similarities: the floor holds each chunk to
            # its cosine similarity instead, as in dense mode.
            candidates = [c for c in candidates if c.dense_score >= score_floor]
        return candidates

    async def count(self, tenant_id: str, document_id: str | None = None) -> int:
        async with _unavailable_on_error():
            result = await self.client.count(
                self._collection,
                count_filter=_tenant_filter(tenant_id, document_id=document_id),
                exact=True,
            )
        return int(result.count)

    async def check_health(self) -> None:
        async with _unavailable_on_error():
            await self.client.get_collections()

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


_FUSIONS = {Fusion.RRF: models.Fusion.RRF, Fusion.DBSF: models.Fusion.DBSF}


def _qdrant_sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=vector.indices, values=vector.values)


def _candidate(point: models.ScoredPoint, query: np.ndarray) -> Candidate:
    payload = point.payload or {}
    vectors = point.vector if isinstance(point.vector, dict) else {}
    vector = np.asarray(vectors[DENSE], dtype=np.float32)
    hit = ChunkHit(
        chunk_id=str(point.id),
        document_id=str(payload["document_id"]),
        document_name=str(payload["document_name"]),
        collection=str(payload["collection"]),
        position=int(payload["position"]),
        text=str(payload["text"]),
        score=float(point.score),
    )
    return Candidate(hit, vector, float(vector @ query))


def _tenant_filter(
    tenant_id: str, *, collection: str | None = None, document_id: str | None = None
) -> models.Filter:
    """A filter that always pins the tenant, optionally narrowed further."""
    if not tenant_id:
        # Defence in depth: an empty tenant would still filter, but it is always a bug.
        raise ValueError("tenant_id is required for every vector store query")
    must: list[models.Condition] = [
        models.FieldCondition(key="tenant_id", match=models.MatchValue(value=tenant_id))
    ]
    if collection is not None:
        must.append(
            models.FieldCondition(key="collection", match=models.MatchValue(value=collection))
        )
    if document_id is not None:
        must.append(
            models.FieldCondition(key="document_id", match=models.MatchValue(value=document_id))
        )
    return models.Filter(must=must)


@asynccontextmanager
async def _unavailable_on_error() -> AsyncIterator[None]:
    """Turn transport failures and server errors into ``VectorStoreUnavailableError``."""
    try:
        yield
    except ResponseHandlingException as exc:
        raise VectorStoreUnavailableError(f"Qdrant is unreachable: {exc}") from exc
    except UnexpectedResponse as exc:
        if exc.status_code is None or exc.status_code >= 500:
            raise VectorStoreUnavailableError(f"Qdrant failed: {exc}") from exc
        raise
    except (ConnectionError, TimeoutError) as exc:
        raise VectorStoreUnavailableError(f"Qdrant is unreachable: {exc}") from exc
