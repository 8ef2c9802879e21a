"""REST: ingest, list, read and delete documents (search is ``rest/search/``).

Reading takes the ``documents:read`` or ``chat`` scope; uploading and deleting the
``documents:write`` scope or the admin role.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.params import Parameter
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_201_CREATED,
    HTTP_202_ACCEPTED,
    HTTP_204_NO_CONTENT,
)
from pydantic import ValidationError

from app.auth.guards import documents_read_guard, documents_write_guard
from app.auth.principal import Principal
from app.core.errors import BadRequestError, UnprocessableError
from app.core.settings import Settings
from app.entrypoints.rest.documents.schemas import (
    DocumentOut,
    DocumentPageOut,
    IngestedOut,
    IngestResponse,
    TextDocumentIn,
    UploadOperation,
)
from app.entrypoints.schemas import LABEL_PATTERN
from app.idempotency import IdempotencyStore, idempotency_key, request_hash
from retrieval import DocumentStatus, IngestOutcome, RetrievalService, Upload

_FINAL = (DocumentStatus.READY, DocumentStatus.FAILED)
_INGEST_ROUTE = "documents"


class DocumentController(Controller):
    path = "/v1/documents"
    tags = ["documents"]

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        guards=[documents_write_guard],
        operation_class=UploadOperation,
    )
    async def ingest(
        self,
        request: Request[Any, Any, Any],
        retrieval: RetrievalService,
        settings: Settings,
        principal: Principal,
        idempotency: IdempotencyStore,
        wait: bool = Parameter(default=False, description="Wait for the final status."),
    ) -> Response[IngestResponse]:
        """Queue documents for ingestion: multipart files (field ``file``, optional
        ``collection``), or a JSON ``{"name", "content", "content_type", "collection"}``.

        Answers 202 at once with each document's id and status ``queued``; poll
        ``GET /v1/documents/{id}`` until ``ready`` or ``failed``. With ``?wait=true``
        the answer waits (up to a configured timeout) for the final statuses: 201
        when something was indexed, 200 when nothing changed, still 202 on timeout.
        Text, Markdown, HTML and PDF are understood. Re-sending a document of the
        same name and collection replaces its chunks when its content changed.
        With an ``Idempotency-Key`` header, a retry of the same upload gets the first
        one's answer again (same ids and status code) instead of a second ingestion.
        """
        tenant, key = principal.tenant_id, idempotency_key(request)
        uploads = await _uploads(request, settings.retrieval.max_upload_files)
        if key is not None:
            # NOTE: the parsed uploads, not the body: a multipart boundary differs per send.
            fingerprint = request_hash(
                *(f"{u.name}\0{u.content_type}\0{u.collection}" for u in uploads),
                *(u.data for u in uploads),
            )
            claim = await idempotency.claim(tenant, _INGEST_ROUTE, key, fingerprint)
            if claim.replay and claim.status_code is not None:
                first = IngestResponse.model_validate(claim.response)
                return Response(first, status_code=claim.status_code)
        try:
            results = await retrieval.submit_many(principal.tenant_id, uploads)
        except BaseException:
            if key is not None:
                await idempotency.release(tenant, _INGEST_ROUTE, key)
            raise
        if key is not None:
            first = IngestResponse(documents=[IngestedOut.of(r, None) for r in results])
            await idempotency.complete(
                tenant, _INGEST_ROUTE, key, HTTP_202_ACCEPTED, first.model_dump(mode="json")
            )
        final = {r.document.id: r.document for r in results}
        status = HTTP_202_ACCEPTED
        if wait:
            timeout = settings.ingestion.wait_timeout_s
            done = await retrieval.wait_for(principal.tenant_id, list(final), timeout)
            final.update((doc.id, doc) for doc in done)
            if all(doc.status in _FINAL for doc in done):
                changed = any(r.outcome is not IngestOutcome.UNCHANGED for r in results)
                status = HTTP_201_CREATED if changed else HTTP_200_OK
        body = IngestResponse(
            documents=[IngestedOut.of(r, final.get(r.document.id)) for r in results]
        )
        return Response(body, status_code=status)

    @get("/", guards=[documents_read_guard])
    async def list_documents(
        self,
        retrieval: RetrievalService,
        principal: Principal,
        collection: str | None = Parameter(
            default=None, min_length=1, max_length=128, pattern=LABEL_PATTERN
        ),
        limit: int = Parameter(default=50, ge=1, le=200),
        cursor: str | None = Parameter(default=None, max_length=512),
    ) -> DocumentPageOut:
        """The tenant's documents, newest first, a page at a time."""
        page = await retrieval.list_documents(
            principal.tenant_id, collection=collection, limit=limit, cursor=cursor
        )
        return DocumentPageOut(
            data=[DocumentOut.of(d) for d in page.items], next_cursor=page.next_cursor
        )

    @get("/{document_id:str}", guards=[documents_read_guard])
    async def read(
        self, retrieval: RetrievalService, principal: Principal, document_id: str
    ) -> DocumentOut:
        """One document's record and status."""
        return DocumentOut.of(await retrieval.get_document(principal.tenant_id, document_id))

    @delete("/{document_id:str}", status_code=HTTP_204_NO_CONTENT, guards=[documents_write_guard])
    async def remove(
        self, retrieval: RetrievalService, principal: Principal, document_id: str
    ) -> None:
        """Delete a document and every chunk of it."""
        await retrieval.delete_document(principal.tenant_id, document_id)


async def _uploads(request: Request[Any, Any, Any], limit: int) -> list[Upload]:
    """The documents of an upload request, multipart or JSON."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        collection = str(form.get("collection") or "default")
        if not files:
            raise BadRequestError("No file in the upload; send them in the field 'file'.")
        if len(files) > limit:
            raise UnprocessableError(f"{len(files)} files in one upload; the limit is {limit}.")
        return [
            Upload(f.filename or "upload", await f.read(), f.content_type or None, collection)
            for f in files
        ]
    if content_type.startswith("application/json"):
        try:
            doc = TextDocumentIn.model_validate_json(await request.body())
        except ValidationError as exc:
            raise BadRequestError(f"Invalid document: {_first_error(exc)}") from exc
        return [Upload(doc.name, doc.content.encode(), doc.content_type, doc.collection)]
    raise BadRequestError("Send multipart/form-data files or an application/json document.")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "body"
    return f"{where}: {err.get('msg')}"
