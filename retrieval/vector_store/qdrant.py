"""A ``VectorStore`` on qdrant-client: a Qdrant server, or local mode (a folder).

The client is qdrant-client's synchronous one, called on ``StoreCalls`` threads: its
local mode is a pure-Python scan (seconds per query at 100k points) that would
otherwise run on the event loop, and a server's answers still cost parsing.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from retrieval.errors import RetrievalError, VectorStoreUnavailableError
from retrieval.sparse import Bm25Encoder, SparseVector
from retrieval.types import Fusion, SearchMode
from retrieval.vector_store.base import (
    DEFAULT_COLLECTION_NAME,
    DENSE,
    SCROLL_PAGE,
    SPARSE,
    UPSERT_BATCH,
    Candidate,
    ChunkPoint,
    SearchPlan,
    apply_dense_floor,
    plan_search,
    to_candidate,
)
from retrieval.vector_store.offload import StoreCalls

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator, Sequence

_HTTP_CONFLICT = 409


class QdrantVectorStore:
    """A ``VectorStore`` on Qdrant: local mode (a folder) or a Qdrant server.

    NOTE: local mode takes a file lock on its folder, so exactly one client per
    folder may exist: the server process owns it, and a second process (a CLI, a
    second worker) must talk to the server instead. Local mode ignores payload
    indexes and scans in Python; it stays selectable (``RAGSERVE_QDRANT_ENGINE=local``)
    but the embedded default is Qdrant Edge (``retrieval.vector_store.edge``).
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
        calls: StoreCalls | None = None,
    ) -> None:
        """Configure the client; nothing is opened or contacted until first use.

        Args:
            path: Local-mode folder, or ``":memory:"`` for a throwaway store.
            url: Qdrant server URL (scaled deployment); exclusive with ``path``.
            api_key: Server API key.
            collection_name: The Qdrant collection holding every tenant's chunks.
            timeout: Server request timeout in seconds.
            sparse_encoder: Makes the ``sparse`` vectors; default BM25 with k1=1.2, b=0.75.
            calls: The threads calls run on; default two search threads, eight waiting.

        Raises:
            ValueError: Neither or both of ``path`` and ``url`` were given.
        """
        if (path is None) == (url is None):
            raise ValueError("give exactly one of path (local mode) or url (server)")
        self._collection = collection_name
        self._local = url is None
        self._sparse = sparse_encoder or Bm25Encoder()
        self._calls = calls or StoreCalls(name="qdrant")
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
        self._client: QdrantClient | None = None
        self._closed = False
        # NOTE: local mode keeps its points in plain Python and numpy structures that
        # a write resizes under a concurrent read: its calls take turns.
        self._turns: threading.Lock | nullcontext[None] = (
            threading.Lock() if self._local else nullcontext()
        )

    @property
    def collection_name(self) -> str:
        return self._collection

    @property
    def sparse_encoder(self) -> Bm25Encoder:
        """The encoder of the ``sparse`` vectors (the chunk cache ranks with the same one)."""
        return self._sparse

    @property
    def client(self) -> QdrantClient:
        # Created lazily: local mode takes its file lock here, not at import or wiring.
        if self._client is None:
            self._client = QdrantClient(**self._client_args)
        return self._client

    async def ensure_ready(self, dimension: int) -> None:
        await self._calls.write(self._ensure_ready, dimension)

    def _ensure_ready(self, dimension: int) -> None:
        with self._turns, _unavailable_on_error():
            if not self.client.collection_exists(self._collection):
                self._create_collection(dimension)
            info = self.client.get_collection(self._collection)
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
            self._create_payload_indexes()

    def _create_collection(self, dimension: int) -> None:
        dense = {DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)}
        # IDF is applied by Qdrant at query time from live statistics, so the stored
        # weights stay valid however the corpus grows.
        sparse = {SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)}
        # NOTE: every query filters by tenant, so the server builds per-tenant HNSW
        # graphs (payload_m) instead of one global graph (m=0), as Qdrant advises
        # for multitenancy. Local mode has no HNSW and ignores this.
        hnsw = None if self._local else models.HnswConfigDiff(payload_m=16, m=0)
        try:
            self.client.create_collection(
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
            if not self.client.collection_exists(self._collection):
                raise

    def _create_payload_indexes(self) -> None:
        # Server mode only: local mode has no payload indexes and warns about each.
        indexes: list[tuple[str, models.KeywordIndexParams]] = [
            (
                "tenant_id",
                models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
            ),
            ("collection", models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD)),
            ("document_id", models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD)),
        ]
        with self._turns, _unavailable_on_error():
            for field, schema in indexes:
                # Creating an index that exists with the same schema is a no-op.
                self.client.create_payload_index(
                    self._collection, field_name=field, field_schema=schema, wait=True
                )

    async def upsert(self, points: Sequence[ChunkPoint]) -> None:
        await self._calls.write(self._upsert, points)

    def _upsert(self, points: Sequence[ChunkPoint]) -> None:
        with self._turns, _unavailable_on_error():
            for start in range(0, len(points), UPSERT_BATCH):
                batch = points[start : start + UPSERT_BATCH]
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
                self.client.upsert(self._collection, points=structs, wait=True)

    async def delete_document(
        self, tenant_id: str, document_id: str, keep_ids: Collection[str] = ()
    ) -> None:
        query = _tenant_filter(tenant_id, document_id=document_id)
        if keep_ids:
            query.must_not = [models.HasIdCondition(has_id=list(keep_ids))]
        selector = models.FilterSelector(filter=query)
        await self._calls.write(self._delete, selector)

    def _delete(self, selector: models.FilterSelector) -> None:
        with self._turns, _unavailable_on_error():
            self.client.delete(self._collection, points_selector=selector, wait=True)

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
        plan = plan_search(
            self._sparse, tenant_id, vector, k, collection, score_floor, text, mode, fusion
        )
        if plan is None:
            return []
        return await self._calls.read(self._search, plan)

    def _search(self, plan: SearchPlan) -> list[Candidate]:
        where = _tenant_filter(plan.tenant_id, collection=plan.collection)
        # NOTE: the sparse leg's IDF is measured over the tenant's own chunks (its
        # whole corpus, whatever the collection), so a score never depends on how
        # many of another tenant's chunks hold a word.
        idf = models.SearchParams(idf=models.IdfCorpusParams(corpus=_tenant_filter(plan.tenant_id)))
        args: dict[str, Any] = {"query_filter": where, "limit": plan.limit}
        dense = plan.dense.tolist()
        if plan.terms is None:
            args |= {"query": dense, "using": DENSE, "score_threshold": plan.floor}
        elif plan.mode == SearchMode.SPARSE:
            args |= {
                "query": _qdrant_sparse(plan.terms),
                "using": SPARSE,
                "score_threshold": plan.floor,
                "search_params": idf,
            }
        else:
            # NOTE: the tenant filter goes into each prefetch (that is where the
            # candidates are chosen) and again on the fused query, for defence in depth.
            args["prefetch"] = [
                models.Prefetch(query=dense, using=DENSE, filter=where, limit=plan.legs),
                models.Prefetch(
                    query=_qdrant_sparse(plan.terms),
                    using=SPARSE,
                    filter=where,
                    limit=plan.legs,
                    params=idf,
                ),
            ]
            args["query"] = models.FusionQuery(fusion=_FUSIONS[plan.fusion])
        with self._turns, _unavailable_on_error():
            response = self.client.query_points(
                self._collection, with_payload=True, with_vectors=[DENSE], **args
            )
        found = [_candidate(point, plan.dense) for point in response.points]
        return apply_dense_floor(plan, found)

    async def count(self, tenant_id: str, document_id: str | None = None) -> int:
        where = _tenant_filter(tenant_id, document_id=document_id)
        return await self._calls.read(self._count, where)

    def _count(self, where: models.Filter) -> int:
        with self._turns, _unavailable_on_error():
            result = self.client.count(self._collection, count_filter=where, exact=True)
        return int(result.count)

    async def payloads(
        self, tenant_id: str, document_id: str | None = None
    ) -> dict[str, dict[str, Any]]:
        where = _tenant_filter(tenant_id, document_id=document_id)
        return await self._calls.read(self._payloads, where)

    def _payloads(self, where: models.Filter) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        offset: models.ExtendedPointId | None = None
        while True:
            with self._turns, _unavailable_on_error():
                records, offset = self.client.scroll(
                    self._collection,
                    scroll_filter=where,
                    limit=SCROLL_PAGE,
                    offset=offset,
                    with_payload=True,
                )
            found |= {str(r.id): dict(r.payload or {}) for r in records}
            if offset is None:
                return found

    async def check_health(self) -> None:
        await self._calls.write(self._check_health)

    def _check_health(self) -> None:
        with self._turns, _unavailable_on_error():
            self.client.get_collections()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._client is not None:
            client, self._client = self._client, None
            await self._calls.write(client.close)
        self._calls.shutdown()


_FUSIONS = {Fusion.RRF: models.Fusion.RRF, Fusion.DBSF: models.Fusion.DBSF}


def _qdrant_sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=vector.indices, values=vector.values)


def _candidate(point: models.ScoredPoint, query: np.ndarray) -> Candidate:
    vectors = point.vector if isinstance(point.vector, dict) else {}
    dense = vectors[DENSE]
    if not isinstance(dense, list):
        raise TypeError("Qdrant returned a dense vector that is not a list of floats")
    return to_candidate(point.id, point.payload or {}, dense, point.score, query)


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


@contextmanager
def _unavailable_on_error() -> Iterator[None]:
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
