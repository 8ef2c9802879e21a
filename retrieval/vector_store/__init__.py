"""Chunk vectors: the ``VectorStore`` interface and its implementations.

- ``ProcessEdgeVectorStore``: Qdrant Edge in a child process, the embedded default.
- ``EdgeVectorStore``: Qdrant Edge in this process (what that child runs; selectable).
- ``QdrantVectorStore``: qdrant-client, a Qdrant server (the scaled deployment) or
  its local mode (a Python scan, still selectable).

Each runs its calls on ``StoreCalls`` threads, never on the event loop. The
implementations load on first use, so the Edge child process never imports
qdrant-client.
"""

from typing import TYPE_CHECKING

from kernel.lazy import lazy_exports
from retrieval.points import chunk_point_id
from retrieval.vector_store.base import (
    DEFAULT_COLLECTION_NAME,
    HYBRID_PREFETCH_MIN,
    Candidate,
    ChunkPoint,
    VectorStore,
)
from retrieval.vector_store.offload import StoreCalls

if TYPE_CHECKING:
    from retrieval.vector_store.edge import EdgeVectorStore
    from retrieval.vector_store.edge_process import ProcessEdgeVectorStore
    from retrieval.vector_store.qdrant import QdrantVectorStore
else:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "edge": ("EdgeVectorStore",),
            "edge_process": ("ProcessEdgeVectorStore",),
            "qdrant": ("QdrantVectorStore",),
        },
    )

__all__ = [
    "DEFAULT_COLLECTION_NAME",
    "HYBRID_PREFETCH_MIN",
    "Candidate",
    "ChunkPoint",
    "EdgeVectorStore",
    "ProcessEdgeVectorStore",
    "QdrantVectorStore",
    "StoreCalls",
    "VectorStore",
    "chunk_point_id",
]
