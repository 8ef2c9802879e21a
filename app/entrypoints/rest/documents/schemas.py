"""Wire schemas of documents (search's are in ``app.entrypoints.rest.search.schemas``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import Field

from app.entrypoints.schemas import Schema

if TYPE_CHECKING:
    from retrieval import DocumentInfo, IngestResult


class DocumentOut(Schema):
    id: str
    name: str
    collection: str
    content_type: str
    content_hash: str
    size_bytes: int
    chunk_count: int
    status: str
    error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, info: DocumentInfo) -> DocumentOut:
        return cls(
            id=info.id,
            name=info.name,
            collection=info.collection,
            content_type=info.content_type,
            content_hash=info.content_hash,
            size_bytes=info.size_bytes,
            chunk_count=info.chunk_count,
            status=str(info.status),
            error=info.error,
            created_at=info.created_at,
            updated_at=info.updated_at,
        )


class IngestedOut(Schema):
    document: DocumentOut
    outcome: str
    """``created``, ``replaced`` (queued to be indexed) or ``unchanged`` (nothing to do)."""

    @classmethod
    def of(cls, result: IngestResult, document: DocumentInfo | None = None) -> IngestedOut:
        """``document``: the document as it is now, when newer than the result's."""
        return cls(
            document=DocumentOut.of(document or result.document), outcome=str(result.outcome)
        )


class IngestResponse(Schema):
    documents: list[IngestedOut]


class TextDocumentIn(Schema):
    """A document sent as JSON rather than as a multipart file."""

    name: str = Field(min_length=1, max_length=512)
    content: str = Field(min_length=1)
    content_type: str = Field(default="text/plain", max_length=128)
    collection: str = Field(default="default", min_length=1, max_length=128)


class DocumentPageOut(Schema):
    data: list[DocumentOut]
    next_cursor: str | None
