"""Exact ranking of a cached candidate set against a new query.

What "exact" means per mode (docs/retrieval.md, "The chunk cache"):

- ``dense``: the cosine similarity of every candidate with the new query, the same
  number Qdrant would compute; the order among candidates is Qdrant's order.
- ``sparse``: BM25 over the candidates' stored term weights, with Qdrant's IDF
  formula over the statistics the caller passes (the chunk cache's per-tenant
  table; Qdrant's collection-wide statistics are not known on the node), or over
  the candidate set when it passes none. Scores are therefore close to Qdrant's,
  not equal.
- ``hybrid``: the dense ranking and the sparse ranking above over the candidates,
  each cut to the length of Qdrant's prefetch legs, fused by the same RRF (or DBSF)
  Qdrant's query API applies (qdrant-client's own fusion functions), then the
  dense-cosine floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from qdrant_client import models
from qdrant_client.hybrid.fusion import distribution_based_score_fusion, reciprocal_rank_fusion

from retrieval.types import ChunkHit, Fusion, SearchMode

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


@dataclass(slots=True)
class CachedChunk:
    """A chunk held by the cache: what a search returns plus what ranking needs.

    Attributes:
        hit: The chunk (its ``score`` and ``similarity`` are meaningless here).
        vector: Its unit dense vector.
        terms: Its BM25 term weights (``Bm25Encoder.encode_document``), by term index.
        token_ids: The embedder tokenizer's ids of its text.
        nbytes: Approximate memory it holds.
        refs: Cached queries whose candidate set holds it; at 0 it is released.
    """

    hit: ChunkHit
    vector: np.ndarray
    terms: dict[int, float]
    token_ids: np.ndarray
    nbytes: int
    refs: int = 0


def rank(
    query: np.ndarray,
    query_terms: Sequence[int],
    candidates: Sequence[CachedChunk],
    *,
    mode: SearchMode,
    fusion: Fusion,
    k: int,
    score_floor: float | None,
    idf: Mapping[int, float] | None = None,
    legs: int | None = None,
) -> list[ChunkHit]:
    """The ``k`` best candidates for the query, best first, scored as the mode scores.

    Args:
        query: The new query's unit dense vector.
        query_terms: The new query's distinct term indices.
        candidates: The cached candidate set.
        mode: Dense, sparse or hybrid.
        fusion: The hybrid fusion.
        k: How many to return.
        score_floor: Least dense cosine (dense, hybrid) or BM25 score (sparse).
        idf: IDF by term (a term missing counts 0); ``None``: measured over the candidates.
        legs: Hybrid: each ranking keeps only its best ``legs`` before fusion, as
            Qdrant's prefetch limit does (a chunk outside a leg gets nothing from it).
    """
    if not candidates:
        return []
    dense = np.stack([c.vector for c in candidates]) @ np.asarray(query, dtype=np.float32)
    if mode == SearchMode.DENSE or (mode == SearchMode.HYBRID and not query_terms):
        order = np.argsort(-dense, kind="stable")
        scored = [(int(i), float(dense[i])) for i in order]
    else:
        sparse = _bm25(query_terms, candidates, idf)
        sparse_order = [(int(i), float(sparse[i])) for i in np.argsort(-sparse, kind="stable")]
        sparse_order = [(i, s) for i, s in sparse_order if s > 0]
        if mode == SearchMode.SPARSE:
            scored = sparse_order
        else:
            dense_order = [(int(i), float(dense[i])) for i in np.argsort(-dense, kind="stable")]
            if legs is not None:
                dense_order, sparse_order = dense_order[:legs], sparse_order[:legs]
            scored = _fuse(dense_order, sparse_order, fusion, len(candidates))
    hits = []
    for i, score in scored:
        floor_score = score if mode == SearchMode.SPARSE else float(dense[i])
        if score_floor is not None and floor_score < score_floor:
            continue
        hits.append(replace(candidates[i].hit, score=score, similarity=float(dense[i])))
        if len(hits) == k:
            break
    return hits


def _bm25(
    query_terms: Sequence[int], candidates: Sequence[CachedChunk], idf: Mapping[int, float] | None
) -> np.ndarray:
    n = len(candidates)
    scores = np.zeros(n, dtype=np.float64)
    for term in query_terms:
        weights = [c.terms.get(term, 0.0) for c in candidates]
        df = sum(1 for w in weights if w > 0)
        if df == 0:
            continue
        # Qdrant's IDF formula (``Modifier.IDF``), over the given statistics or the candidates.
        weight = (
            idf.get(term, 0.0) if idf is not None else math.log((n - df + 0.5) / (df + 0.5) + 1)
        )
        scores += weight * np.asarray(weights)
    return scores


def _fuse(
    dense: list[tuple[int, float]], sparse: list[tuple[int, float]], fusion: Fusion, limit: int
) -> list[tuple[int, float]]:
    # NOTE: qdrant-client's own fusion functions, so a cache hit fuses with the very
    # formula (and RRF constant) Qdrant applied when the candidates were fetched.
    legs = [
        [models.ScoredPoint(id=i, version=0, score=s) for i, s in leg] for leg in (dense, sparse)
    ]
    if fusion == Fusion.DBSF:
        fused = distribution_based_score_fusion(legs, limit=limit)
    else:
        fused = reciprocal_rank_fusion(legs, limit=limit)
    return [(int(p.id), float(p.score)) for p in fused]
