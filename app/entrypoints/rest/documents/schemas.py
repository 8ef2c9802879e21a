"""Wire schemas of documents (search's are in ``app.entrypoints.rest.search.schemas``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
)
from litestar.openapi.spec import Schema as OpenAPISchema
from pydantic import Field

from app.entrypoints.schemas import LABEL_PATTERN, Schema

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
    """Why the document failed, in words safe to show (``None`` unless ``failed``, or
    ``queued`` again after a failed attempt)."""
    error_code: str | None
    """The same as a code: ``invalid_document``, ``unsupported_type``, ``too_many_pages``,
    ``too_much_text``, ``extraction_timeout``, ``extraction_out_of_memory``,
    ``extraction_crashed``, ``too_many_attempts``, ``indexing_failed`` or
    ``index_retrying``."""
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
            error_code=info.error_code,
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

    name: str = Field(min_length=1, max_length=512, pattern=LABEL_PATTERN)
    content: str = Field(min_length=1)
    content_type: str = Field(default="text/plain", max_length=128)
    collection: str = Field(default="default", min_length=1, max_length=128, pattern=LABEL_PATTERN)


class DocumentPageOut(Schema):
    data: list[DocumentOut]
    next_cursor: str | None


@dataclass
class UploadOperation(Operation):
    """``POST /v1/documents`` as documented: its handler reads the body itself
    (multipart files or one JSON document), so Litestar cannot see it."""

    def __post_init__(self) -> None:
        # NOTE: an empty ``collection`` field is the default collection, as if absent.
        collection = OpenAPISchema(
            type=OpenAPIType.STRING, max_length=128, pattern=f"^$|{LABEL_PATTERN}"
        )
        files = OpenAPISchema(
            type=OpenAPIType.OBJECT,
            required=["file"],
            properties={
                "file": OpenAPISchema(
                    type=OpenAPIType.ARRAY,
                    items=OpenAPISchema(
                        type=OpenAPIType.STRING, content_media_type="application/octet-stream"
                    ),
                    min_items=1,
                    description="A part per file, up to RAGSERVE_RETRIEVAL_MAX_UPLOAD_FILES.",
                ),
                "collection": collection,
            },
        )
        if self.responses is not None and "202" in self.responses:
            # ``?wait=true`` answers 201 (indexed) or 200 (nothing changed) when done.
            self.responses.setdefault("201", self.responses["202"])
            self.responses.setdefault("200", self.responses["202"])
        self.request_body = RequestBody(
            required=True,
            content={
                "multipart/form-data": OpenAPIMediaType(schema=files),
                "application/json": OpenAPIMediaType(
                    schema=TextDocumentIn.model_json_schema()  # type: ignore[arg-type]
                ),
            },
        )
