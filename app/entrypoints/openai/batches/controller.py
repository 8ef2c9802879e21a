"""The OpenAI Files and Batches routes: thin handlers over ``BatchService``.

Every route needs the ``chat`` scope (a batch runs chat turns and embeddings as
its creator); another tenant's file or batch is a 404.
"""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, delete, get, post
from litestar.datastructures import UploadFile
from litestar.params import Parameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from app.auth.guards import chat_guard
from app.auth.ownership import owner_filter
from app.auth.principal import Principal
from app.batches.service import BatchService
from app.core.errors import ApiError, BadRequestError, PayloadTooLargeError
from app.entrypoints.openai.batches.protocol import (
    BatchCreate,
    BatchList,
    BatchObject,
    FileDeleted,
    FileList,
    FileObject,
    UploadOperation,
)

_UPLOAD_SLACK = 64 * 1024
"""Bytes a multipart upload may carry beyond the file (boundaries, the purpose field)."""


class LengthRequiredError(ApiError):
    status_code, code = 411, "length_required"


class FilesController(Controller):
    path = "/v1/files"
    tags = ["openai"]
    guards = [chat_guard]

    # NOTE: the app-wide body limit is for JSON requests; this route checks the
    # declared length against RAGSERVE_BATCH_MAX_FILE_BYTES before reading.
    @post("/", status_code=HTTP_200_OK, request_max_body_size=None, operation_class=UploadOperation)
    async def upload(
        self, request: Request[Any, Any, Any], batches: BatchService, principal: Principal
    ) -> FileObject:
        """Upload a JSONL batch input (multipart: ``file`` and ``purpose=batch``)."""
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            raise LengthRequiredError("Send the upload with a Content-Length header.")
        limit = batches.max_file_bytes
        if int(length) > limit + _UPLOAD_SLACK:
            raise PayloadTooLargeError(
                f"The upload is {length} bytes; files may be at most {limit}.", param="file"
            )
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise BadRequestError("Send the file as multipart/form-data.", param="file")
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequestError(
                "No file in the upload; send it in the field 'file'.", param="file"
            )
        purpose = form.get("purpose")
        if not isinstance(purpose, str):
            raise BadRequestError("The field 'purpose' is required.", param="purpose")
        row = await batches.upload(
            principal,
            filename=upload.filename or "input.jsonl",
            purpose=purpose,
            content=await upload.read(),
        )
        return FileObject.of(row)

    @get("/")
    async def list_files(
        self,
        batches: BatchService,
        principal: Principal,
        purpose: str | None = None,
        limit: int = Parameter(default=100, ge=1, le=10_000),
        after: str | None = Parameter(default=None, max_length=64),
        order: Literal["asc", "desc"] = "desc",
    ) -> FileList:
        """The tenant's files, newest first unless ``order=asc``."""
        page = await batches.store.files(
            principal.tenant_id,
            owner_filter(principal),
            purpose=purpose,
            limit=limit,
            after=after,
            newest=order == "desc",
        )
        return FileList.of([FileObject.of(row) for row in page.items], page.has_more)

    @get("/{file_id:str}")
    async def retrieve(
        self, batches: BatchService, principal: Principal, file_id: str
    ) -> FileObject:
        """One file's record."""
        return FileObject.of(
            await batches.store.file(principal.tenant_id, file_id, owner=owner_filter(principal))
        )

    @get("/{file_id:str}/content", media_type="application/jsonl")
    async def content(self, batches: BatchService, principal: Principal, file_id: str) -> Stream:
        """The file's bytes (a batch's output or errors streamed from its results)."""
        return Stream(await batches.content(principal, file_id), media_type="application/jsonl")

    @delete("/{file_id:str}", status_code=HTTP_200_OK)
    async def remove(
        self, batches: BatchService, principal: Principal, file_id: str
    ) -> FileDeleted:
        """Delete a file (409 while an unfinished batch reads it)."""
        await batches.store.delete_file(principal.tenant_id, owner_filter(principal), file_id)
        return FileDeleted(id=file_id)


class BatchesController(Controller):
    path = "/v1/batches"
    tags = ["openai"]
    guards = [chat_guard]

    @post("/", status_code=HTTP_200_OK)
    async def create(
        self, batches: BatchService, principal: Principal, data: BatchCreate
    ) -> BatchObject:
        """Queue a batch of the requests in an uploaded ``batch`` file."""
        row = await batches.create(
            principal,
            input_file_id=data.input_file_id,
            endpoint=data.endpoint,
            window=data.completion_window,
            metadata=data.metadata,
        )
        return BatchObject.of(row)

    @get("/")
    async def list_batches(
        self,
        batches: BatchService,
        principal: Principal,
        limit: int = Parameter(default=20, ge=1, le=100),
        after: str | None = Parameter(default=None, max_length=64),
    ) -> BatchList:
        """The tenant's batches, newest first."""
        page = await batches.store.batches(
            principal.tenant_id, owner_filter(principal), limit=limit, after=after
        )
        return BatchList.of([BatchObject.of(row) for row in page.items], page.has_more)

    @get("/{batch_id:str}")
    async def retrieve(
        self, batches: BatchService, principal: Principal, batch_id: str
    ) -> BatchObject:
        """One batch, with its counts and files."""
        return BatchObject.of(
            await batches.store.batch(principal.tenant_id, batch_id, owner_filter(principal))
        )

    @post("/{batch_id:str}/cancel", status_code=HTTP_200_OK)
    async def cancel(
        self, batches: BatchService, principal: Principal, batch_id: str
    ) -> BatchObject:
        """Stop a batch: ``cancelling`` until what was answered is written, then ``cancelled``."""
        return BatchObject.of(await batches.cancel(principal, batch_id))
