"""Vectors for the retrieval benchmark: an on-disk embedding cache and distractor points.

Embedding the corpus costs about a minute on a 2-core CPU, so chunk vectors are kept
under ``bench/results/cache/`` (ignored by git) keyed by the model and the text;
``CachingEmbedder`` wraps the real embedder and is what the benchmark's service
embeds with. 100k real chunks would take hours here, so the 10k and 100k scales are
filled with distractors: copies of the real points whose dense vector is the real
one pushed a random distance in a random direction, written
straight into the store as the ingestion path would write them, with a random
quarter of their words left out (so BM25 never ties a distractor with its source).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from qdrant_client import AsyncQdrantClient, QdrantClient, models

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from retrieval import Embedder

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO / "bench" / "results" / "cache"
_DISTRACTOR_NAMESPACE = uuid.UUID("0b8e2f61-7a4c-4f0e-9d51-3c6a2b9e4d17")
_SCROLL_PAGE = 1000


class _Sparse(Protocol):
    indices: list[int]
    values: list[float]


SparseEncoder = Callable[[str], _Sparse]
"""Text to a sparse vector (``indices``, ``values``): the store's BM25 document encoder."""
_UPSERT_BATCH = 1000


def text_key(text: str) -> str:
    """Cache key of one text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Chunk vectors by text, loaded from and saved to one ``.npz`` file."""

    def __init__(self, path: Path) -> None:
        """Load ``path`` if it exists (an unreadable file is ignored and rebuilt)."""
        self.path = path
        self._vectors: dict[str, np.ndarray] = {}
        self._dirty = False
        if path.exists():
            try:
                with np.load(path) as data:
                    keys, vectors = data["keys"], data["vectors"]
                self._vectors = {str(k): v for k, v in zip(keys, vectors, strict=True)}
            except (OSError, KeyError, ValueError):
                self._vectors = {}

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, text: str) -> np.ndarray | None:
        return self._vectors.get(text_key(text))

    def put(self, text: str, vector: np.ndarray) -> None:
        self._vectors[text_key(text)] = np.asarray(vector, dtype=np.float32)
        self._dirty = True

    def save(self) -> None:
        """Write the file if anything was added (the folder ignores itself in git)."""
        if not self._dirty or not self._vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ignore = self.path.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")
        keys = np.array(list(self._vectors), dtype="U64")
        vectors = np.stack(list(self._vectors.values())).astype(np.float32)
        np.savez(self.path, keys=keys, vectors=vectors)
        self._dirty = False


class CachingEmbedder:
    """An ``Embedder`` that records every passage vector and, when ``lookup`` is on, reuses them.

    With ``lookup`` off it embeds everything for real (the ingestion-throughput phase
    measures true cost) and only records. Queries are always embedded for real.
    """

    def __init__(self, inner: Embedder, cache: EmbeddingCache, *, lookup: bool = True) -> None:
        self.inner = inner
        self.cache = cache
        self.lookup = lookup
        self.embedded = 0
        """Passages embedded for real so far."""

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def tokenizer(self) -> Tokenizer:
        return self.inner.tokenizer

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        todo: list[int] = []
        for i, text in enumerate(texts):
            hit = self.cache.get(text) if self.lookup else None
            if hit is None:
                todo.append(i)
            else:
                out[i] = hit
        if todo:
            vectors = self.inner.embed_documents([texts[i] for i in todo])
            self.embedded += len(todo)
            for i, vector in zip(todo, vectors, strict=True):
                out[i] = vector
                self.cache.put(texts[i], vector)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)


def perturb(vector: np.ndarray, distance: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector ``distance`` (relative to the unit norm) away from ``vector`` in a
    random direction: cosine to the original is about ``1 / sqrt(1 + distance**2)``."""
    noise = np.asarray(rng.standard_normal(vector.shape[0]), dtype=np.float32)
    noise -= float(noise @ vector) * vector  # orthogonal, so the cosine is exact
    noise /= np.linalg.norm(noise)
    moved = vector + distance * noise
    return (moved / np.linalg.norm(moved)).astype(np.float32)


async def scroll_points(
    client: QdrantClient | AsyncQdrantClient, collection_name: str, tenant_id: str
) -> list[models.Record]:
    """Every point of a tenant, with payload and vectors."""
    tenant = models.Filter(
        must=[models.FieldCondition(key="tenant_id", match=models.MatchValue(value=tenant_id))]
    )
    out: list[models.Record] = []
    offset: Any = None
    while True:
        page, offset = await _call(
            client.scroll,
            collection_name,
            scroll_filter=tenant,
            limit=_SCROLL_PAGE,
            offset=offset,
            with_payload=True,
            with_vectors=True,
        )
        out.extend(page)
        if offset is None:
            return out


def drop_words(text: str, share: float, rng: np.random.Generator) -> str:
    """The text with about ``share`` of its words left out at random (at least one kept)."""
    words = text.split()
    if not words:
        return text
    keep = rng.random(len(words)) >= share
    if not keep.any():
        keep[0] = True
    return " ".join(w for w, k in zip(words, keep, strict=True) if k)


def _moved_vectors(
    vector: Any, text: str, distance: float, sparse: SparseEncoder | None, rng: np.random.Generator
) -> Any:
    """The point's vectors: every dense one perturbed, every sparse one re-encoded from ``text``."""
    if isinstance(vector, dict):
        out = {}
        for name, value in vector.items():
            if isinstance(value, list):
                out[name] = _moved_vectors(value, text, distance, sparse, rng)
            elif sparse is not None:
                encoded = sparse(text)
                out[name] = models.SparseVector(indices=encoded.indices, values=encoded.values)
            else:
                out[name] = value
        return out
    return perturb(np.asarray(vector, dtype=np.float32), distance, rng).tolist()


async def add_distractors(
    client: QdrantClient | AsyncQdrantClient,
    collection_name: str,
    tenant_id: str,
    sources: Sequence[models.Record],
    count: int,
    *,
    start: int = 0,
    distance: tuple[float, float] = (0.6, 1.2),
    drop: float = 0.25,
    sparse: SparseEncoder | None = None,
    seed: int = 1234,
) -> int:
    """Upsert ``count`` distractor copies of ``sources`` into the tenant's chunks.

    Distractor ``i`` copies ``sources[i % len(sources)]`` under document
    ``distractor-<i // len(sources)>``: its dense vector moved a distance drawn
    uniformly from ``distance`` (cosine 0.64-0.86 to the original by default), so
    the neighbourhoods of real chunks get crowded the way a larger corpus crowds
    them; its text missing a random ``drop`` share of the words and its sparse
    vector encoded from that text by ``sparse`` (the store's own encoder), so that
    no two points tie exactly in BM25 and the payload text matches the sparse vector.

    Returns:
        The number of points written.
    """
    rng = np.random.default_rng(seed + start)
    n = len(sources)
    written = 0
    for base in range(start, start + count, _UPSERT_BATCH):
        batch = []
        for i in range(base, min(base + _UPSERT_BATCH, start + count)):
            src = sources[i % n]
            payload = dict(src.payload or {})
            copy = i // n
            payload["document_id"] = f"distractor-{copy}"
            payload["document_name"] = f"distractor-{copy}-{payload.get('document_name', '')}"
            payload["text"] = drop_words(str(payload.get("text", "")), drop, rng)
            moved = _moved_vectors(
                src.vector, payload["text"], float(rng.uniform(*distance)), sparse, rng
            )
            batch.append(
                models.PointStruct(
                    id=str(uuid.uuid5(_DISTRACTOR_NAMESPACE, f"{tenant_id}:{i}")),
                    vector=moved,
                    payload=payload,
                )
            )
        await _call(client.upsert, collection_name, points=batch, wait=True)
        written += len(batch)
    return written


async def _call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A client method's result: awaited on an async client, on a thread on a sync one
    (the store's own client is the sync one, whose local mode blocks)."""
    if inspect.iscoroutinefunction(method):
        return await method(*args, **kwargs)
    return await asyncio.to_thread(method, *args, **kwargs)
