"""Documents in: queue an upload (``submit``), wait for it, or ingest it inline.

``submit`` is the API's path: cheap checks, the bytes and a ``queued`` row stored in
one transaction, then a reference queued for a worker (``retrieval.ingestion``).
``ingest`` is the inline path of the CLI and the demo: the same ``Indexer``, run
at once in the caller. Both treat the same bytes as an existing ready version as a
no-op, and replace a document's chunks in place when its bytes change.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from typing import TYPE_CHECKING

import structlog

from retrieval.errors import (
    FAILURES,
    DocumentNotFoundError,
    IngestQueueFullError,
)
from retrieval.quotas import QuotaStore, check_quota
from retrieval.sniff import sniff_upload
from retrieval.types import (
    DocumentInfo,
    DocumentStatus,
    IngestionQuota,
    IngestJob,
    IngestOutcome,
    IngestResult,
    Upload,
)
from retrieval.validation import MAX_COLLECTION_LENGTH, MAX_NAME_LENGTH, check_label, check_tenant

if TYPE_CHECKING:
    from collections.abc import Sequence

    from retrieval.indexer import Indexer
    from retrieval.ingest_queue import IngestQueue
    from retrieval.repository import DocumentRepository

DEFAULT_QUOTA = IngestionQuota(max_bytes=5 * 1024**3, max_documents=100_000)
_FINAL = (DocumentStatus.READY, DocumentStatus.FAILED)

_log = structlog.get_logger(__name__)


class DocumentIntake:
    """Submits, waits for and inline-ingests documents (the caller has started the store)."""

    def __init__(
        self,
        documents: DocumentRepository,
        indexer: Indexer,
        queue: IngestQueue,
        max_document_bytes: int,
        quota: IngestionQuota = DEFAULT_QUOTA,
        quotas: QuotaStore | None = None,
    ) -> None:
        self._documents = documents
        self._indexer = indexer
        self._queue = queue
        self._max_document_bytes = max_document_bytes
        self._quota = quota
        self._quotas = quotas

    async def submit(self, tenant_id: str, uploads: Sequence[Upload]) -> list[IngestResult]:
        """Queue documents for ingestion and return at once (status ``queued``).

        Checks that need no model (names, sizes, types, a look at the first bytes)
        run on every upload before anything is stored or queued, so one bad file
        fails the whole request cleanly; extraction errors later end a document
        ``failed`` with the reason. The bytes are stored in SQL until indexed. The
        same bytes as a ready (or already queued) version are a no-op (UNCHANGED);
        new bytes under an existing name will replace that document (REPLACED).

        Raises:
            InvalidRequestError: A bad tenant id, name or collection.
            UnsupportedDocumentError: Not a type we read; nothing is stored.
            InvalidDocumentError: Empty or not what its type says; nothing is stored.
            DocumentTooLargeError: One file is larger than a document may be; likewise.
            QuotaExceededError: The request would take the tenant past its quota;
                nothing is stored (checked for the whole request first, then again as
                each is stored, against concurrent uploads).
            IngestQueueFullError: Too many documents are waiting; this one and the
                ones after it are not stored (earlier ones stay queued).
            IngestQueueUnavailableError: The queue cannot be reached; likewise.
        """
        check_tenant(tenant_id)
        checked = [self._check(upload) for upload in uploads]
        await self._check_quota(tenant_id, [upload for upload, _ in checked])
        return [await self._submit_one(tenant_id, *item) for item in checked]

    async def _check_quota(self, tenant_id: str, uploads: Sequence[Upload]) -> None:
        """Refuse a request that would, as a whole, take the tenant past its quota."""
        if self._quotas is None:
            return
        quota = await self._quotas.quota(tenant_id, self._quota)
        documents, stored = await self._quotas.usage(tenant_id)
        for upload in uploads:
            existing = await self._documents.find_by_name(tenant_id, upload.collection, upload.name)
            if existing is None:
                documents += 1
            else:
                stored -= existing.size_bytes
            stored += len(upload.data)
            check_quota(quota, documents, stored, upload.name)

    def _check(self, upload: Upload) -> tuple[Upload, str]:
        name = check_label("name", upload.name, MAX_NAME_LENGTH)
        collection = check_label("collection", upload.collection, MAX_COLLECTION_LENGTH)
        resolved = sniff_upload(upload.data, name, upload.content_type, self._max_document_bytes)
        return Upload(name, upload.data, upload.content_type, collection), resolved

    async def _submit_one(self, tenant_id: str, upload: Upload, resolved: str) -> IngestResult:
        name, collection = upload.name, upload.collection
        content_hash = hashlib.sha256(upload.data).hexdigest()
        existing = await self._documents.find_by_name(tenant_id, collection, name)
        if (
            existing is not None
            and existing.content_hash == content_hash
            and existing.status is not DocumentStatus.FAILED
        ):
            return IngestResult(existing, IngestOutcome.UNCHANGED)
        if not await self._queue.has_room():
            raise IngestQueueFullError("the ingestion queue is full; retry later")
        claim = await self._documents.claim(
            tenant_id,
            collection,
            name,
            content_type=resolved,
            content_hash=content_hash,
            size_bytes=len(upload.data),
            status=DocumentStatus.QUEUED,
            upload=upload.data,
            upload_content_type=upload.content_type,
            quota=self._quota if self._quotas is not None else None,
        )
        try:
            await self._queue.put(IngestJob(tenant_id, claim.document_id, content_hash))
        except BaseException:
            # Not queued: put the row back as it was, so nothing is left half-done.
            await self._documents.unclaim(claim)
            raise
        outcome = IngestOutcome.CREATED if claim.created else IngestOutcome.REPLACED
        return IngestResult(claim.document, outcome)

    async def wait_for(
        self, tenant_id: str, document_ids: Sequence[str], timeout_s: float
    ) -> list[DocumentInfo]:
        """Wait until the documents are ``ready`` or ``failed``, or ``timeout_s`` passes.

        Returns:
            The documents as they are then, in the order asked (deleted ones left
            out); some may still be ``queued`` or ``indexing`` after a timeout.
        """
        check_tenant(tenant_id)
        deadline = time.monotonic() + timeout_s
        pause = 0.02
        while True:
            found = {
                doc.id: doc for doc in await self._documents.get_many(tenant_id, list(document_ids))
            }
            documents = [found[i] for i in document_ids if i in found]
            # NOTE: polling SQL works whichever node's worker indexes the document;
            # the back-off keeps it to a few queries a second.
            if all(doc.status in _FINAL for doc in documents) or time.monotonic() >= deadline:
                return documents
            await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, 0.25)

    async def queue_length(self) -> int:
        """Documents waiting for, or being indexed by, a worker."""
        return await self._queue.length()

    async def ingest(
        self,
        tenant_id: str,
        name: str,
        data: bytes,
        content_type: str | None = None,
        collection: str = "default",
    ) -> IngestResult:
        """Ingest (or re-ingest) one document inline, bypassing the queue.

        For the CLI, the demo and scripts; the API uses ``submit``. The same bytes
        as a ready version are a no-op (UNCHANGED); changed bytes replace the
        document's chunks under the same id (REPLACED); anything else is CREATED.

        Raises:
            InvalidRequestError: A bad tenant id, name or collection.
            UnsupportedDocumentError: Not a type we read; nothing is stored.
            InvalidDocumentError: Too large, corrupt or empty; nothing is stored.
            VectorStoreUnavailableError: The store failed; the row is marked failed.
        """
        check_tenant(tenant_id)
        name = check_label("name", name, MAX_NAME_LENGTH)
        collection = check_label("collection", collection, MAX_COLLECTION_LENGTH)
        sniff_upload(data, name, content_type, self._max_document_bytes)
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
        extracted, chunks = await asyncio.to_thread(self._indexer.prepare, data, name, content_type)
        claim = await self._documents.claim(
            tenant_id,
            collection,
            name,
            content_type=extracted.content_type,
            content_hash=content_hash,
            size_bytes=len(data),
            quota=self._quota if self._quotas is not None else None,
        )
        try:
            await self._indexer.index(tenant_id, collection, name, claim.document_id, chunks)
            document = await self._documents.set_status(
                claim.document_id, DocumentStatus.READY, chunk_count=len(chunks), error=None
            )
        except Exception as exc:
            # The exception's text names hosts and library internals: log only.
            _log.warning("ingest_failed", document_id=claim.document_id, error=repr(exc))
            await self._indexer.discard_quietly(tenant_id, collection, claim.document_id)
            # Deleted while we were indexing: the delete wins.
            with contextlib.suppress(DocumentNotFoundError):
                await self._documents.set_status(
                    claim.document_id,
                    DocumentStatus.FAILED,
                    chunk_count=0,
                    error=FAILURES["indexing_failed"],
                    error_code="indexing_failed",
                )
            raise
        outcome = IngestOutcome.CREATED if claim.created else IngestOutcome.REPLACED
        return IngestResult(document, outcome)
