"""Figures of the retrieval benchmark: recall@K, MRR, top-K overlap and latency summaries.

Recall@K here is the fraction of queries with at least one relevant chunk among the
first K results (the "top-K retrieval accuracy" of dense-retrieval papers): a
section spans several chunks, and any of them answers the question. MRR is the mean
of 1/rank of the first relevant chunk (0 when none is in the results).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.generation_stats import percentile

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

KS = (1, 5, 10)


def first_relevant_rank(ranked: Sequence[str], relevant: Collection[str]) -> int | None:
    """1-based rank of the first result whose document is relevant, or ``None``."""
    for rank, name in enumerate(ranked, start=1):
        if name in relevant:
            return rank
    return None


def recall_mrr(
    results: Sequence[tuple[Sequence[str], Collection[str]]], ks: Sequence[int] = KS
) -> dict[str, float]:
    """Recall@K for each K and MRR over ``(ranked document names, relevant names)`` pairs.

    Returns:
        ``{"recall@1": ..., "recall@5": ..., "recall@10": ..., "mrr": ..., "queries": n}``;
        zeros for no queries.
    """
    n = len(results)
    ranks = [first_relevant_rank(ranked, relevant) for ranked, relevant in results]
    out: dict[str, float] = {}
    for k in ks:
        hits = sum(1 for r in ranks if r is not None and r <= k)
        out[f"recall@{k}"] = round(hits / n, 4) if n else 0.0
    out["mrr"] = round(sum(1 / r for r in ranks if r is not None) / n, 4) if n else 0.0
    out["queries"] = n
    return out


def overlap_at_k(candidate: Sequence[str], reference: Sequence[str], k: int = 5) -> float:
    """Share of the reference's top ``k`` ids that the candidate's top ``k`` also holds.

    1.0 when the reference is empty (nothing to miss).
    """
    ref = list(reference[:k])
    if not ref:
        return 1.0
    return len(set(candidate[:k]) & set(ref)) / len(ref)


def latency(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/mean in milliseconds and the sample count."""
    if not seconds:
        return {"n": 0}
    return {
        "p50_ms": round(percentile(seconds, 0.5) * 1000, 3),
        "p95_ms": round(percentile(seconds, 0.95) * 1000, 3),
        "mean_ms": round(sum(seconds) / len(seconds) * 1000, 3),
        "n": len(seconds),
    }


def speedup(slow: Mapping[str, float], fast: Mapping[str, float], key: str) -> float:
    """``slow[key] / fast[key]`` rounded, or 0.0 when either is missing or zero."""
    a, b = slow.get(key, 0.0), fast.get(key, 0.0)
    return round(a / b, 2) if a and b else 0.0
