"""RetrievalService end to end with the real embedder, Qdrant local mode and SQLite."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from kernel.errors import InvalidCursorError
from retrieval.errors import (
    DocumentNotFoundError,
    InvalidRequestError,
    UnsupportedDocumentError,
)
from retrieval.types import DocumentStatus, IngestOutcome

if TYPE_CHECKING:
    from retrieval.service import RetrievalService
    from retrieval.vector_store import VectorStore

pytestmark = pytest.mark.model

TENANT_A = "11111111-1111-1111-1111-111111111111"
TENANT_B = "22222222-2222-2222-2222-222222222222"

REFUNDS = b"""# Refund policy

Customers can return any unused product within 30 days of delivery for a full
refund. Refunds are paid back to the original payment method within five business
days after the warehouse receives the parcel.

## Exceptions

Gift cards, personalised items and perishable groceries cannot be refunded.
"""

SHIPPING = b"""<html><head><title>Shipping</title></head><body>
<h1>Shipping and delivery</h1>
<p>Orders placed before 2 pm ship the same day. Standard delivery takes three to
five working days; express delivery arrives the next day.</p>
<p>We ship to every country in the European Union. Shipping is free above 50 euros.</p>
</body></html>"""

PASSWORDS = b"""Resetting your password

Open the sign-in page and click "Forgot password". Enter the e-mail address of your
account and we send you a link. The link expires after one hour. Choose a new
password of at least twelve characters.
"""


async def _ingest_corpus(service: RetrievalService, tenant: str = TENANT_A) -> dict[str, str]:
    ids = {}
    for name, data, content_type in (
        ("refunds.md", REFUNDS, "text/markdown"),
        ("shipping.html", SHIPPING, "text/html"),
        ("passwords.txt", PASSWORDS, None),
    ):
        result = await service.ingest(tenant, name, data, content_type)
        assert result.outcome is IngestOutcome.CREATED
        assert result.document.status is DocumentStatus.READY
        assert result.document.chunk_count >= 1
        ids[name] = result.document.id
    return ids


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("How long do I have to send an item back for my money?", "refunds.md"),
        ("When will my parcel arrive?", "shipping.html"),
        ("I forgot my login credentials", "passwords.txt"),
    ],
)
async def test_search_ranks_the_right_document_first(
    service: RetrievalService, query: str, expected: str
) -> None:
    await _ingest_corpus(service)
    hits = await service.search(TENANT_A, query, k=3)
    assert hits
    assert hits[0].document_name == expected
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= score <= 1.0 for score in scores)


async def test_every_point_carries_tenant_collection_and_document(
    service: RetrievalService, store: VectorStore
) -> None:
    ids = await _ingest_corpus(service)
    points = await store.payloads(TENANT_A)
    assert len(points) == await store.count(TENANT_A)
    for payload in points.values():
        assert payload["tenant_id"] == TENANT_A
        assert payload["collection"] == "default"
        assert payload["document_id"] in ids.values()
        assert payload["text"]
        assert isinstance(payload["position"], int)
    total = sum([(await service.get_document(TENANT_A, i)).chunk_count for i in ids.values()])
    assert await store.count(TENANT_A) == total == len(points)


async def test_reingesting_unchanged_is_a_no_op(
    service: RetrievalService, store: VectorStore
) -> None:
    first = await service.ingest(TENANT_A, "refunds.md", REFUNDS)
    before = await store.count(TENANT_A, first.document.id)
    again = await service.ingest(TENANT_A, "refunds.md", REFUNDS)
    assert again.outcome is IngestOutcome.UNCHANGED
    assert again.document.id == first.document.id
    assert again.document.updated_at == first.document.updated_at
    assert await store.count(TENANT_A, first.document.id) == before == first.document.chunk_count


async def test_reingesting_changed_content_replaces_chunks(
    service: RetrievalService, store: VectorStore
) -> None:
    long_text = "\n\n".join(
        f"Paragraph {i}: the old policy allowed returns for {i} weeks." for i in range(60)
    ).encode()
    first = await service.ingest(TENANT_A, "policy.txt", long_text)
    assert first.document.chunk_count > 1
    new_text = b"The new policy: returns are accepted for 14 days, no questions asked."
    second = await service.ingest(TENANT_A, "policy.txt", new_text)
    assert second.outcome is IngestOutcome.REPLACED
    assert second.document.id == first.document.id
    assert second.document.chunk_count == 1
    assert second.document.content_hash != first.document.content_hash
    assert await store.count(TENANT_A, first.document.id) == 1
    hits = await service.search(TENANT_A, "old policy weeks returns", k=10)
    assert all("old policy" not in hit.text for hit in hits)
    assert hits[0].text == new_text.decode()


async def test_delete_removes_chunks_and_row(service: RetrievalService, store: VectorStore) -> None:
    ids = await _ingest_corpus(service)
    refunds = ids["refunds.md"]
    await service.delete_document(TENANT_A, refunds)
    assert await store.count(TENANT_A, refunds) == 0
    with pytest.raises(DocumentNotFoundError):
        await service.get_document(TENANT_A, refunds)
    hits = await service.search(TENANT_A, "refund within 30 days", k=10)
    assert all(hit.document_id != refunds for hit in hits)
    with pytest.raises(DocumentNotFoundError):
        await service.delete_document(TENANT_A, refunds)


async def test_tenants_are_isolated(service: RetrievalService, store: VectorStore) -> None:
    ids = await _ingest_corpus(service, TENANT_A)
    assert await service.search(TENANT_B, "refund", k=5) == []
    assert (await service.list_documents(TENANT_B)).items == []
    for document_id in ids.values():
        with pytest.raises(DocumentNotFoundError):
            await service.get_document(TENANT_B, document_id)
        with pytest.raises(DocumentNotFoundError):
            await service.delete_document(TENANT_B, document_id)
    # B's failed delete must not have touched A's chunks.
    assert await store.count(TENANT_A) == sum(
        [(await service.get_document(TENANT_A, i)).chunk_count for i in ids.values()]
    )
    # The same name in another tenant is another document.
    other = await service.ingest(TENANT_B, "refunds.md", b"Tenant B refunds: never.")
    assert other.outcome is IngestOutcome.CREATED
    assert other.document.id != ids["refunds.md"]
    hits = await service.search(TENANT_B, "refund", k=10)
    assert {hit.document_id for hit in hits} == {other.document.id}
    hits = await service.search(TENANT_A, "refund", k=10)
    assert other.document.id not in {hit.document_id for hit in hits}


async def test_collection_filter(service: RetrievalService) -> None:
    hr = await service.ingest(
        TENANT_A, "leave.txt", b"Employees get 25 days of paid holiday.", collection="hr"
    )
    it = await service.ingest(
        TENANT_A, "vpn.txt", b"Connect to the VPN before opening the intranet.", collection="it"
    )
    hits = await service.search(TENANT_A, "how many holidays do I get", k=5, collection="it")
    assert {hit.document_id for hit in hits} == {it.document.id}
    assert all(hit.collection == "it" for hit in hits)
    hits = await service.search(TENANT_A, "how many holidays do I get", k=5)
    assert hits[0].document_id == hr.document.id
    page = await service.list_documents(TENANT_A, collection="hr")
    assert [doc.id for doc in page.items] == [hr.document.id]
    # Same name in two collections: two documents.
    again = await service.ingest(TENANT_A, "leave.txt", b"IT staff leave rules.", collection="it")
    assert again.outcome is IngestOutcome.CREATED


async def test_score_floor_drops_weak_hits(service: RetrievalService) -> None:
    await _ingest_corpus(service)
    hits = await service.search(TENANT_A, "password reset link", k=3, score_floor=0.3)
    assert hits
    assert all(hit.score >= 0.3 for hit in hits)
    assert len(hits) < 3


async def test_pagination_is_newest_first_and_stable(service: RetrievalService) -> None:
    created = []
    for i in range(7):
        result = await service.ingest(TENANT_A, f"note-{i}.txt", f"Note number {i}.".encode())
        created.append(result.document.id)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await service.list_documents(TENANT_A, limit=3, cursor=cursor)
        pages += 1
        seen.extend(doc.id for doc in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert seen == list(reversed(created))
    with pytest.raises(InvalidCursorError):
        await service.list_documents(TENANT_A, cursor="not-a-cursor")
    with pytest.raises(InvalidRequestError):
        await service.list_documents(TENANT_A, limit=0)


async def test_bad_input_stores_nothing(service: RetrievalService) -> None:
    with pytest.raises(UnsupportedDocumentError):
        await service.ingest(TENANT_A, "image.png", b"\x89PNG", "image/png")
    with pytest.raises(InvalidRequestError):
        await service.ingest(TENANT_A, "  ", b"text")
    with pytest.raises(InvalidRequestError):
        await service.ingest(TENANT_A, "a" * 513 + ".txt", b"text")
    with pytest.raises(InvalidRequestError):
        await service.ingest(TENANT_A, "ok.txt", b"text", collection="c" * 129)
    with pytest.raises(InvalidRequestError):
        await service.search(TENANT_A, "   ")
    assert (await service.list_documents(TENANT_A)).items == []


async def test_failed_store_marks_the_document_failed(
    service: RetrievalService, store: VectorStore
) -> None:
    """Guards that a vector-store failure is recorded on the row, and a retry heals it."""
    original = store.upsert

    async def broken(points: object) -> None:
        raise RuntimeError("disk full")

    store.upsert = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await service.ingest(TENANT_A, "refunds.md", REFUNDS)
    page = await service.list_documents(TENANT_A)
    assert page.items[0].status is DocumentStatus.FAILED
    # A code and a safe sentence; the exception's text is only logged.
    assert page.items[0].error_code == "indexing_failed"
    assert "disk full" not in (page.items[0].error or "")
    store.upsert = original  # type: ignore[method-assign]
    retry = await service.ingest(TENANT_A, "refunds.md", REFUNDS)
    assert retry.outcome is IngestOutcome.REPLACED
    assert retry.document.status is DocumentStatus.READY
    assert retry.document.error is None
    assert retry.document.error_code is None


async def test_point_ids_are_deterministic(service: RetrievalService, store: VectorStore) -> None:
    result = await service.ingest(TENANT_A, "passwords.txt", PASSWORDS)
    before = await store.payloads(TENANT_A, result.document.id)
    # Re-upserting the same chunks (as a retried ingest would) adds nothing.
    await service.ingest(TENANT_A, "passwords.txt", PASSWORDS + b"\n")
    after = await store.payloads(TENANT_A, result.document.id)
    assert before.keys() == after.keys()


async def test_ingest_throughput(service: RetrievalService, store: VectorStore) -> None:
    """Prints chunks/s for ~100 chunks of 200 tokens (informative, loosely bounded)."""
    paragraphs = [
        f"Section {i}. The maintenance manual describes procedure {i} for unit {i % 13}: "
        "inspect the valve, record the pressure, replace the filter if it is clogged, and "
        "sign the log book before restarting the pump. " * 2
        for i in range(200)
    ]
    data = "\n\n".join(paragraphs).encode()
    started = time.perf_counter()
    result = await service.ingest(TENANT_A, "manual.txt", data)
    elapsed = time.perf_counter() - started
    chunks = result.document.chunk_count
    print(f"\ningested {chunks} chunks in {elapsed:.2f}s: {chunks / elapsed:.1f} chunks/s")
    assert chunks >= 50
    assert await store.count(TENANT_A, result.document.id) == chunks
