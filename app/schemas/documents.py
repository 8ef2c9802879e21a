"""Wire schemas of documents and search."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from app.schemas.base import Schema
from retrieval import ChunkHit, DocumentInfo, IngestResult


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

    @classmethod
    def of(cls, result: IngestResult) -> IngestedOut:
        return cls(document=DocumentOut.of(result.document), outcome=str(result.outcome))


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


class SearchRequest(Schema):
    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(default=5, ge=1, le=50)
    collection: str | None = Field(default=None, min_length=1, max_length=128)
    score_floor: float | None = Field(default=None, ge=-1.0, le=1.0)


class ChunkOut(Schema):
    chunk_id: str
    document_id: str
    document_name: str
    collection: str
    position: int
    text: str
    score: float

    @classmethod
    def of(cls, hit: ChunkHit) -> ChunkOut:
        return cls(
            chunk_id=hit.chunk_id,
            document_id=hit.document_id,
            document_name=hit.document_name,
            collection=hit.collection,
            position=hit.position,
            text=hit.text,
            score=hit.score,
        )


class SearchResponse(Schema):
    results: list[ChunkOut]
