"""REST: ingest, list, read and delete documents; search the tenant's chunks."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.datastructures import UploadFile
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT
from pydantic import ValidationError

from app.auth import Principal
from app.errors import BadRequestError, UnprocessableError
from app.schemas.documents import (
    ChunkOut,
    DocumentOut,
    DocumentPageOut,
    IngestedOut,
    IngestResponse,
    SearchRequest,
    SearchResponse,
    TextDocumentIn,
)
from app.services import Services


class DocumentController(Controller):
    path = "/v1/documents"
    tags = ["documents"]

    @post("/", status_code=HTTP_201_CREATED)
    async def ingest(
        self, request: Request[Any, Any, Any], services: Services, principal: Principal
    ) -> IngestResponse:
        """Ingest documents: multipart files (field ``file``, optional ``collection``),
        or a JSON ``{"name", "content", "content_type", "collection"}``.

        Text, Markdown, HTML and PDF are understood. Re-sending a document of the
        same name and collection replaces its chunks when its content changed.
        """
        content_type = request.headers.get("content-type", "")
        limit = services.settings.retrieval.max_upload_files
        results = []
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
            collection = str(form.get("collection") or "default")
            if not files:
                raise BadRequestError("No file in the upload; send them in the field 'file'.")
            if len(files) > limit:
                raise UnprocessableError(f"{len(files)} files in one upload; the limit is {limit}.")
            for upload in files:
                data = await upload.read()
                results.append(
                    await services.retrieval.ingest(
                        principal.tenant_id,
                        upload.filename or "upload",
                        data,
                        content_type=upload.content_type or None,
                        collection=collection,
                    )
                )
        elif content_type.startswith("application/json"):
            try:
                doc = TextDocumentIn.model_validate_json(await request.body())
            except ValidationError as exc:
                raise BadRequestError(f"Invalid document: {_first_error(exc)}") from exc
            results.append(
                await services.retrieval.ingest(
                    principal.tenant_id,
                    doc.name,
                    doc.content.encode(),
                    content_type=doc.content_type,
                    collection=doc.collection,
                )
            )
        else:
            raise BadRequestError("Send multipart/form-data files or an application/json document.")
        return IngestResponse(documents=[IngestedOut.of(r) for r in results])

    @get("/")
    async def list_documents(
        self,
        services: Services,
        principal: Principal,
        collection: str | None = Parameter(default=None, max_length=128),
        limit: int = Parameter(default=50, ge=1, le=200),
        cursor: str | None = Parameter(default=None, max_length=512),
    ) -> DocumentPageOut:
        """The tenant's documents, newest first, a page at a time."""
        page = await services.retrieval.list_documents(
            principal.tenant_id, collection=collection, limit=limit, cursor=cursor
        )
        return DocumentPageOut(
            data=[DocumentOut.of(d) for d in page.items], next_cursor=page.next_cursor
        )

    @get("/{document_id:str}")
    async def read(self, services: Services, principal: Principal, document_id: str) -> DocumentOut:
        """One document's record and status."""
        return DocumentOut.of(
            await services.retrieval.get_document(principal.tenant_id, document_id)
        )

    @delete("/{document_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def remove(self, services: Services, principal: Principal, document_id: str) -> None:
        """Delete a document and every chunk of it."""
        await services.retrieval.delete_document(principal.tenant_id, document_id)


class SearchController(Controller):
    path = "/v1/search"
    tags = ["search"]

    @post("/", status_code=HTTP_200_OK)
    async def search(
        self, services: Services, principal: Principal, data: SearchRequest
    ) -> SearchResponse:
        """Retrieval only: the tenant's best chunks for a query, best first, with scores."""
        hits = await services.retrieval.search(
            principal.tenant_id,
            data.query,
            k=data.k,
            collection=data.collection,
            score_floor=data.score_floor,
        )
        return SearchResponse(results=[ChunkOut.of(h) for h in hits])


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "body"
    return f"{where}: {err.get('msg')}"
