"""Chunk points: what the vector store stores (``ChunkPoint``) and what a search returns
with its vector (``Candidate``)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrieval.types import ChunkHit

# Fixed namespace so that a chunk's point id is the same on every node and every run.
_POINT_NAMESPACE = uuid.UUID("6f1c1f4e-5d1a-4b7e-9a43-2f0d8c1e7b55")


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


@dataclass(frozen=True, slots=True)
class Candidate:
    """A search result with the chunk's dense vector, what the chunk cache holds.

    Attributes:
        hit: The chunk and its score in the query's mode (cosine, BM25 or fused).
        vector: The chunk's unit dense vector.
        dense_score: Cosine similarity of the chunk with the query's dense vector.
    """

    hit: ChunkHit
    vector: np.ndarray
    dense_score: float
