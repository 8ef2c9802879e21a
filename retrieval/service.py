"""The retrieval service: ingest, list, delete and search a tenant's documents.

Rows (``DocumentRow``) record what was ingested; chunk vectors live in the vector
store. Every public method takes the tenant id and scopes everything to it: another
tenant's document is indistinguishable from a missing one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from retrieval.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_TOKENS, Chunker
from retrieval.embedding import embed_passages
from retrieval.errors import InvalidRequestError
from retrieval.indexer import EMBED_ROUND, Indexer
from retrieval.ingest_queue import InProcessIngestQueue
from retrieval.ingestion import DEFAULT_MAX_ATTEMPTS, IngestionWorkers
from retrieval.leases import UploadLeases
from retrieval.query_embedder import QueryEmbedder
from retrieval.quotas import QuotaStore
from retrieval.repository import DocumentRepository
from retrieval.search import CacheConfig, SearchPath
from retrieval.sparse import Bm25Encoder
from retrieval.submission import DEFAULT_QUOTA, DocumentIntake
from retrieval.types import (
    CacheStats,
    ChunkHit,
    DocumentInfo,
    DocumentPage,
    Fusion,
    IngestionQuota,
    IngestResult,
    OnChunksChanged,
    SearchMode,
    Upload,
    no_chunks_changed,
)
from retrieval.validation import (
    MAX_COLLECTION_LENGTH,
    MAX_QUERY_CHARS,
    check_label,
    check_tenant,
    search_request,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from retrieval.embedding import Embedder
    from retrieval.extract import ExtractLimits
    from retrieval.ingest_queue import IngestQueue
    from retrieval.vector_store import VectorStore

MAX_PAGE_SIZE = 200
DEFAULT_MAX_DOCUMENT_BYTES = 32 * 1024 * 1024

_log = structlog.get_logger(__name__)


class RetrievalService:
    """Documents and search for every tenant, over SQL rows and a vector store."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        embedder: Embedder,
        store: VectorStore,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
        chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        *,
        queue: IngestQueue | None = None,
        ingest_workers: int = 1,
        claim_idle_s: float = 60.0,
        embed_round: int = EMBED_ROUND,
        on_chunks_changed: OnChunksChanged = no_chunks_changed,
        cache: CacheConfig | None = None,
        query_window_s: float = 0.003,
        query_max_batch: int = 32,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        extract_limits: ExtractLimits | None = None,
        quota: IngestionQuota = DEFAULT_QUOTA,
        heading_context: bool = True,
    ) -> None:
        """Wire the service; nothing is contacted until ``start`` or first use.

        Args:
            sessions: Session factory of the database holding ``documents``.
            embedder: Embeds chunks and queries (blocking; run in threads here).
            store: Where chunk vectors live.
            chunk_tokens, chunk_overlap: Chunk capacity and overlap, in embedder tokens.
            heading_context: Embed each chunk with the headings above it.
            max_document_bytes: Largest upload accepted.
            queue: The ingestion queue; default an in-process one.
            ingest_workers: Ingestion workers ``start_workers`` runs in this process.
            claim_idle_s: The queue's claim idle time (workers renew leases within it).
            embed_round: Chunks embedded and upserted per round.
            on_chunks_changed: Told after a document's points were written or deleted
                (after this service's own chunk cache has dropped them).
            cache: The node-local chunk cache's configuration; ``None`` turns it off.
            query_window_s: How long a search waits to share a model call with others.
            query_max_batch: Most queries embedded in one model call.
            max_attempts: Attempts at indexing one upload before its document fails.
            extract_limits: Caps on extraction (pages, text, time, memory).
            quota: Each tenant's default ingestion quota (``ingestion_quotas``
                rows override it per tenant).
        """
        self._documents = DocumentRepository(sessions)
        self._embedder = embedder
        self._store = store
        self._chunker = Chunker(
            embedder.tokenizer, chunk_tokens, chunk_overlap, heading_context=heading_context
        )
        self._max_document_bytes = max_document_bytes
        self._queries = QueryEmbedder(embedder.embed_queries, query_window_s, query_max_batch)
        self._search = SearchPath.build(
            store,
            self._queries,
            getattr(store, "sparse_encoder", None) or Bm25Encoder(),
            embedder.tokenizer,
            embedder.dimension,
            cache,
        )
        self._on_chunks_changed = on_chunks_changed
        self._indexer = Indexer(
            embedder,
            store,
            self._chunker,
            self.on_chunks_changed,
            embed_round=embed_round,
            limits=extract_limits,
        )
        self._queue = queue or InProcessIngestQueue(claim_idle_s=claim_idle_s)
        self._workers = IngestionWorkers(
            self._queue,
            self._documents,
            self._indexer,
            UploadLeases(sessions),
            workers=ingest_workers,
            claim_idle_s=claim_idle_s,
            max_attempts=max_attempts,
        )
        self._quota = quota
        self._quotas = QuotaStore(sessions)
        self._intake = DocumentIntake(
            self._documents, self._indexer, self._queue, max_document_bytes, quota, self._quotas
        )
        self._ready = False
        self._ready_lock = asyncio.Lock()

    async def start(self) -> None:
        """Prepare the vector store and the queue (re-filling an in-process one); lazy."""
        if self._ready:
            return
        async with self._ready_lock:
            if not self._ready:
                await self._store.ensure_ready(self._embedder.dimension)
                await self._queue.ensure_ready()
                # The uploads outlive the process, and a queue may have lost their
                # entries: an in-process one always, a Redis one rarely.
                try:
                    await self._workers.recover()
                except Exception:
                    if not self._queue.durable:
                        raise
                    # NOTE: a Redis stream keeps what it has; what it lacks is queued
                    # by the next process that starts. Not a reason to refuse to serve.
                    _log.warning("ingest_recovery_failed", exc_info=True)
                self._ready = True

    async def start_workers(self) -> None:
        """Start this process's ingestion workers (the server does; the CLI does not)."""
        await self.start()
        self._workers.start()

    async def stop_workers(self) -> None:
        """Stop the ingestion workers; a document being indexed stays pending for another."""
        await self._workers.stop()

    async def submit(
        self,
        tenant_id: str,
        name: str,
        data: bytes,
        content_type: str | None = None,
        collection: str = "default",
    ) -> IngestResult:
        """Queue one document and return at once (status ``queued``, or UNCHANGED).

        See ``DocumentIntake.submit``; raises as it does (checks needing no model
        fail here; a full queue raises ``IngestQueueFullError``).
        """
        upload = Upload(name, data, content_type, collection)
        return (await self.submit_many(tenant_id, [upload]))[0]

    async def submit_many(self, tenant_id: str, uploads: Sequence[Upload]) -> list[IngestResult]:
        """Queue several documents, every one checked before any is stored."""
        await self.start()
        return await self._intake.submit(tenant_id, uploads)

    async def wait_for(
        self, tenant_id: str, document_ids: Sequence[str], timeout_s: float
    ) -> list[DocumentInfo]:
        """The documents once all are ``ready``/``failed``, or as they are at ``timeout_s``."""
        return await self._intake.wait_for(tenant_id, document_ids, timeout_s)

    async def queue_length(self) -> int:
        """Documents waiting for, or being indexed by, a worker."""
        return await self._intake.queue_length()

    async def ingest(
        self,
        tenant_id: str,
        name: str,
        data: bytes,
        content_type: str | None = None,
        collection: str = "default",
    ) -> IngestResult:
        """Ingest one document inline, bypassing the queue (the CLI, the demo, scripts).

        See ``DocumentIntake.ingest``: same bytes as a ready version is UNCHANGED,
        changed bytes REPLACED, else CREATED; bad input raises and stores nothing.
        """
        await self.start()
        return await self._intake.ingest(tenant_id, name, data, content_type, collection)

    async def set_quota(
        self, tenant_id: str, max_bytes: int | None, max_documents: int | None
    ) -> None:
        """Override a tenant's ingestion quota; ``None`` keeps the configured default."""
        check_tenant(tenant_id)
        await self._quotas.set_quota(tenant_id, max_bytes, max_documents)

    async def quota(self, tenant_id: str) -> tuple[IngestionQuota, int, int]:
        """A tenant's ingestion quota, and its stored documents and bytes now."""
        check_tenant(tenant_id)
        documents, stored = await self._quotas.usage(tenant_id)
        return await self._quotas.quota(tenant_id, self._quota), documents, stored

    async def get_document(self, tenant_id: str, document_id: str) -> DocumentInfo:
        """One of the tenant's documents.

        Raises:
            DocumentNotFoundError: No such document for this tenant.
        """
        check_tenant(tenant_id)
        return await self._documents.get(tenant_id, document_id)

    async def list_documents(
        self,
        tenant_id: str,
        collection: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DocumentPage:
        """The tenant's documents, newest first, a page at a time.

        Args:
            tenant_id: The owning tenant.
            collection: Only this collection, if given.
            limit: Page size, 1 to ``MAX_PAGE_SIZE``.
            cursor: ``next_cursor`` of the previous page; ``None`` for the first.

        Raises:
            InvalidRequestError: A bad limit or collection.
            InvalidCursorError: A cursor this service did not issue.
        """
        check_tenant(tenant_id)
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidRequestError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        if collection is not None:
            collection = check_label("collection", collection, MAX_COLLECTION_LENGTH)
        return await self._documents.page(tenant_id, collection, limit, cursor)

    async def delete_document(self, tenant_id: str, document_id: str) -> None:
        """Delete a document (queued, indexing or done): its chunks first, then its row.

        Raises:
            DocumentNotFoundError: No such document for this tenant.
            VectorStoreUnavailableError: The store failed; the row stays, retry later.
        """
        check_tenant(tenant_id)
        document = await self._documents.get(tenant_id, document_id)
        await self.start()
        # NOTE: a worker indexing this document notices the row is gone and removes
        # whatever it writes after this (see retrieval.ingestion): the delete wins.
        await self._indexer.discard(tenant_id, document.collection, document_id)
        await self._documents.delete(tenant_id, document_id)

    async def search(
        self,
        tenant_id: str,
        query: str,
        k: int = 4,
        collection: str | None = None,
        score_floor: float | None = None,
        *,
        mode: SearchMode | str = SearchMode.HYBRID,
        fusion: Fusion | str = Fusion.RRF,
        use_cache: bool = True,
    ) -> list[ChunkHit]:
        """The ``k`` chunks of the tenant's documents best matching ``query``, best first.

        Args:
            tenant_id: Whose documents to search; no other tenant's chunk is ever returned.
            query: The question or search text.
            k: Number of chunks, 1 to ``MAX_K``.
            collection: Only this collection, if given.
            score_floor: Drop weak chunks: below this cosine similarity in ``dense``
                and ``hybrid`` mode (in hybrid the floor applies to each chunk's dense
                cosine, since fused scores are ranks), below this BM25 score in ``sparse``.
            mode: ``dense``, ``sparse`` or ``hybrid`` (both, fused).
            fusion: How hybrid fuses the two rankings: ``rrf`` or ``dbsf``.
            use_cache: Consult and fill the node-local chunk cache (when it is enabled).

        Raises:
            InvalidRequestError: An empty or overlong query, a bad ``k``, mode or fusion.
            VectorStoreUnavailableError: The store cannot answer.
        """
        check_tenant(tenant_id)
        request = search_request(tenant_id, query, k, collection, score_floor, mode, fusion)
        await self.start()
        return await self._search.search(request, use_cache=use_cache)

    async def prefetch(
        self,
        tenant_id: str,
        collection: str | None,
        text: str,
        *,
        k: int = 4,
        mode: SearchMode | str = SearchMode.HYBRID,
    ) -> bool:
        """Warm the chunk cache for a likely next question, off the request path.

        Schedules a store query for ``text`` (e.g. the last question and its answer)
        whose candidates are admitted to the cache; returns at once without waiting
        for the query.

        Returns:
            Whether it was scheduled: ``False`` when the cache is off, the text is
            empty or the prefetch queue is full (prefetches are dropped, never waited on).
        """
        check_tenant(tenant_id)
        if not text.strip():
            return False
        request = search_request(
            tenant_id, text[-MAX_QUERY_CHARS:], k, collection, None, mode, Fusion.RRF
        )
        return self._search.prefetch(request)

    async def settle_prefetches(self) -> None:
        """Wait until every queued prefetch has run (tests and benchmarks)."""
        await self._search.settle()

    def cache_stats(self) -> CacheStats:
        """Counters of the node-local chunk cache (all zero when it is off)."""
        return self._search.cache_stats()

    def clear_cache(self, tenant_id: str | None = None) -> None:
        """Empty the node-local chunk cache, or drop one tenant's part of it.

        Nothing is stale after this: the next searches ask the vector store. Store
        answers still in flight are not admitted. A no-op when the cache is off.
        """
        if tenant_id is not None:
            check_tenant(tenant_id)
        self._search.clear(tenant_id)

    async def on_chunks_changed(self, tenant_id: str, collection: str, document_id: str) -> None:
        """Invalidate what a document's upsert or delete touched (an ``OnChunksChanged``).

        Call it after the store change and before the ingest or delete returns.
        """
        self._search.invalidate(tenant_id, collection, document_id)
        await self._on_chunks_changed(tenant_id, collection, document_id)

    async def embed(self, texts: Sequence[str]) -> tuple[list[list[float]], list[int]]:
        """Embed texts as passages (``/v1/embeddings``); see ``embed_passages``."""
        return await asyncio.to_thread(embed_passages, self._embedder, texts)

    async def embed_query(self, text: str) -> np.ndarray:
        """A question's unit vector, as searches embed it (the response cache's)."""
        return await self._queries.embed(text)

    async def check_health(self) -> None:
        """Raise ``VectorStoreUnavailableError`` when the vector store cannot answer."""
        await self._store.check_health()

    async def close(self) -> None:
        """Stop the ingestion workers, then close the vector store (releasing its lock)."""
        await self._workers.stop()
        await self._search.close()
        await self._store.close()
