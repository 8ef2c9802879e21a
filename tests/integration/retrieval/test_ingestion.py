"""Asynchronous ingestion through the queue, with the real embedder, Qdrant and SQL.

Each test drives ``RetrievalService`` as the API does (``submit``, then the status)
and checks what a user would see: the status moving to ``ready`` or ``failed`` with
a reason, the exact chunks in Qdrant, and nothing stored for refused uploads.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from pypdf import PdfWriter
from sqlalchemy import select

from retrieval import ingestion
from retrieval.chunking import Chunker
from retrieval.errors import (
    FAILURES,
    DocumentNotFoundError,
    IngestQueueFullError,
    InvalidDocumentError,
    InvalidRequestError,
    UnsupportedDocumentError,
    VectorStoreUnavailableError,
)
from retrieval.extract import ExtractLimits
from retrieval.ingest_queue import IngestQueue, InProcessIngestQueue, RedisStreamsIngestQueue
from retrieval.models import DocumentUploadRow
from retrieval.service import RetrievalService
from retrieval.types import DocumentStatus, IngestJob, IngestOutcome, Upload

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from retrieval.embedding import SentenceTransformerEmbedder
    from retrieval.vector_store import VectorStore

pytestmark = pytest.mark.model

TENANT = "33333333-3333-3333-3333-333333333333"
MakeQueue = Callable[..., IngestQueue]
"""The ``make_queue`` fixture of this folder's conftest."""

CLAIM_IDLE_S = 1.0
EMBED_ROUND = 8


def manual(sections: int, topic: str = "pump") -> bytes:
    """A document of roughly ``sections / 2`` chunks of 200 tokens."""
    return "\n\n".join(
        f"Section {i}. The {topic} manual describes procedure {i} for unit {i % 13}: inspect "
        "the valve, record the pressure, replace the filter if it is clogged, and sign the "
        "log book before restarting. " * 2
        for i in range(sections)
    ).encode()


def expected_chunks(embedder: SentenceTransformerEmbedder, data: bytes) -> int:
    return len(Chunker(embedder.tokenizer, 200, 40).split(data.decode()))


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def drained(queue_length: Callable[[], Awaitable[int]]) -> None:
    """Waits for an empty queue: a worker acks its entry just after it stores the status."""

    async def empty() -> bool:
        return await queue_length() == 0

    await eventually(empty, within_s=10)


@pytest.fixture
def ingestion_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """The events the ingestion workers log during the test.

    NOTE: a fresh module logger: once another test has configured the app's logging
    (``cache_logger_on_first_use``), the module's own logger is bound for good and
    ``capture_logs`` alone would see nothing.
    """
    with structlog.testing.capture_logs() as logs:
        monkeypatch.setattr(ingestion, "_log", structlog.get_logger(ingestion.__name__))
        yield logs


@pytest.fixture
def queue(make_queue: MakeQueue) -> IngestQueue:
    """A queue of each kind (see ``make_queue``) with a short claim idle time."""
    return make_queue(claim_idle_s=CLAIM_IDLE_S, max_deliveries=3, max_queued=100)


@pytest.fixture
async def make_service(
    sessions: async_sessionmaker,
    embedder: SentenceTransformerEmbedder,
    store: VectorStore,
) -> AsyncIterator[Callable[..., Awaitable[RetrievalService]]]:
    """Builds services over one database and store; stops their workers at the end."""
    built: list[RetrievalService] = []

    async def make(queue: IngestQueue | None = None, **options: object) -> RetrievalService:
        options.setdefault("claim_idle_s", CLAIM_IDLE_S)
        options.setdefault("embed_round", EMBED_ROUND)
        service = RetrievalService(sessions, embedder, store, queue=queue, **options)  # type: ignore[arg-type]
        await service.start()
        built.append(service)
        return service

    yield make
    for service in built:
        await service.stop_workers()


async def test_submit_answers_queued_and_a_worker_makes_it_ready(
    make_service: Callable[..., Awaitable[RetrievalService]],
    queue: IngestQueue,
    store: VectorStore,
) -> None:
    service = await make_service(queue)
    await service.start_workers()
    result = await service.submit(TENANT, "pump.txt", manual(10))
    assert result.outcome is IngestOutcome.CREATED
    assert result.document.status is DocumentStatus.QUEUED
    assert result.document.chunk_count == 0
    [done] = await service.wait_for(TENANT, [result.document.id], timeout_s=60)
    assert done.status is DocumentStatus.READY
    assert done.error is None
    assert done.chunk_count >= 3
    assert await store.count(TENANT, done.id) == done.chunk_count
    await drained(service.queue_length)
    hits = await service.search(TENANT, "what does procedure 4 say about the filter?", k=3)
    assert hits
    assert hits[0].document_id == done.id


async def test_a_worker_killed_mid_document_is_replaced_without_lost_or_duplicate_chunks(
    make_service: Callable[..., Awaitable[RetrievalService]],
    queue: IngestQueue,
    store: VectorStore,
    embedder: SentenceTransformerEmbedder,
) -> None:
    """Guards at-least-once ingestion: the entry is claimed again and redone idempotently."""
    data = manual(60)
    expected = expected_chunks(embedder, data)
    assert expected > 2 * EMBED_ROUND
    service = await make_service(queue)
    await service.start_workers()
    result = await service.submit(TENANT, "big.txt", data)
    document_id = result.document.id

    async def partly_indexed() -> bool:
        return await store.count(TENANT, document_id) >= EMBED_ROUND

    await eventually(partly_indexed)
    await service.stop_workers()  # the worker dies mid-document, nothing acked
    partial = await store.count(TENANT, document_id)
    assert 0 < partial < expected
    assert (await service.get_document(TENANT, document_id)).status is DocumentStatus.INDEXING
    assert await queue.length() == 1

    started = time.monotonic()
    await service.start_workers()  # new consumers; the entry comes back after the idle time
    [done] = await service.wait_for(TENANT, [document_id], timeout_s=120)
    assert done.status is DocumentStatus.READY
    assert time.monotonic() - started >= CLAIM_IDLE_S * 0.9
    assert done.chunk_count == expected
    assert await store.count(TENANT, document_id) == expected
    points = await store.payloads(TENANT, document_id)
    positions = sorted(int(payload["position"]) for payload in points.values())
    assert positions == list(range(expected))
    await drained(queue.length)
    assert await queue.dead_letters() == []


async def test_deleting_a_document_while_it_is_indexed_wins(
    make_service: Callable[..., Awaitable[RetrievalService]],
    queue: IngestQueue,
    store: VectorStore,
) -> None:
    service = await make_service(queue)
    await service.start_workers()
    result = await service.submit(TENANT, "doomed.txt", manual(60))
    document_id = result.document.id

    async def indexing() -> bool:
        return await store.count(TENANT, document_id) > 0

    await eventually(indexing)
    await service.delete_document(TENANT, document_id)

    async def drained() -> bool:
        return await queue.length() == 0

    await eventually(drained)
    assert await store.count(TENANT, document_id) == 0
    with pytest.raises(DocumentNotFoundError):
        await service.get_document(TENANT, document_id)
    assert await service.wait_for(TENANT, [document_id], timeout_s=1) == []


async def test_deleting_a_queued_document_drops_the_job(
    make_service: Callable[..., Awaitable[RetrievalService]], store: VectorStore
) -> None:
    service = await make_service(ingest_workers=1)
    queued = await service.submit(TENANT, "later.txt", manual(4))
    await service.delete_document(TENANT, queued.document.id)
    await service.start_workers()

    async def drained() -> bool:
        return await service.queue_length() == 0

    await eventually(drained)
    assert await store.count(TENANT) == 0
    assert (await service.list_documents(TENANT)).items == []


async def test_unchanged_bytes_are_a_no_op_and_new_bytes_replace(
    make_service: Callable[..., Awaitable[RetrievalService]], store: VectorStore
) -> None:
    service = await make_service()
    await service.start_workers()
    first = await service.submit(TENANT, "policy.txt", manual(12, "old policy"))
    [ready] = await service.wait_for(TENANT, [first.document.id], timeout_s=60)
    assert ready.chunk_count > 1
    again = await service.submit(TENANT, "policy.txt", manual(12, "old policy"))
    assert again.outcome is IngestOutcome.UNCHANGED
    assert again.document.status is DocumentStatus.READY
    await drained(service.queue_length)
    new_text = b"The new policy: returns are accepted for 14 days, no questions asked."
    replaced = await service.submit(TENANT, "policy.txt", new_text)
    assert replaced.outcome is IngestOutcome.REPLACED
    assert replaced.document.id == first.document.id
    assert replaced.document.status is DocumentStatus.QUEUED
    [done] = await service.wait_for(TENANT, [first.document.id], timeout_s=60)
    assert done.status is DocumentStatus.READY
    assert done.chunk_count == 1
    assert await store.count(TENANT, first.document.id) == 1
    hits = await service.search(TENANT, "old policy manual procedure", k=5)
    assert [hit.text for hit in hits] == [new_text.decode()]


async def test_extraction_errors_end_failed_with_the_reason(
    make_service: Callable[..., Awaitable[RetrievalService]], store: VectorStore
) -> None:
    service = await make_service()
    await service.start_workers()
    # Passes the cheap checks (a PDF header) but is no readable PDF.
    result = await service.submit(TENANT, "broken.pdf", b"%PDF-1.7\n garbage, not a PDF body")
    assert result.document.status is DocumentStatus.QUEUED
    [done] = await service.wait_for(TENANT, [result.document.id], timeout_s=60)
    assert done.status is DocumentStatus.FAILED
    assert "broken.pdf" in (done.error or "")
    assert done.chunk_count == 0
    assert await store.count(TENANT, done.id) == 0


async def test_cheap_checks_fail_before_anything_is_stored_or_queued(
    make_service: Callable[..., Awaitable[RetrievalService]],
) -> None:
    service = await make_service(max_document_bytes=1000)
    ok = Upload("fine.txt", b"A perfectly good file.")
    bad_uploads: list[tuple[Upload, type[Exception]]] = [
        (Upload("image.png", b"\x89PNG\r\n", "image/png"), UnsupportedDocumentError),
        (Upload("binary.txt", b"MZ\x00\x01\x02"), InvalidDocumentError),
        (Upload("fake.pdf", b"just text"), InvalidDocumentError),
        (Upload("empty.md", b"  \n"), InvalidDocumentError),
        (Upload("huge.txt", b"x" * 1001), InvalidDocumentError),
        (Upload("  ", b"text"), InvalidRequestError),
        (Upload("a" * 513 + ".txt", b"text"), InvalidRequestError),
        (Upload("ok.txt", b"text", collection="c" * 129), InvalidRequestError),
    ]
    for bad, error in bad_uploads:
        # One bad file fails the whole request: the good one before it is not stored.
        with pytest.raises(error):
            await service.submit_many(TENANT, [ok, bad])
    assert (await service.list_documents(TENANT)).items == []
    await drained(service.queue_length)


async def test_a_full_queue_refuses_clearly_and_stores_nothing(
    make_service: Callable[..., Awaitable[RetrievalService]],
) -> None:
    service = await make_service(
        InProcessIngestQueue(claim_idle_s=CLAIM_IDLE_S, max_deliveries=3, max_queued=1)
    )
    first = await service.submit(TENANT, "one.txt", b"The first document.")
    with pytest.raises(IngestQueueFullError, match="full") as refused:
        await service.submit(TENANT, "two.txt", b"The second document.")
    assert refused.value.retry_after > 0
    assert [doc.id for doc in (await service.list_documents(TENANT)).items] == [first.document.id]
    await service.start_workers()
    [done] = await service.wait_for(TENANT, [first.document.id], timeout_s=60)
    assert done.status is DocumentStatus.READY
    second = await service.submit(TENANT, "two.txt", b"The second document.")
    assert second.document.status is DocumentStatus.QUEUED


async def test_a_failing_store_is_retried_then_given_up_with_the_reason(
    make_service: Callable[..., Awaitable[RetrievalService]],
    store: VectorStore,
    ingestion_logs: list[dict[str, Any]],
) -> None:
    """Guards retries of transient failures and dead-lettering after max deliveries."""
    queue = InProcessIngestQueue(claim_idle_s=0.3, max_deliveries=2, max_queued=10)
    service = await make_service(queue, claim_idle_s=0.3)
    original = store.upsert
    failures = 0

    async def broken(points: object) -> None:
        nonlocal failures
        failures += 1
        raise RuntimeError("disk full")

    store.upsert = broken  # type: ignore[method-assign]
    try:
        await service.start_workers()
        result = await service.submit(TENANT, "doc.txt", b"Pumps need new filters yearly.")
        [done] = await service.wait_for(TENANT, [result.document.id], timeout_s=30)
    finally:
        store.upsert = original  # type: ignore[method-assign]
    assert failures == 2
    assert done.status is DocumentStatus.FAILED
    # A code and a safe sentence for the client; the exception's text only in the log.
    assert done.error_code == "indexing_failed"
    assert done.error == FAILURES["indexing_failed"]
    assert "disk full" not in (done.error or "")
    failures_logged = [e for e in ingestion_logs if e["event"] == "ingest_attempt_failed"]
    assert "disk full" in str(failures_logged)
    assert [job.document_id for job in await queue.dead_letters()] == [done.id]
    # Sending it again retries it, and this time the store works.
    retry = await service.submit(TENANT, "doc.txt", b"Pumps need new filters yearly.")
    assert retry.outcome is IngestOutcome.REPLACED
    [healed] = await service.wait_for(TENANT, [done.id], timeout_s=30)
    assert healed.status is DocumentStatus.READY
    assert healed.error is None


async def test_stored_uploads_survive_a_restart_of_the_in_process_queue(
    make_service: Callable[..., Awaitable[RetrievalService]], store: VectorStore
) -> None:
    before = await make_service(ingest_workers=0)
    uploads = [Upload(f"note-{i}.txt", f"Note {i} about the pumps.".encode()) for i in range(3)]
    results = await before.submit_many(TENANT, uploads)
    # The process dies: its in-process queue is gone, the SQL rows and uploads are not.
    after = await make_service()
    await after.start_workers()
    ids = [r.document.id for r in results]
    done = await after.wait_for(TENANT, ids, timeout_s=60)
    assert [doc.status for doc in done] == [DocumentStatus.READY] * 3
    assert await store.count(TENANT) == 3


def blank_pdf(pages: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def uploads_stored(sessions: async_sessionmaker) -> dict[str, int]:
    """Stored uploads and their attempts, by document id."""
    async with sessions() as session:
        rows = await session.execute(
            select(DocumentUploadRow.document_id, DocumentUploadRow.attempts)
        )
        return dict(rows.tuples().all())


@pytest.mark.parametrize("store", ["edge"], indirect=True)
async def test_extraction_caps_fail_the_document_with_their_code(
    make_service: Callable[..., Awaitable[RetrievalService]], store: VectorStore
) -> None:
    """Guards the caps of extraction (pages, text, wall time), which runs in a child
    process: each breach ends the document failed with its own code and a safe reason."""
    limits = ExtractLimits(max_pages=2, max_chars=5000, timeout_s=0.5)
    service = await make_service(extract_limits=limits)
    await service.start_workers()
    slow_html = b"<html><body>" + b"<div><p>word <b>word</b></p>" * 150_000 + b"</body></html>"
    uploads = [
        Upload("three-pages.pdf", blank_pdf(3)),
        Upload("long.txt", b"words " * 2000),
        Upload("slow.html", slow_html),
        Upload("fine.md", b"# Fine\n\nA short note."),
    ]
    results = await service.submit_many(TENANT, uploads)
    done = await service.wait_for(TENANT, [r.document.id for r in results], timeout_s=60)
    assert [(doc.status, doc.error_code) for doc in done] == [
        (DocumentStatus.FAILED, "too_many_pages"),
        (DocumentStatus.FAILED, "too_much_text"),
        (DocumentStatus.FAILED, "extraction_timeout"),
        (DocumentStatus.READY, None),
    ]
    assert "the limit is 2" in (done[0].error or "")
    assert done[2].error == f"'slow.html': {FAILURES['extraction_timeout']}"
    assert await store.count(TENANT) == 1


async def died_mid_document(
    make_service: Callable[..., Awaitable[RetrievalService]], store: VectorStore
) -> str:
    """A document whose one attempt (``max_attempts=1``) stopped mid-document, as a
    process dying would leave it; its id."""
    before = await make_service(InProcessIngestQueue(claim_idle_s=CLAIM_IDLE_S), max_attempts=1)
    await before.start_workers()
    document_id: str = (await before.submit(TENANT, "big.txt", manual(60))).document.id

    async def partly_indexed() -> bool:
        return await store.count(TENANT, document_id) >= EMBED_ROUND

    await eventually(partly_indexed)
    await before.stop_workers()  # the process dies mid-document
    return document_id


@pytest.mark.parametrize("store", ["edge"], indirect=True)
async def test_attempts_survive_a_restart_and_end_the_document_past_the_max(
    make_service: Callable[..., Awaitable[RetrievalService]],
    sessions: async_sessionmaker,
    store: VectorStore,
) -> None:
    """Guards against a crash loop with the in-process queue: the attempt of a process
    that died mid-document is counted in SQL; the restarted process re-queues the
    upload left ``indexing`` at once, and past the max fails it, dropping its points."""
    document_id = await died_mid_document(make_service, store)
    assert await uploads_stored(sessions) == {document_id: 1}

    after = await make_service(InProcessIngestQueue(claim_idle_s=CLAIM_IDLE_S), max_attempts=1)
    await after.start_workers()
    [done] = await after.wait_for(TENANT, [document_id], timeout_s=30)
    assert (done.status, done.error_code) == (DocumentStatus.FAILED, "too_many_attempts")
    assert await store.count(TENANT, document_id) == 0
    assert await uploads_stored(sessions) == {}


@pytest.mark.parametrize("store", ["edge"], indirect=True)
async def test_a_document_past_the_max_is_failed_only_once_its_points_are_gone(
    make_service: Callable[..., Awaitable[RetrievalService]],
    sessions: async_sessionmaker,
    store: VectorStore,
) -> None:
    """Guards against a failed document whose points stay searchable: it was failed
    first and its points dropped after, quietly, so a client saw ``failed`` while they
    were still there (the test above raced that window now and then), and a failed
    drop left them for good. Now the drop comes first and a failed one is retried."""
    document_id = await died_mid_document(make_service, store)
    written = await store.count(TENANT, document_id)
    original = store.delete_document
    drops: list[int] = []

    async def down_once(tenant_id: str, doc_id: str, keep_ids: Any = ()) -> None:
        drops.append(await store.count(tenant_id, doc_id))
        if len(drops) == 1:
            raise VectorStoreUnavailableError("the vector store is down")
        await original(tenant_id, doc_id, keep_ids)

    store.delete_document = down_once  # type: ignore[method-assign,assignment]
    try:
        after = await make_service(InProcessIngestQueue(claim_idle_s=CLAIM_IDLE_S), max_attempts=1)
        await after.start_workers()
        [done] = await after.wait_for(TENANT, [document_id], timeout_s=30)
    finally:
        store.delete_document = original  # type: ignore[method-assign]
    # Pending while the first drop failed (its points kept), failed once they were gone.
    assert drops == [written, written]
    assert (done.status, done.error_code) == (DocumentStatus.FAILED, "too_many_attempts")
    assert await store.count(TENANT, document_id) == 0
    assert await uploads_stored(sessions) == {}


@pytest.mark.parametrize("store", ["edge"], indirect=True)
async def test_a_job_queued_twice_is_indexed_once(
    make_service: Callable[..., Awaitable[RetrievalService]],
    make_queue: MakeQueue,
    store: VectorStore,
    embedder: SentenceTransformerEmbedder,
    ingestion_logs: list[dict[str, Any]],
) -> None:
    """Guards against double indexing when two processes queue the same upload (each
    re-queues what it finds missing on start): the SQL attempt counter lets one worker
    start it; the other's entry waits and is dropped once the document is done."""
    queue = make_queue(claim_idle_s=CLAIM_IDLE_S, max_deliveries=5, max_queued=100)
    submitter = await make_service(queue, ingest_workers=0)
    data = manual(60)
    result = await submitter.submit(TENANT, "big.txt", data)
    document_id = result.document.id
    await queue.put(IngestJob(TENANT, document_id, result.document.content_hash))
    workers = await make_service(queue, ingest_workers=2)
    await workers.start_workers()
    [done] = await workers.wait_for(TENANT, [document_id], timeout_s=120)
    await drained(queue.length)
    assert done.status is DocumentStatus.READY
    assert done.chunk_count == expected_chunks(embedder, data)
    assert await store.count(TENANT, document_id) == done.chunk_count
    events = [e["event"] for e in ingestion_logs]
    assert "ingest_job_busy" in events  # the second entry met the first's attempt
    assert "ingest_attempt_failed" not in events


@pytest.mark.parametrize("make_queue", ["redis"], indirect=True)
@pytest.mark.parametrize("store", ["edge"], indirect=True)
async def test_uploads_missing_from_the_redis_stream_are_requeued_on_start(
    make_service: Callable[..., Awaitable[RetrievalService]],
    make_queue: MakeQueue,
    store: VectorStore,
) -> None:
    """Guards uploads stored in SQL but lost from Redis (the API process died between
    storing and queueing, or Redis lost its data): a starting process queues them
    again, once each, and leaves the entries Redis still holds alone."""
    queue = make_queue(claim_idle_s=CLAIM_IDLE_S, max_deliveries=3, max_queued=100)
    assert isinstance(queue, RedisStreamsIngestQueue)
    api = await make_service(queue, ingest_workers=0)
    uploads = [Upload(f"note-{i}.txt", f"Note {i} about the pumps.".encode()) for i in range(3)]
    ids = [r.document.id for r in await api.submit_many(TENANT, uploads)]
    lost = await queue._redis.xrange(queue._stream, count=1)
    await queue._redis.xdel(queue._stream, lost[0][0])
    assert await queue.length() == 2

    restarted = await make_service(queue, ingest_workers=0)  # a process starting
    assert await restarted.queue_length() == 3
    again = await make_service(queue)  # another one: nothing is missing now
    assert await again.queue_length() == 3
    await again.start_workers()
    done = await again.wait_for(TENANT, ids, timeout_s=60)
    assert [doc.status for doc in done] == [DocumentStatus.READY] * 3
    await drained(queue.length)
