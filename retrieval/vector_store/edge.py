"""A ``VectorStore`` on Qdrant Edge: Qdrant's own engine, in this process.

``qdrant-edge-py`` runs one shard in a folder: named dense and sparse vectors, the
IDF modifier, prefetch + RRF/DBSF fusion and keyword payload indexes, as a server
does. Unindexed segments are searched exactly (no HNSW until ``optimize`` builds
one; this store never calls it, since it blocks for as long as indexing takes).

NOTE: the binding holds the GIL while it searches (measured: a Python thread gets
no turn during a query), so a search thread stalls the event loop for up to one
query's duration (about 2-4 ms tenant-filtered and 9 ms unfiltered at 100k points
on two cores). ``StoreCalls`` keeps that to one query per thread in flight, never a
backlog; docs/retrieval.md has the measurements.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import qdrant_edge as qe

from retrieval.errors import RetrievalError, VectorStoreUnavailableError
from retrieval.sparse import Bm25Encoder, SparseVector
from retrieval.types import Fusion, SearchMode
from retrieval.vector_store.base import (
    DEFAULT_COLLECTION_NAME,
    DENSE,
    RRF_K,
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

_INDEXED_FIELDS = ("collection", "document_id")


class EdgeVectorStore:
    """A ``VectorStore`` on a Qdrant Edge shard in a folder (the embedded default).

    NOTE: the shard's write-ahead log takes a lock on the folder, so one process
    owns it, as with qdrant-client's local mode.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        collection_name: str = DEFAULT_COLLECTION_NAME,
        sparse_encoder: Bm25Encoder | None = None,
        calls: StoreCalls | None = None,
    ) -> None:
        """Configure the store; nothing is opened until ``ensure_ready``.

        Args:
            path: Folder holding the shards; this store's is ``path/collection_name``.
            collection_name: Name of the shard holding every tenant's chunks.
            sparse_encoder: Makes the ``sparse`` vectors; default BM25 with k1=1.2, b=0.75.
            calls: The threads calls run on; default two search threads, eight waiting.
        """
        self._collection = collection_name
        self._path = Path(path) / collection_name
        self._sparse = sparse_encoder or Bm25Encoder()
        self._calls = calls or StoreCalls(name="qdrant-edge")
        self._shard: qe.EdgeShard | None = None
        self._open_lock = threading.Lock()
        self._closed = False

    @property
    def collection_name(self) -> str:
        return self._collection

    @property
    def sparse_encoder(self) -> Bm25Encoder:
        """The encoder of the ``sparse`` vectors (the chunk cache ranks with the same one)."""
        return self._sparse

    async def ensure_ready(self, dimension: int) -> None:
        await self._calls.write(self._open, dimension)

    def _open(self, dimension: int) -> None:
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)},
            # IDF is applied at query time from live statistics, so the stored weights
            # stay valid however the corpus grows.
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        with self._open_lock:
            if self._shard is not None:
                return
            try:
                if self._path.is_dir() and any(self._path.iterdir()):
                    # Checks the stored vectors against ``config`` (size, distance, names).
                    shard = qe.EdgeShard.load(str(self._path), config)
                else:
                    shard = qe.EdgeShard.create(str(self._path), config)
            except Exception as exc:
                # NOTE: the binding raises a bare ``Exception`` for everything; its text
                # says which (an incompatible config, a folder another process holds).
                raise RetrievalError(
                    f"cannot open the Qdrant Edge shard {str(self._path)!r} for vectors of size "
                    f"{dimension}: {exc} (another process may hold it; a different embedder "
                    "needs another collection name and re-ingested documents)"
                ) from exc
            # Creating an index that exists is a no-op; on a loaded shard this adds any
            # index an older ragserve did not make.
            shard.update(
                qe.UpdateOperation.create_field_index(
                    "tenant_id", qe.KeywordIndexParams(is_tenant=True)
                )
            )
            for field in _INDEXED_FIELDS:
                shard.update(
                    qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword)
                )
            self._shard = shard

    @property
    def shard(self) -> qe.EdgeShard:
        """The open shard (benchmarks build large corpora through it directly).

        Raises:
            VectorStoreUnavailableError: ``ensure_ready`` has not opened it, or it is closed.
        """
        shard = self._shard
        if shard is None:
            raise VectorStoreUnavailableError("the Qdrant Edge shard is not open")
        return shard

    async def upsert(self, points: Sequence[ChunkPoint]) -> None:
        await self._calls.write(self._upsert, points)

    def _upsert(self, points: Sequence[ChunkPoint]) -> None:
        for start in range(0, len(points), UPSERT_BATCH):
            batch = points[start : start + UPSERT_BATCH]
            sparse = self._sparse.encode_documents([point.text for point in batch])
            edge_points = [
                qe.Point(
                    point.id,
                    {
                        DENSE: np.asarray(point.vector, dtype=np.float32).tolist(),
                        SPARSE: _edge_sparse(weights),
                    },
                    point.payload(),
                )
                for point, weights in zip(batch, sparse, strict=True)
            ]
            with _unavailable_on_error():
                self.shard.update(qe.UpdateOperation.upsert_points(edge_points))

    async def delete_document(
        self, tenant_id: str, document_id: str, keep_ids: Collection[str] = ()
    ) -> None:
        where = tenant_filter(tenant_id, document_id=document_id, keep_ids=keep_ids)
        await self._calls.write(self._update, qe.UpdateOperation.delete_points_by_filter(where))

    def _update(self, operation: qe.UpdateOperation) -> None:
        with _unavailable_on_error():
            self.shard.update(operation)

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
        request = edge_query(plan)
        with _unavailable_on_error():
            points = self.shard.query(request)
        found = [_candidate(point, plan.dense) for point in points]
        return apply_dense_floor(plan, found)

    async def count(self, tenant_id: str, document_id: str | None = None) -> int:
        where = tenant_filter(tenant_id, document_id=document_id)
        return await self._calls.read(self._count, where)

    def _count(self, where: qe.Filter) -> int:
        with _unavailable_on_error():
            return int(self.shard.count(qe.CountRequest(exact=True, filter=where)))

    async def payloads(
        self, tenant_id: str, document_id: str | None = None
    ) -> dict[str, dict[str, Any]]:
        where = tenant_filter(tenant_id, document_id=document_id)
        return await self._calls.read(self._payloads, where)

    def _payloads(self, where: qe.Filter) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        offset = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=SCROLL_PAGE, filter=where, with_payload=True
            )
            with _unavailable_on_error():
                records, offset = self.shard.scroll(request)
            found |= {str(r.id): dict(r.payload or {}) for r in records}
            if offset is None:
                return found

    async def check_health(self) -> None:
        # NOTE: here, not on a search thread, so a probe never waits behind a storm:
        # ``info`` reads the shard's counters (microseconds, even at 1M points).
        shard = self.shard
        with _unavailable_on_error():
            shard.info()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._calls.write(self._close)
        self._calls.shutdown()

    def _close(self) -> None:
        with self._open_lock:
            shard, self._shard = self._shard, None
        if shard is not None:
            shard.flush()
            shard.close()


def edge_query(plan: SearchPlan) -> qe.QueryRequest:
    """The Edge query of a search plan (the benchmark runs the same one)."""
    where = tenant_filter(plan.tenant_id, collection=plan.collection)
    # NOTE: the sparse leg's IDF is measured over the tenant's own chunks (its whole
    # corpus, whatever the collection), so a score never depends on how many of
    # another tenant's chunks hold a word.
    idf = qe.SearchParams(idf=qe.IdfParams(corpus=tenant_filter(plan.tenant_id)))
    dense = qe.Query.Nearest(plan.dense.tolist(), using=DENSE)
    query: Any = dense
    legs: list[qe.Prefetch] | None = None
    params: qe.SearchParams | None = None
    if plan.terms is not None:
        sparse = qe.Query.Nearest(_edge_sparse(plan.terms), using=SPARSE)
        if plan.mode == SearchMode.SPARSE:
            query, params = sparse, idf
        else:
            query = qe.Fusion.Rrf(k=RRF_K) if plan.fusion == Fusion.RRF else qe.Fusion.Dbsf()
            # NOTE: the tenant filter goes into each prefetch (that is where the
            # candidates are chosen) and again on the fused query, for defence in depth.
            legs = [
                qe.Prefetch(limit=plan.legs, query=dense, filter=where),
                qe.Prefetch(limit=plan.legs, query=sparse, filter=where, params=idf),
            ]
    return qe.QueryRequest(
        limit=plan.limit,
        query=query,
        prefetches=legs,
        filter=where,
        score_threshold=plan.floor,
        params=params,
        with_payload=True,
        with_vector=[DENSE],
    )


def _edge_sparse(vector: SparseVector) -> qe.SparseVector:
    return qe.SparseVector(vector.indices, vector.values)


def _candidate(point: qe.ScoredPoint, query: np.ndarray) -> Candidate:
    vectors = point.vector if isinstance(point.vector, dict) else {}
    dense = vectors[DENSE]
    if not isinstance(dense, list):
        raise TypeError("Qdrant Edge returned a dense vector that is not a list of floats")
    return to_candidate(point.id, point.payload or {}, dense, point.score, query)


def tenant_filter(
    tenant_id: str,
    *,
    collection: str | None = None,
    document_id: str | None = None,
    keep_ids: Collection[str] = (),
) -> qe.Filter:
    """A filter that always pins the tenant, optionally narrowed further."""
    if not tenant_id:
        raise ValueError("tenant_id is required for every vector store query")
    must: list[qe.FieldCondition] = [
        qe.FieldCondition(key="tenant_id", match=qe.MatchValue(value=tenant_id))
    ]
    if collection is not None:
        must.append(qe.FieldCondition(key="collection", match=qe.MatchValue(value=collection)))
    if document_id is not None:
        must.append(qe.FieldCondition(key="document_id", match=qe.MatchValue(value=document_id)))
    must_not = [qe.HasIdCondition(set(keep_ids))] if keep_ids else None
    return qe.Filter(must=list(must), must_not=list(must_not) if must_not else None)


@contextmanager
def _unavailable_on_error() -> Iterator[None]:
    """Turn the engine's failures (a bare ``Exception``) into ``VectorStoreUnavailableError``."""
    try:
        yield
    except (RetrievalError, ValueError, TypeError):
        raise
    except Exception as exc:
        raise VectorStoreUnavailableError(f"Qdrant Edge failed: {exc}") from exc
