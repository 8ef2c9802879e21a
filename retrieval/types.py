"""Value types returned by the retrieval service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class DocumentStatus(StrEnum):
    QUEUED = "queued"
    INDEXING = "indexing"
    READY = "ready"
    FAILED = "failed"


class IngestOutcome(StrEnum):
    """What an ingest call did with the document."""

    CREATED = "created"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    id: str
    tenant_id: str
    collection: str
    name: str
    content_type: str
    content_hash: str
    size_bytes: int
    chunk_count: int
    status: DocumentStatus
    error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class IngestResult:
    document: DocumentInfo
    outcome: IngestOutcome


@dataclass(frozen=True, slots=True)
class ChunkHit:
    """One retrieved chunk, best first in a result list."""

    chunk_id: str
    document_id: str
    document_name: str
    collection: str
    position: int
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class DocumentPage:
    items: list[DocumentInfo]
    next_cursor: str | None
