"""How ingestion refusals reach a client: the status and code of each, from one mapping."""

from __future__ import annotations

import pytest

from app.core.errors import classify
from retrieval.errors import (
    FAILURES,
    DocumentTooLargeError,
    InvalidDocumentError,
    QuotaExceededError,
)
from retrieval.sniff import sniff_upload


def test_a_file_too_large_is_a_413_and_a_quota_past_its_limit_a_409() -> None:
    """Guards the chosen statuses: one oversized file is 413 ``document_too_large``;
    an exhausted quota is 409 ``quota_exceeded`` (waiting does not help, unlike 429)."""
    with pytest.raises(DocumentTooLargeError) as refused:
        sniff_upload(b"x" * 11, "big.txt", None, max_bytes=10)
    too_large = classify(refused.value)
    assert (too_large.status_code, too_large.code) == (413, "document_too_large")
    assert "the limit is 10" in too_large.message
    quota = classify(QuotaExceededError("past the quota"))
    assert (quota.status_code, quota.code) == (409, "quota_exceeded")
    other = classify(InvalidDocumentError("'a.pdf' is not a readable PDF"))
    assert (other.status_code, other.code) == (422, "invalid_request")


def test_every_failure_code_has_a_sentence() -> None:
    assert all(message.endswith(".") for message in FAILURES.values())
    assert InvalidDocumentError("x").code in FAILURES
    assert DocumentTooLargeError("x").code in FAILURES
