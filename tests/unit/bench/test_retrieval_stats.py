"""The retrieval benchmark's figures, the embedding cache and the distractor points."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from qdrant_client import AsyncQdrantClient, models

from bench.retrieval_stats import first_relevant_rank, latency, overlap_at_k, recall_mrr, speedup
from bench.retrieval_vectors import (
    CachingEmbedder,
    EmbeddingCache,
    add_distractors,
    perturb,
    scroll_points,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from tokenizers import Tokenizer


def test_recall_counts_a_query_once_its_first_relevant_chunk_is_in_the_top_k() -> None:
    results = [
        (["a", "x", "a"], {"a"}),  # rank 1
        (["x", "y", "b", "z", "w", "b"], {"b"}),  # rank 3
        (["x"] * 10, {"c"}),  # never
        (["x"] * 9 + ["d"], {"d"}),  # rank 10
    ]
    figures = recall_mrr(results)
    assert figures == {
        "recall@1": 0.25,
        "recall@5": 0.5,
        "recall@10": 0.75,
        "mrr": round((1 + 1 / 3 + 1 / 10) / 4, 4),
        "queries": 4,
    }
    assert first_relevant_rank(["x"], {"y"}) is None
    assert recall_mrr([])["recall@5"] == 0.0


def test_overlap_is_the_share_of_the_reference_top_k_kept() -> None:
    assert overlap_at_k(["a", "b", "c", "d", "e"], ["e", "d", "c", "b", "a"]) == 1.0
    assert overlap_at_k(["a", "b", "x", "y", "z"], ["a", "b", "c", "d", "e"]) == 0.4
    assert overlap_at_k(["a", "b"], ["a", "b", "c"], k=2) == 1.0
    assert overlap_at_k([], []) == 1.0


def test_latency_and_speedup() -> None:
    figures = latency([0.001, 0.002, 0.003, 0.004, 0.1])
    assert figures["p50_ms"] == 3.0
    assert figures["n"] == 5
    assert latency([]) == {"n": 0}
    assert speedup({"p50_ms": 10.0}, {"p50_ms": 2.0}, "p50_ms") == 5.0
    assert speedup({"p50_ms": 10.0}, {}, "p50_ms") == 0.0


def test_perturb_moves_a_unit_vector_to_the_promised_cosine() -> None:
    rng = np.random.default_rng(0)
    v = rng.standard_normal(384).astype(np.float32)
    v /= np.linalg.norm(v)
    for distance in (0.5, 1.0, 2.0):
        moved = perturb(v, distance, rng)
        assert np.linalg.norm(moved) == pytest.approx(1.0, abs=1e-5)
        assert float(moved @ v) == pytest.approx(1 / np.sqrt(1 + distance**2), abs=1e-4)


class CountingEmbedder:
    """A deterministic stand-in for the model: a text's vector comes from its hash."""

    dimension = 8
    tokenizer: Tokenizer | None = None

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return np.stack([self.embed_query(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        rng = np.random.default_rng(abs(hash(text)) % 2**32)
        v = rng.standard_normal(self.dimension).astype(np.float32)
        return v / np.linalg.norm(v)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.embed_query(t) for t in texts])


def test_the_caching_embedder_records_then_reuses_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "vectors.npz"
    inner = CountingEmbedder()
    recording = CachingEmbedder(inner, EmbeddingCache(path), lookup=False)  # type: ignore[arg-type]
    first = recording.embed_documents(["a", "b"])
    recording.embed_documents(["a"])  # lookup off: embedded again, for real
    assert inner.embedded == ["a", "b", "a"]
    recording.cache.save()
    assert (path.parent / ".gitignore").read_text() == "*\n"

    inner2 = CountingEmbedder()
    reusing = CachingEmbedder(inner2, EmbeddingCache(path))  # type: ignore[arg-type]
    again = reusing.embed_documents(["b", "c", "a"])
    assert inner2.embedded == ["c"]  # only the new text ran through the model
    np.testing.assert_allclose(again[[2, 0]], first)
    assert reusing.embedded == 1


def test_a_corrupt_cache_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "vectors.npz"
    path.write_bytes(b"not an npz")
    assert len(EmbeddingCache(path)) == 0


async def test_distractors_copy_payload_and_sparse_words_and_move_the_dense_vector() -> None:
    client = AsyncQdrantClient(location=":memory:")
    await client.create_collection(
        "c",
        vectors_config={"dense": models.VectorParams(size=8, distance=models.Distance.COSINE)},
        sparse_vectors_config={"bm25": models.SparseVectorParams()},
    )
    rng = np.random.default_rng(1)
    real = rng.standard_normal((3, 8)).astype(np.float32)
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    await client.upsert(
        "c",
        points=[
            models.PointStruct(
                id=i,
                vector={
                    "dense": real[i].tolist(),
                    "bm25": models.SparseVector(indices=[i, 10], values=[1.0, 0.5]),
                },
                payload={
                    "tenant_id": "t",
                    "document_id": f"d{i}",
                    "document_name": f"n{i}",
                    "text": " ".join(f"word{j}" for j in range(40)),
                },
            )
            for i in range(3)
        ],
    )
    sources = await scroll_points(client, "c", "t")
    assert len(sources) == 3
    written = await add_distractors(client, "c", "t", sources, 7, distance=(1.0, 1.0))
    written += await add_distractors(client, "c", "t", sources, 2, start=7, distance=(1.0, 1.0))
    assert written == 9
    assert (await client.count("c", exact=True)).count == 12  # ids never collide
    points = await scroll_points(client, "c", "t")
    fakes = [p for p in points if str(payload(p)["document_id"]).startswith("distractor-")]
    assert len(fakes) == 9
    by_name = {f"n{i}": i for i in range(3)}
    for p in fakes:
        i = by_name[str(payload(p)["document_name"]).split("-", 2)[2]]
        assert payload(p)["tenant_id"] == "t"
        assert vectors(p)["bm25"].indices == [i, 10]  # no encoder given: kept as it was
        dense = np.asarray(vectors(p)["dense"])
        assert float(dense @ real[i]) == pytest.approx(1 / np.sqrt(2), abs=1e-3)
    # With the store's encoder, the sparse vector is re-made from the shortened text.
    await add_distractors(
        client, "c", "t", sources, 1, start=9, sparse=lambda text: Words(text), seed=5
    )
    (last,) = [
        p
        for p in await scroll_points(client, "c", "t")
        if payload(p)["document_id"] == "distractor-3"
    ]
    assert vectors(last)["bm25"].indices == [len(str(payload(last)["text"]).split())]
    await client.close()


def payload(point: models.Record) -> dict[str, Any]:
    assert point.payload is not None
    return point.payload


def vectors(point: models.Record) -> dict[str, Any]:
    assert isinstance(point.vector, dict)
    return point.vector


class Words:
    """A sparse encoder stand-in: one term, the text's word count."""

    def __init__(self, text: str) -> None:
        self.indices = [len(text.split())]
        self.values = [1.0]
