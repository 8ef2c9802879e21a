"""One document into the vector store: extract, chunk, embed, upsert, prune.

Both ingestion paths use it: the queue's workers (``retrieval.ingestion``) and the
inline ``RetrievalService.ingest`` (the CLI, the demo, tests). Every step is
idempotent: point ids are derived from the document id, the chunk's position and
its text (``chunk_point_id``), so indexing the same bytes twice, or again after a
crash half-way, leaves exactly the same points.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import structlog

from retrieval.errors import InvalidDocumentError
from retrieval.extract import TEXT_HTML, TEXT_MARKDOWN, ExtractedText, ExtractLimits
from retrieval.extract_process import extract_isolated
from retrieval.types import OnChunksChanged, no_chunks_changed
from retrieval.vector_store import ChunkPoint, VectorStore

if TYPE_CHECKING:
    from retrieval.chunking import Chunk, Chunker
    from retrieval.embedding import Embedder

# Chunks embedded (one to_thread call) and upserted per round: bounds memory, lets a
# cancelled ingest stop between rounds and lets a worker renew its queue lease.
EMBED_ROUND = 256

_log = structlog.get_logger(__name__)

BetweenRounds = Callable[[int], Awaitable[None]]
"""Called with the number of chunks stored so far after each round; may raise to stop."""


class Indexer:
    """Turns a document's bytes into its points in the vector store."""

    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore,
        chunker: Chunker,
        on_chunks_changed: OnChunksChanged = no_chunks_changed,
        *,
        embed_round: int = EMBED_ROUND,
        limits: ExtractLimits | None = None,
    ) -> None:
        """Wire the indexer.

        Args:
            embedder: Embeds chunks (blocking; run in threads here).
            store: Where the points go.
            chunker: Splits extracted text into chunks.
            on_chunks_changed: Told after a document's points were written or deleted.
            embed_round: Chunks embedded and upserted per round.
            limits: Caps on extraction, which runs in a child process.
        """
        if embed_round < 1:
            raise ValueError(f"embed_round must be positive, got {embed_round}")
        self._round = embed_round
        self._embedder = embedder
        self._store = store
        self._chunker = chunker
        self._on_chunks_changed = on_chunks_changed
        self._limits = limits or ExtractLimits()

    def prepare(
        self, data: bytes, name: str, content_type: str | None
    ) -> tuple[ExtractedText, list[Chunk]]:
        """Extract (in a child process, within the limits) and chunk. Blocking: run
        it in a worker thread.

        Raises:
            UnsupportedDocumentError: Not a type we read.
            InvalidDocumentError: Corrupt, holds no text, or past a cap (its ``code``).
        """
        extracted = extract_isolated(data, name, content_type, self._limits)
        # HTML is rendered to Markdown-style headings by extract, so it splits the same way.
        markdown = extracted.content_type in (TEXT_MARKDOWN, TEXT_HTML)
        chunks = self._chunker.split(extracted.text, markdown=markdown)
        if not chunks:
            raise InvalidDocumentError(f"{name!r} holds no text")
        return extracted, chunks

    async def index(
        self,
        tenant_id: str,
        collection: str,
        name: str,
        document_id: str,
        chunks: Sequence[Chunk],
        between_rounds: BetweenRounds | None = None,
    ) -> None:
        """Embed and upsert the chunks, then prune the document's stale points.

        Raises:
            VectorStoreUnavailableError: The store failed; what was written stays
                (it is overwritten by the retry, or removed by ``discard``).
        """
        kept: set[str] = set()
        for start in range(0, len(chunks), self._round):
            batch = chunks[start : start + self._round]
            vectors = await asyncio.to_thread(
                self._embedder.embed_documents, [chunk.embedded_text for chunk in batch]
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
            if between_rounds is not None:
                await between_rounds(len(kept))
        # NOTE: new chunks go in before old ones go out, so a replaced document never
        # vanishes from search mid-ingest (searches may briefly see both versions).
        # Unchanged chunks keep their deterministic ids and are simply overwritten.
        await self._store.delete_document(tenant_id, document_id, keep_ids=kept)
        await self._on_chunks_changed(tenant_id, collection, document_id)

    async def discard(self, tenant_id: str, collection: str, document_id: str) -> None:
        """Delete every point of the document, then tell ``on_chunks_changed``.

        Raises:
            VectorStoreUnavailableError: The store failed.
        """
        await self._store.delete_document(tenant_id, document_id)
        await self._on_chunks_changed(tenant_id, collection, document_id)

    async def discard_quietly(self, tenant_id: str, collection: str, document_id: str) -> None:
        """``discard``, logging rather than raising (cleanup after a failure)."""
        try:
            await self.discard(tenant_id, collection, document_id)
        except Exception:
            _log.warning("chunk_removal_failed", document_id=document_id)
