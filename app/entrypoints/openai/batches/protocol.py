"""The wire shapes of OpenAI's Files and Batches APIs, as ragserve serves them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody
from litestar.openapi.spec import Schema as OpenAPISchema
from pydantic import BaseModel, Field, StrictStr, StringConstraints

from app.batches.service import (
    MAX_METADATA,
    MAX_METADATA_KEY,
    MAX_METADATA_VALUE,
    WINDOW_PATTERN,
)
from app.entrypoints.openai.protocol import WireModel

if TYPE_CHECKING:
    from datetime import datetime

    from app.batches.tables import BatchFileRow, BatchRow

__all__ = [
    "BatchCreate",
    "BatchList",
    "BatchObject",
    "FileDeleted",
    "FileList",
    "FileObject",
]


def _unix(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp())


class FileObject(BaseModel):
    """A stored file (OpenAI's ``file`` object)."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"
    status_details: str | None = None

    @classmethod
    def of(cls, row: BatchFileRow) -> FileObject:
        return cls(
            id=row.id,
            bytes=row.size,
            created_at=int(row.created_at.timestamp()),
            expires_at=_unix(row.expires_at),
            filename=row.filename,
            purpose=row.purpose,
        )


class Listing(BaseModel):
    """A page of a list, as OpenAI's list routes answer it."""

    object: Literal["list"] = "list"
    data: list[Any]
    first_id: str | None
    last_id: str | None
    has_more: bool

    @classmethod
    def of(cls, data: list[Any], has_more: bool) -> Self:
        return cls(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=has_more,
        )


class FileList(Listing):
    data: list[FileObject]


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


MetadataKey = Annotated[StrictStr, StringConstraints(max_length=MAX_METADATA_KEY)]
MetadataValue = Annotated[StrictStr, StringConstraints(max_length=MAX_METADATA_VALUE)]


class BatchCreate(WireModel):
    """``POST /v1/batches``."""

    input_file_id: StrictStr = Field(min_length=1, max_length=64)
    endpoint: Literal["/v1/chat/completions", "/v1/embeddings"]
    completion_window: StrictStr = Field(pattern=WINDOW_PATTERN)
    metadata: dict[MetadataKey, MetadataValue] | None = Field(default=None, max_length=MAX_METADATA)


@dataclass
class UploadOperation(Operation):
    """``POST /v1/files`` as documented: its handler reads the multipart body itself
    (to check the declared length first), so Litestar cannot see it."""

    def __post_init__(self) -> None:
        form = OpenAPISchema(
            type=OpenAPIType.OBJECT,
            required=["file", "purpose"],
            properties={
                "file": OpenAPISchema(
                    type=OpenAPIType.STRING,
                    content_media_type="application/octet-stream",
                    description="JSONL, one request per line (docs/batches.md).",
                ),
                "purpose": OpenAPISchema(type=OpenAPIType.STRING, enum=["batch"]),
            },
        )
        self.request_body = RequestBody(
            required=True, content={"multipart/form-data": OpenAPIMediaType(schema=form)}
        )


class RequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]


class BatchObject(BaseModel):
    """A batch (OpenAI's ``batch`` object)."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None
    input_file_id: str
    completion_window: str
    status: str
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: RequestCounts
    metadata: dict[str, str] | None
    usage: BatchUsage

    @classmethod
    def of(cls, row: BatchRow) -> BatchObject:
        return cls(
            id=row.id,
            endpoint=row.endpoint,
            errors=BatchErrors(data=row.errors) if row.errors else None,
            input_file_id=row.input_file_id,
            completion_window=row.completion_window,
            status=row.status,
            output_file_id=row.output_file_id,
            error_file_id=row.error_file_id,
            created_at=int(row.created_at.timestamp()),
            in_progress_at=_unix(row.in_progress_at),
            expires_at=_unix(row.expires_at),
            finalizing_at=_unix(row.finalizing_at),
            completed_at=_unix(row.completed_at),
            failed_at=_unix(row.failed_at),
            expired_at=_unix(row.expired_at),
            cancelling_at=_unix(row.cancelling_at),
            cancelled_at=_unix(row.cancelled_at),
            request_counts=RequestCounts(
                total=row.total, completed=row.completed, failed=row.failed
            ),
            metadata=row.meta,
            usage=BatchUsage(
                input_tokens=row.prompt_tokens,
                output_tokens=row.completion_tokens,
                total_tokens=row.prompt_tokens + row.completion_tokens,
            ),
        )


class BatchList(Listing):
    data: list[BatchObject]
