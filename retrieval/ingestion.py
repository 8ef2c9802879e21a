"""Ingestion workers: take jobs from the queue, index the stored upload, record the end.

A job's life (docs/ingestion.md): ``submit`` stores the bytes and a ``queued`` row, then
queues a reference. A worker marks the row ``indexing`` and counts the attempt in
the same transaction (``UploadLeases.start_indexing``), extracts (in a child
process, within caps), chunks, embeds and upserts (``Indexer``), marks it ``ready``
(or ``failed`` with a code and a safe reason), drops the stored bytes and only then
acks the entry. A worker that dies before the ack leaves the entry pending; after
the queue's claim idle time another worker takes it and redoes the work, which
yields the same points (their ids come from content). While a worker holds an
entry it renews its lease, on the queue and on the SQL row, so a slow document is
not taken from it, and a second entry for the same job (re-queued on a restart)
is left alone while the row's lease is fresh. A document whose attempts pass
``max_attempts`` (it killed its worker each time) ends ``failed``.

Deletion wins: the worker checks between embedding rounds, and again at the end,
that its document still exists with the bytes it is indexing; if it was deleted it
removes what it wrote, and if a newer upload replaced it, it stops and leaves the
document to the newer job.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from kernel.queue.lease import LeaseLostError, with_lease
from retrieval.errors import (
    FAILURES,
    DocumentNotFoundError,
    IngestQueueFullError,
    InvalidDocumentError,
    UnsupportedDocumentError,
)
from retrieval.leases import Taken
from retrieval.types import DocumentStatus, IngestJob

if TYPE_CHECKING:
    from retrieval.indexer import Indexer
    from retrieval.ingest_queue import Delivery, IngestQueue
    from retrieval.leases import UploadLeases
    from retrieval.repository import DocumentRepository

DEFAULT_POLL_S = 1.0
DEFAULT_MAX_ATTEMPTS = 3
_BACKOFF_S = 1.0

_log = structlog.get_logger(__name__)


class _Stale(Exception):
    """The document was deleted or replaced while being indexed."""


def consumer_name(index: int) -> str:
    """A consumer name unique to this process and worker (host, pid, random part)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}-{index}"


class IngestionWorkers:
    """Worker tasks of this process, each a consumer of the shared ingestion queue."""

    def __init__(
        self,
        queue: IngestQueue,
        documents: DocumentRepository,
        indexer: Indexer,
        leases: UploadLeases,
        *,
        workers: int = 1,
        claim_idle_s: float = 60.0,
        poll_s: float = DEFAULT_POLL_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        """Wire the workers; nothing runs until ``start``.

        Args:
            queue: The shared queue.
            documents: Rows and stored uploads.
            indexer: Extracts, chunks, embeds and upserts.
            leases: Takes, renews and releases uploads in SQL (attempts counted).
            workers: Worker tasks to run (0: this process only submits).
            claim_idle_s: The queue's claim idle time; leases are renewed at a third of it.
            poll_s: Longest wait for an entry before a worker looks for stuck ones again.
            max_attempts: Attempts at one upload (each counted in SQL as it starts)
                after which its document ends ``failed`` (``too_many_attempts``).
        """
        self._queue = queue
        self._documents = documents
        self._indexer = indexer
        self._leases = leases
        self._count = workers
        self._renew_s = max(claim_idle_s / 3, 0.01)
        # NOTE: a live worker renews its row's lease every third of the idle time; a
        # row not renewed for two thirds of it is a dead worker's. The queue hands the
        # entry out again only after the whole idle time, so by then the row is stale.
        self._stale_s = claim_idle_s * 2 / 3
        self._max_attempts = max_attempts
        self._poll_s = min(poll_s, claim_idle_s)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def running(self) -> int:
        return sum(1 for task in self._tasks if not task.done())

    def start(self) -> None:
        """Start the worker tasks (on the running loop); idempotent."""
        if self._tasks:
            return
        self._stopping = False
        for index in range(self._count):
            name = consumer_name(index)
            self._tasks.append(asyncio.create_task(self.run(name), name=f"ingest-{name}"))

    async def stop(self) -> None:
        """Cancel the workers; an entry being worked on stays pending for another."""
        tasks, self._tasks = self._tasks, []
        self._stopping = True  # in case a cancellation is swallowed somewhere below
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def recover(self) -> int:
        """Queue again every stored upload the queue lacks (on start).

        An in-process queue died with the last process: its ``indexing`` rows go
        back to ``queued`` and all are queued. A Redis stream keeps its entries (a
        dead worker's pending ones are claimed after the idle time), but may lack
        some: the API process died between storing an upload and queueing it, or
        Redis lost its data. Several processes starting at once may each queue a
        job; ``start_indexing`` lets only one attempt run at a time.

        Returns:
            The number of jobs queued.
        """
        if not self._queue.durable:
            await self._leases.requeue_abandoned()
        else:
            forgotten = await self._queue.forget_idle_consumers()
            if forgotten:
                _log.info("ingest_idle_consumers_forgotten", count=forgotten)
        present = await self._queue.jobs()
        jobs = [job for job in await self._documents.pending_jobs() if job not in present]
        for queued, job in enumerate(jobs):
            try:
                await self._queue.put(job)
            except IngestQueueFullError:
                # NOTE: the rest stay stored and are queued at the next start.
                _log.warning("ingest_queue_full_on_recovery", not_requeued=len(jobs) - queued)
                return queued
        if jobs:
            _log.info("ingest_uploads_requeued", count=len(jobs))
        return len(jobs)

    async def run(self, consumer: str) -> None:
        """One worker: receive, process, repeat, until cancelled."""
        while not self._stopping:
            try:
                delivery = await self._queue.receive(consumer, self._poll_s)
                if delivery is not None:
                    await self.process(consumer, delivery)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The queue or the database is down: keep the worker alive and retry.
                _log.exception("ingest_worker_failed_retrying", consumer=consumer)
                await asyncio.sleep(_BACKOFF_S)

    async def process(self, consumer: str, delivery: Delivery[IngestJob]) -> None:
        """Handle one delivery; ack it unless the lease was lost or a retry is due."""
        if delivery.dead:
            await self._give_up(delivery)
            return
        try:
            acked = await with_lease(
                self._queue,
                consumer,
                delivery,
                self._handle(delivery),
                renew_s=self._renew_s,
                # The row first: its lease must never be older than the queue entry's.
                before_renew=lambda: self._touch(delivery.job),
            )
        except LeaseLostError:
            _log.warning("ingest_lease_lost", document_id=delivery.job.document_id)
            return
        if acked:
            await self._queue.ack(delivery)

    async def _touch(self, job: IngestJob) -> None:
        try:
            await self._leases.touch(job)
        except Exception:
            _log.warning("ingest_lease_renewal_failed", document_id=job.document_id)

    async def _handle(self, delivery: Delivery[IngestJob]) -> bool:
        """Index the job's upload; whether the entry is done (to be acked)."""
        job = delivery.job
        stale_before = datetime.now(UTC) - timedelta(seconds=self._stale_s)
        take = await self._leases.start_indexing(
            job, max_attempts=self._max_attempts, stale_before=stale_before
        )
        if take.taken is Taken.GONE:
            return True  # deleted, replaced by a newer upload, or already done
        if take.taken is Taken.BUSY:
            # Another worker holds it (a duplicate entry): leave this entry pending; it
            # comes back after the idle time and is dropped once the document is done.
            _log.info("ingest_job_busy", document_id=job.document_id, attempts=take.attempts)
            return False
        if take.taken is Taken.EXHAUSTED:
            _log.error(
                "ingest_gave_up_after_attempts",
                document_id=job.document_id,
                attempts=take.attempts - 1,
                max_attempts=self._max_attempts,
            )
            if not await self._discard(job):
                return False  # the store failed: the entry comes back and the drop is retried
            await self._end(job, DocumentStatus.FAILED, "too_many_attempts")
            return True
        upload = take.upload
        if upload is None:  # pragma: no cover - STARTED always carries the upload
            return True
        document = upload.document
        try:
            _extracted, chunks = await asyncio.to_thread(
                self._indexer.prepare, upload.data, document.name, upload.content_type
            )
        except (InvalidDocumentError, UnsupportedDocumentError) as exc:
            # NOTE: the row now describes the bad version, so the previous version's
            # chunks go too: search never serves a document whose status is failed.
            _log.info("ingest_document_unreadable", document_id=job.document_id, code=exc.code)
            await self._indexer.discard_quietly(job.tenant_id, document.collection, job.document_id)
            await self._documents.finish(
                job, DocumentStatus.FAILED, chunk_count=0, error=str(exc), error_code=exc.code
            )
            return True

        async def between_rounds(_done: int) -> None:
            if not await self._documents.is_current(job):
                raise _Stale

        try:
            await self._indexer.index(
                job.tenant_id,
                document.collection,
                document.name,
                job.document_id,
                chunks,
                between_rounds,
            )
        except _Stale:
            await self._drop_if_deleted(job, document.collection)
            return True
        except Exception as exc:
            # Transient (the vector store is down): leave the entry pending, so it is
            # delivered again after the claim idle time, until it is dead-lettered.
            # The exception's text names hosts and library internals: log only.
            _log.warning(
                "ingest_attempt_failed",
                document_id=job.document_id,
                attempt=take.attempts,
                error=repr(exc),
            )
            await self._end(job, DocumentStatus.QUEUED, "index_retrying", keep_upload=True)
            return False
        finished = await self._documents.finish(
            job, DocumentStatus.READY, chunk_count=len(chunks), error=None
        )
        if finished is None:
            await self._drop_if_deleted(job, document.collection)
        return True

    async def _drop_if_deleted(self, job: IngestJob, collection: str) -> None:
        """Remove what this job wrote if its document is gone (a newer upload cleans up itself)."""
        try:
            await self._documents.get(job.tenant_id, job.document_id)
        except DocumentNotFoundError:
            await self._indexer.discard_quietly(job.tenant_id, collection, job.document_id)

    async def _give_up(self, delivery: Delivery[IngestJob]) -> None:
        """The queue dead-lettered the entry: fail its document, unless it is done
        or another worker holds it (the dead entry was a duplicate)."""
        job = delivery.job
        try:
            document = await self._documents.get(job.tenant_id, job.document_id)
        except DocumentNotFoundError:
            return
        if document.content_hash != job.content_hash or document.status not in (
            DocumentStatus.QUEUED,
            DocumentStatus.INDEXING,
        ):
            return
        stale_before = datetime.now(UTC) - timedelta(seconds=self._stale_s)
        if document.status is DocumentStatus.INDEXING and document.updated_at > stale_before:
            return
        _log.error(
            "ingest_gave_up_after_deliveries",
            document_id=job.document_id,
            deliveries=delivery.deliveries - 1,
            last_error_code=document.error_code,
        )
        await self._indexer.discard_quietly(job.tenant_id, document.collection, job.document_id)
        await self._end(job, DocumentStatus.FAILED, "indexing_failed")

    async def _end(
        self, job: IngestJob, status: DocumentStatus, code: str, *, keep_upload: bool = False
    ) -> None:
        """Record ``job`` as ended without chunks, for failure ``code``
        (``FAILURES``' message for it)."""
        await self._documents.finish(
            job,
            status,
            chunk_count=0,
            error=FAILURES[code],
            error_code=code,
            keep_upload=keep_upload,
        )

    async def _discard(self, job: IngestJob) -> bool:
        """Remove what earlier attempts at the job wrote; whether that is done (false:
        the vector store failed, and the points are still there)."""
        try:
            document = await self._documents.get(job.tenant_id, job.document_id)
        except DocumentNotFoundError:
            return True
        try:
            await self._indexer.discard(job.tenant_id, document.collection, job.document_id)
        except Exception:
            _log.warning("chunk_removal_failed_retrying", document_id=job.document_id)
            return False
        return True
