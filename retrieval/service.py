"""The retrieval service: ingest, list, delete and search a tenant's documents.

Rows (``DocumentRow``) record what was ingested; chunk vectors live in the vector
store. Every public method takes the tenant id and scopes everything to it: another
tenant's document is indistinguishable from a missing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from retrieval.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_TOKENS, Chunk, Chunker
from retrieval.embedding import Embedder
from retrieval.errors import DocumentNotFoundError, InvalidDocumentError, InvalidRequestError
from retrieval.extract import TEXT_HTML, TEXT_MARKDOWN, ExtractedText, extract_text
from retrieval.repository import DocumentRepository
from retrieval.types import (
    ChunkHit,
    DocumentInfo,
    DocumentPage,
    DocumentStatus,
    IngestOutcome,
    IngestResult,
)
from retrieval.validation import MAX_COLLECTION_LENGTH, MAX_NAME_LENGTH, check_label, check_tenant
from retrieval.vector_store import ChunkPoint, VectorStore

MAX_PAGE_SIZE = 200
MAX_QUERY_CHARS = 4096
MAX_K = 100
DEFAULT_MAX_DOCUMENT_BYTES = 32 * 1024 * 1024

# Chunks embedded (one to_thread call) and upserted per round: bounds memory and
# lets a cancelled ingest stop between rounds.
_EMBED_ROUND = 256
_MAX_ERROR_CHARS = 2000

_log = logging.getLogger(__name__)


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
    ) -> None:
        """Wire the service; nothing is contacted until ``start`` or first use.

        Args:
            sessions: Session factory of the database holding ``documents``.
            embedder: Embeds chunks and queries (blocking; run in threads here).
            store: Where chunk vectors live.
            chunk_tokens: Chunk capacity in the embedder's tokens.
            chunk_overlap: Tokens shared by neighbouring chunks.
            max_document_bytes: Largest upload accepted.
        """
        self._documents = DocumentRepository(sessions)
        self._embedder = embedder
        self._store = store
        self._chunker = Chunker(embedder.tokenizer, chunk_tokens, chunk_overlap)
        self._max_document_bytes = max_document_bytes
        self._ready = False
        self._ready_lock = asyncio.Lock()

    async def start(self) -> None:
        """Prepare the vector store (collection, indexes). Called lazily if not called."""
        if self._ready:
            return
        async with self._ready_lock:
            if not self._ready:
                await self._store.ensure_ready(self._embedder.dimension)
                self._ready = True

    async def ingest(
        self,
        tenant_id: str,
        name: str,
        data: bytes,
        content_type: str | None = None,
        collection: str = "default",
    ) -> IngestResult:
        """Ingest (or re-ingest) one document.

        The same tenant, collection and name with the same bytes and a ready row is a
        no-op (UNCHANGED). Changed bytes replace the document's chunks under the same
        document id (REPLACED); anything else is CREATED.

        Args:
            tenant_id: The owning tenant.
            name: The document's file name, unique within the collection.
            data: The file's bytes.
            content_type: The client's content type; the extension is the fallback.
            collection: The tenant's document grouping.

        Returns:
            The stored document and what was done.

        Raises:
            InvalidRequestError: A bad tenant id, name or collection.
            UnsupportedDocumentError: Not a type we read; nothing is stored.
            InvalidDocumentError: Too large, corrupt or empty; nothing is stored.
            VectorStoreUnavailableError: The store failed; the row is marked failed.
        """
        check_tenant(tenant_id)
        name = check_label("name", name, MAX_NAME_LENGTH)
        collection = check_label("collection", collection, MAX_COLLECTION_LENGTH)
        if len(data) > self._max_document_bytes:
            raise InvalidDocumentError(
                f"{name!r} is {len(data)} bytes; the limit is {self._max_document_bytes}"
            )
        content_hash = hashlib.sha256(data).hexdigest()
        existing = await self._documents.find_by_name(tenant_id, collection, name)
        if (
            existing is not None
            and existing.content_hash == content_hash
            and existing.status == DocumentStatus.READY
        ):
            return IngestResult(existing, IngestOutcome.UNCHANGED)

        # Extraction and chunking fail on bad input before anything is written, so a
        # bad upload never clobbers a good earlier version.
        extracted, chunks = await asyncio.to_thread(self._prepare, data, name, content_type)
        await self.start()
        document_id, created = await self._documents.claim(
            tenant_id,
            collection,
            name,
            content_type=extracted.content_type,
            content_hash=content_hash,
            size_bytes=len(data),
        )
        try:
            await self._index(tenant_id, collection, name, document_id, chunks)
            document = await self._documents.set_status(
                document_id, DocumentStatus.READY, chunk_count=len(chunks), error=None
            )
        except Exception as exc:
            await self._fail(tenant_id, document_id, exc)
            raise
        outcome = IngestOutcome.CREATED if created else IngestOutcome.REPLACED
        return IngestResult(document, outcome)

    def _prepare(
        self, data: bytes, name: str, content_type: str | None
    ) -> tuple[ExtractedText, list[Chunk]]:
        """Extract and chunk (blocking; runs in a worker thread)."""
        extracted = extract_text(data, name, content_type)
        # HTML is rendered to Markdown-style headings by extract, so it splits the same way.
        markdown = extracted.content_type in (TEXT_MARKDOWN, TEXT_HTML)
        chunks = self._chunker.split(extracted.text, markdown=markdown)
        if not chunks:
            raise InvalidDocumentError(f"{name!r} holds no text")
        return extracted, chunks

    async def _index(
        self,
        tenant_id: str,
        collection: str,
        name: str,
        document_id: str,
        chunks: Sequence[Chunk],
    ) -> None:
        """Embed and upsert the chunks, then prune the document's stale points."""
        kept: set[str] = set()
        for start in range(0, len(chunks), _EMBED_ROUND):
            batch = chunks[start : start + _EMBED_ROUND]
            vectors = await asyncio.to_thread(
                self._embedder.embed_documents, [chunk.text for chunk in batch]
            )
            points = [
                ChunkPoint(
                    tenant_id=tenant_id,
                    collection=collection,
                    document_id=document_id,
                    document_name=name,
                    position=chunk.position,
                    text=chunk.text,
                    vector=vector,
                )
                for chunk, vector in zip(batch, vectors, strict=True)
            ]
            await self._store.upsert(points)
            kept.update(point.id for point in points)
        # NOTE: new chunks go in before old ones go out, so a replaced document never
        # vanishes from search mid-ingest (searches may briefly see both versions).
        # Unchanged chunks keep their deterministic ids and are simply overwritten.
        await self._store.delete_document(tenant_id, document_id, keep_ids=kept)

    async def _fail(self, tenant_id: str, document_id: str, exc: Exception) -> None:
        """Record a failed ingest and, best effort, drop its partial chunks."""
        _log.warning("ingest of document %s failed: %s", document_id, exc)
        try:
            await self._store.delete_document(tenant_id, document_id)
        except Exception:
            _log.warning("could not clean the chunks of failed document %s", document_id)
        # Deleted while we were indexing: the delete wins.
        with contextlib.suppress(DocumentNotFoundError):
            await self._documents.set_status(
                document_id,
                DocumentStatus.FAILED,
                chunk_count=0,
                error=f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS],
            )
        # NOTE: a cancelled ingest skips this and leaves the row INDEXING; re-ingesting
        # the same bytes redoes it, since only READY rows count as unchanged.

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
        """Delete a document: its chunks first, then its row.

        Raises:
            DocumentNotFoundError: No such document for this tenant.
            VectorStoreUnavailableError: The store failed; the row stays, retry later.
        """
        check_tenant(tenant_id)
        await self._documents.get(tenant_id, document_id)
        await self.start()
        await self._store.delete_document(tenant_id, document_id)
        await self._documents.delete(tenant_id, document_id)

    async def search(
        self,
        tenant_id: str,
        query: str,
        k: int = 4,
        collection: str | None = None,
        score_floor: float | None = None,
    ) -> list[ChunkHit]:
        """The ``k`` chunks of the tenant's documents closest to ``query``, best first.

        Args:
            tenant_id: Whose documents to search; no other tenant's chunk is ever returned.
            query: The question or search text.
            k: Number of chunks, 1 to ``MAX_K``.
            collection: Only this collection, if given.
            score_floor: Drop chunks whose cosine similarity is below this.

        Raises:
            InvalidRequestError: An empty or overlong query, or a bad ``k``.
            VectorStoreUnavailableError: The store cannot answer.
        """
        check_tenant(tenant_id)
        if not query.strip():
            raise InvalidRequestError("query must not be empty")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidRequestError(f"query is longer than {MAX_QUERY_CHARS} characters")
        if not 1 <= k <= MAX_K:
            raise InvalidRequestError(f"k must be between 1 and {MAX_K}")
        if collection is not None:
            collection = check_label("collection", collection, MAX_COLLECTION_LENGTH)
        await self.start()
        vector = await asyncio.to_thread(self._embedder.embed_query, query)
        return await self._store.search(
            tenant_id, vector, k, collection=collection, score_floor=score_floor
        )

    async def check_health(self) -> None:
        """Raise ``VectorStoreUnavailableError`` when the vector store cannot answer."""
        await self._store.check_health()

    async def close(self) -> None:
        """Close the vector store (local mode releases its folder lock)."""
        await self._store.close()
