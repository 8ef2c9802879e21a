"""REST: search the tenant's chunks (retrieval only, no generation).

Takes the ``documents:read`` or ``chat`` scope.
"""

from __future__ import annotations

from litestar import Controller, post
from litestar.status_codes import HTTP_200_OK

from app.auth.guards import documents_read_guard
from app.auth.principal import Principal
from app.entrypoints.rest.search.schemas import ChunkOut, SearchRequest, SearchResponse
from retrieval import RetrievalService


class SearchController(Controller):
    path = "/v1/search"
    tags = ["search"]
    guards = [documents_read_guard]

    @post("/", status_code=HTTP_200_OK)
    async def search(
        self, retrieval: RetrievalService, principal: Principal, data: SearchRequest
    ) -> SearchResponse:
        """The tenant's best chunks for a query, best first, with scores.

        ``mode`` picks dense, sparse (BM25) or hybrid ranking (default), ``fusion``
        how hybrid fuses, ``score_floor`` drops weak chunks (see the field docs).
        """
        hits = await retrieval.search(
            principal.tenant_id,
            data.query,
            k=data.k,
            collection=data.collection,
            score_floor=data.score_floor,
            mode=data.mode,
            fusion=data.fusion,
            use_cache=data.use_cache,
        )
        return SearchResponse(results=[ChunkOut.of(h) for h in hits])
