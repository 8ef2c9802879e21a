"""Chunk vectors: the ``VectorStore`` interface and its implementations.

- ``EdgeVectorStore``: Qdrant Edge in this process, the embedded default.
- ``QdrantVectorStore``: qdrant-client, a Qdrant server (the scaled deployment) or
  its local mode (a Python scan, still selectable).

Both run their engine's calls on ``StoreCalls`` threads, never on the event loop.
"""

from retrieval.points import chunk_point_id
from retrieval.vector_store.base import (
    DEFAULT_COLLECTION_NAME,
    HYBRID_PREFETCH_MIN,
    Candidate,
    ChunkPoint,
    VectorStore,
)
from retrieval.vector_store.edge import EdgeVectorStore
from retrieval.vector_store.offload import StoreCalls
from retrieval.vector_store.qdrant import QdrantVectorStore

__all__ = [
    "DEFAULT_COLLECTION_NAME",
    "HYBRID_PREFETCH_MIN",
    "Candidate",
    "ChunkPoint",
    "EdgeVectorStore",
    "QdrantVectorStore",
    "StoreCalls",
    "VectorStore",
    "chunk_point_id",
]
