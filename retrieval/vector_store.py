"""Chunk vectors: the ``VectorStore`` interface and its Qdrant implementation.

One Qdrant collection holds every tenant's chunks; tenants are separated by a
``tenant_id`` payload filter on every read and delete (DESIGN §5), never by
trusting the caller to pass one. ``collection`` in the payload is the tenant's own
document grouping, unrelated to the Qdrant collection.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from retrieval.errors import RetrievalError, VectorStoreUnavailableError
from retrieval.types import ChunkHit

DEFAULT_COLLECTION_NAME = "ragserve_chunks"

# Fixed namespace so that a chunk's point id is the same on every node and every run.
_POINT_NAMESPACE = uuid.UUID("6f1c1f4e-5d1a-4b7e-9a43-2f0d8c1e7b55")
_UPSERT_BATCH = 256
_HTTP_CONFLICT = 409


def chunk_point_id(document_id: str, position: int, text: str) -> str:
    """Deterministic point id of a chunk, so that re-upserting the same chunk overwrites it."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{document_id}:{position}:{digest}"))


@dataclass(frozen=True, slots=True)
class ChunkPoint:
    """A chunk ready to store: its vector and the payload every point carries."""

    tenant_id: str
    collection: str
    document_id: str
    document_name: str
    position: int
    text: str
    vector: np.ndarray

    @property
    def id(self) -> str:
        return chunk_point_id(self.document_id, self.position, self.text)

    def payload(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "collection": self.collection,
            "document_id": self.document_id,
            "document_name": self.document_name,
            "position": self.position,
            "text": self.text,
        }


@runtime_checkable
class VectorStore(Protocol):
    """Where chunk vectors live. Every read and delete is scoped to one tenant."""

    async def ensure_ready(self, dimension: int) -> None:
        """Create the collection and its indexes if missing; check the dimension if not."""
        ...

    async def upsert(self, points: Sequence[ChunkPoint]) -> None:
        """Insert or overwrite points (idempotent: point ids are deterministic)."""
        ...

    async def delete_document(
        self, tenant_id: str, document_id: str, keep_ids: Collection[str] = ()
    ) -> None:
        """Delete a document's points, except those whose ids are in ``keep_ids``."""
        ...

    async def search(
        self,
        tenant_id: str,
        vector: np.ndarray,
        k: int,
        collection: str | None = None,
        score_floor: float | None = None,
    ) -> list[ChunkHit]:
        """The ``k`` nearest chunks of this tenant, best first."""
        ...

    async def count(self, tenant_id: str, document_id: str | None = None) -> int:
        """Number of points of a tenant, or of one of its documents."""
        ...

    async def check_health(self) -> None:
        """Raise ``VectorStoreUnavailableError`` when the store cannot answer."""
        ...

    async def close(self) -> None:
        """Release connections and file locks."""
        ...


class QdrantVectorStore:
    """A ``VectorStore`` on Qdrant: local mode (a folder) or a Qdrant server.

    NOTE: local mode takes a file lock on its folder, so exactly one client per
    folder may exist: the server process owns it, and a second process (a CLI, a
    second worker) must talk to the server instead. Local mode also runs its work
    synchronously on the event loop (the async client only wraps it) and ignores
    payload indexes, which is fine for the embedded default's data sizes; use a
    server for anything larger.
    """

    def __init__(
        self,
        *,
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        collection_name: str = DEFAULT_COLLECTION_NAME,
        timeout: int = 10,
    ) -> None:
        """Configure the client; nothing is opened or contacted until first use.

        Args:
            path: Local-mode folder, or ``":memory:"`` for a throwaway store.
            url: Qdrant server URL (scaled deployment); exclusive with ``path``.
            api_key: Server API key.
            collection_name: The Qdrant collection holding every tenant's chunks.
            timeout: Server request timeout in seconds.

        Raises:
            ValueError: Neither or both of ``path`` and ``url`` were given.
        """
        if (path is None) == (url is None):
            raise ValueError("give exactly one of path (local mode) or url (server)")
        self._collection = collection_name
        self._local = url is None
        self._client_args: dict[str, Any]
        if path == ":memory:":
            self._client_args = {"location": ":memory:"}
        elif path is not None:
            self._client_args = {"path": path}
        else:
            # NOTE: no version check: it would contact the server in the constructor.
            self._client_args = {
                "url": url,
                "api_key": api_key,
                "timeout": timeout,
                "check_compatibility": False,
            }
        self._client: AsyncQdrantClient | None = None

    @property
    def collection_name(self) -> str:
        return self._collection

    @property
    def client(self) -> AsyncQdrantClient:
        # Created lazily: local mode takes its file lock here, not at import or wiring.
        if self._client is None:
            self._client = AsyncQdrantClient(**self._client_args)
        return self._client

    async def ensure_ready(self, dimension: int) -> None:
        async with _unavailable_on_error():
            if not await self.client.collection_exists(self._collection):
                await self._create_collection(dimension)
            info = await self.client.get_collection(self._collection)
        vectors = info.config.params.vectors
        size = vectors.size if isinstance(vectors, models.VectorParams) else None
        if size != dimension:
            raise RetrievalError(
                f"Qdrant collection {self._collection!r} holds vectors of size {size}, but the "
                f"embedder makes {dimension}: use another collection name or re-ingest"
            )
        if not self._local:
            await self._create_payload_indexes()

    async def _create_collection(self, dimension: int) -> None:
        params = models.VectorParams(size=dimension, distance=models.Distance.COSINE)
        # NOTE: every query filters by tenant, so the server builds per-tenant HNSW
        # graphs (payload_m) instead of one global graph (m=0), as Qdrant advises
        # for multitenancy. Local mode has no HNSW and ignores this.
        hnsw = None if self._local else models.HnswConfigDiff(payload_m=16, m=0)
        try:
            await self.client.create_collection(
                self._collection, vectors_config=params, hnsw_config=hnsw
            )
        except UnexpectedResponse as exc:
            # Another API node created it between our check and our create.
            if exc.status_code != _HTTP_CONFLICT:
                raise
        except ValueError:
            # Local mode says "already exists" with a ValueError.
            if not await self.client.collection_exists(self._collection):
                raise

    async def _create_payload_indexes(self) -> None:
        # Server mode only: local mode has no payload indexes and warns about each.
        indexes: list[tuple[str, models.KeywordIndexParams]] = [
            (
                "tenant_id",
                models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
            ),
            ("collection", models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD)),
            ("document_id", models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD)),
        ]
        async with _unavailable_on_error():
            for field, schema in indexes:
                # Creating an index that exists with the same schema is a no-op.
                await self.client.create_payload_index(
                    self._collection, field_name=field, field_schema=schema, wait=True
                )

    async def upsert(self, points: Sequence[ChunkPoint]) -> None:
        async with _unavailable_on_error():
            for start in range(0, len(points), _UPSERT_BATCH):
                batch = points[start : start + _UPSERT_BATCH]
                structs = [
                    models.PointStruct(
                        id=point.id,
                        vector=np.asarray(point.vector, dtype=np.float32).tolist(),
                        payload=point.payload(),
                    )
                    for point in batch
                ]
                await self.client.upsert(self._collection, points=structs, wait=True)

    async def delete_document(
        self, tenant_id: str, document_id: str, keep_ids: Collection[str] = ()
    ) -> None:
        query = _tenant_filter(tenant_id, document_id=document_id)
        if keep_ids:
            query.must_not = [models.HasIdCondition(has_id=list(keep_ids))]
        async with _unavailable_on_error():
            await self.client.delete(
                self._collection, points_selector=models.FilterSelector(filter=query), wait=True
            )

    async def search(
        self,
        tenant_id: str,
        vector: np.ndarray,
        k: int,
        collection: str | None = None,
        score_floor: float | None = None,
    ) -> list[ChunkHit]:
        async with _unavailable_on_error():
            response = await self.client.query_points(
                self._collection,
                query=np.asarray(vector, dtype=np.float32).tolist(),
                query_filter=_tenant_filter(tenant_id, collection=collection),
                limit=k,
                score_threshold=score_floor,
                with_payload=True,
            )
        hits = []
        for point in response.points:
            payload = point.payload or {}
            hits.append(
                ChunkHit(
                    chunk_id=str(point.id),
                    document_id=str(payload["document_id"]),
                    document_name=str(payload["document_name"]),
                    collection=str(payload["collection"]),
                    position=int(payload["position"]),
                    text=str(payload["text"]),
                    score=float(point.score),
                )
            )
        return hits

    async def count(self, tenant_id: str, document_id: str | None = None) -> int:
        async with _unavailable_on_error():
            result = await self.client.count(
                self._collection,
                count_filter=_tenant_filter(tenant_id, document_id=document_id),
                exact=True,
            )
        return int(result.count)

    async def check_health(self) -> None:
        async with _unavailable_on_error():
            await self.client.get_collections()

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


def _tenant_filter(
    tenant_id: str, *, collection: str | None = None, document_id: str | None = None
) -> models.Filter:
    """A filter that always pins the tenant, optionally narrowed further."""
    if not tenant_id:
        # Defence in depth: an empty tenant would still filter, but it is always a bug.
        raise ValueError("tenant_id is required for every vector store query")
    must: list[models.Condition] = [
        models.FieldCondition(key="tenant_id", match=models.MatchValue(value=tenant_id))
    ]
    if collection is not None:
        must.append(
            models.FieldCondition(key="collection", match=models.MatchValue(value=collection))
        )
    if document_id is not None:
        must.append(
            models.FieldCondition(key="document_id", match=models.MatchValue(value=document_id))
        )
    return models.Filter(must=must)


@asynccontextmanager
async def _unavailable_on_error() -> AsyncIterator[None]:
    """Turn transport failures and server errors into ``VectorStoreUnavailableError``."""
    try:
        yield
    except ResponseHandlingException as exc:
        raise VectorStoreUnavailableError(f"Qdrant is unreachable: {exc}") from exc
    except UnexpectedResponse as exc:
        if exc.status_code is None or exc.status_code >= 500:
            raise VectorStoreUnavailableError(f"Qdrant failed: {exc}") from exc
        raise
    except (ConnectionError, TimeoutError) as exc:
        raise VectorStoreUnavailableError(f"Qdrant is unreachable: {exc}") from exc
