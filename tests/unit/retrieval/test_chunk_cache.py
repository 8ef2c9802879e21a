"""The chunk cache's bookkeeping with real FAISS and synthetic unit vectors (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.cache_index import QueryIndex, resolve_device
from retrieval.cache_rank import rank
from retrieval.chunk_cache import Admission, ChunkCache
from retrieval.sparse import Bm25Encoder
from retrieval.types import ChunkHit, Fusion, SearchMode

DIM = 16
TENANT = "t1"
SCOPE = (TENANT, "docs", SearchMode.DENSE)
_rng = np.random.default_rng(7)


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def answers(n: int, document_id: str = "doc", prefix: str = "c") -> list[Admission]:
    encoder = Bm25Encoder()
    out = []
    for i in range(n):
        text = f"chunk {prefix}{i} about refunds and parcels"
        hit = ChunkHit(f"{prefix}{i}", document_id, f"{document_id}.txt", "docs", i, text, 0.0)
        vector = unit(_rng.standard_normal(DIM))
        terms = encoder.encode_document(text).as_dict()
        out.append(Admission(hit, vector, terms, np.arange(10, dtype=np.int32)))
    return out


def test_a_close_query_finds_the_candidates_and_a_far_one_does_not() -> None:
    cache = ChunkCache(DIM, 1 << 20)
    query = unit(_rng.standard_normal(DIM))
    assert cache.admit(SCOPE, query, answers(5), limit=5, generation=0)
    near = unit(query + 0.05 * _rng.standard_normal(DIM))
    found = cache.lookup(SCOPE, near, threshold=0.9, min_limit=5)
    assert found is not None
    assert [c.hit.chunk_id for c in found] == [f"c{i}" for i in range(5)]
    assert cache.lookup(SCOPE, -query, threshold=0.9, min_limit=5) is None
    # Another tenant, collection or mode never sees them.
    for scope in (("t2", "docs", SearchMode.DENSE), (TENANT, None, SearchMode.DENSE),
                  (TENANT, "docs", SearchMode.HYBRID)):  # fmt: skip
        assert cache.lookup(scope, query, threshold=0.9, min_limit=5) is None


def test_a_narrower_candidate_set_is_not_reused_for_a_wider_search() -> None:
    cache = ChunkCache(DIM, 1 << 20)
    query = unit(_rng.standard_normal(DIM))
    cache.admit(SCOPE, query, answers(5), limit=5, generation=0)
    assert cache.lookup(SCOPE, query, threshold=0.9, min_limit=10) is None
    # A complete answer (fewer than asked: every match there is) serves any width.
    cache.admit(SCOPE, query, answers(3, prefix="d"), limit=20, generation=0)
    assert cache.lookup(SCOPE, query, threshold=0.9, min_limit=50) is not None


def test_the_byte_budget_evicts_least_recently_used_and_counts_it() -> None:
    probe = ChunkCache(DIM, 1 << 30)
    probe.admit(SCOPE, unit(_rng.standard_normal(DIM)), answers(4, prefix="p"), limit=4,
                generation=0)  # fmt: skip
    one_entry = probe.stats().bytes
    cache = ChunkCache(DIM, int(one_entry * 2.5))
    queries = [unit(_rng.standard_normal(DIM)) for _ in range(3)]
    for i, query in enumerate(queries):
        cache.admit(SCOPE, query, answers(4, prefix=f"q{i}-"), limit=4, generation=0)
        if i == 1:  # touch the first, so the second is the least recently used
            assert cache.lookup(SCOPE, queries[0], threshold=0.99, min_limit=4) is not None
    stats = cache.stats()
    assert stats.bytes <= int(one_entry * 2.5)
    assert stats.queries == 2
    assert stats.evictions == 1 + 4  # one query and the four chunks only it held
    assert cache.lookup(SCOPE, queries[1], threshold=0.99, min_limit=4) is None
    assert cache.lookup(SCOPE, queries[0], threshold=0.99, min_limit=4) is not None


def test_an_answer_fetched_before_an_invalidation_is_not_admitted() -> None:
    """Guards the race: a store query that started before a delete returned must not
    bring the deleted chunks back into the cache afterwards."""
    cache = ChunkCache(DIM, 1 << 20)
    before = cache.generation(TENANT, "docs")
    cache.invalidate(TENANT, "docs", "doc")
    query = unit(_rng.standard_normal(DIM))
    assert not cache.admit(SCOPE, query, answers(3), limit=3, generation=before)
    assert cache.lookup(SCOPE, query, threshold=0.5, min_limit=3) is None
    # The all-collections scope moved on too.
    assert cache.generation(TENANT, None) != 0


def test_invalidation_drops_the_collection_and_spares_other_collections() -> None:
    cache = ChunkCache(DIM, 1 << 20)
    query = unit(_rng.standard_normal(DIM))
    other = (TENANT, "other", SearchMode.DENSE)
    cache.admit(SCOPE, query, answers(3), limit=3, generation=0)
    cache.admit(other, query, answers(3, document_id="kept", prefix="k"), limit=3, generation=0)
    cache.invalidate(TENANT, "docs", "doc")
    assert cache.lookup(SCOPE, query, threshold=0.5, min_limit=3) is None
    assert cache.lookup(other, query, threshold=0.5, min_limit=3) is not None
    assert cache.stats().entries == 3


def test_entries_expire_after_their_ttl() -> None:
    now = [0.0]
    cache = ChunkCache(DIM, 1 << 20, ttl_s=10, clock=lambda: now[0])
    query = unit(_rng.standard_normal(DIM))
    cache.admit(SCOPE, query, answers(2), limit=2, generation=0)
    now[0] = 11.0
    assert cache.lookup(SCOPE, query, threshold=0.5, min_limit=2) is None
    assert cache.stats().queries == 0


def test_query_index_skips_tombstones_and_compacts() -> None:
    index = QueryIndex(DIM)
    vectors = [unit(_rng.standard_normal(DIM)) for _ in range(40)]
    for i, vector in enumerate(vectors):
        index.add(i, vector)
    for i in range(30):
        index.remove(i)
    assert len(index) == 10
    found = index.nearest(vectors[35])
    assert found is not None
    assert found[0] == 35
    assert found[1] == pytest.approx(1.0, abs=1e-5)
    assert index.nearest(vectors[3]) is not None  # some live neighbour, never a removed one
    assert index.nearest(vectors[3])[0] >= 30  # type: ignore[index]


def test_dense_ranking_is_exact_cosine_order() -> None:
    cache = ChunkCache(DIM, 1 << 20)
    query = unit(_rng.standard_normal(DIM))
    cache.admit(SCOPE, query, answers(8), limit=8, generation=0)
    found = cache.lookup(SCOPE, query, threshold=0.9, min_limit=8)
    assert found is not None
    hits = rank(query, [], found, mode=SearchMode.DENSE, fusion=Fusion.RRF, k=3, score_floor=None)
    expected = sorted(found, key=lambda c: -float(c.vector @ query))[:3]
    assert [h.chunk_id for h in hits] == [c.hit.chunk_id for c in expected]
    assert [h.score for h in hits] == pytest.approx([float(c.vector @ query) for c in expected])
    floor = hits[1].score
    kept = rank(query, [], found, mode=SearchMode.DENSE, fusion=Fusion.RRF, k=3, score_floor=floor)
    assert len(kept) == 2


def test_the_cpu_is_used_without_a_gpu() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "gpu")


HYBRID = (TENANT, "docs", SearchMode.HYBRID)


def test_the_idf_table_follows_the_chunks_the_node_holds() -> None:
    """The hit path's IDF: Qdrant's formula over the tenant's held chunks, kept exact
    as chunks are admitted, released and invalidated."""
    encoder = Bm25Encoder()
    cache = ChunkCache(DIM, 1 << 20)
    refund, chunk = encoder.encode_query("refunds chunk").indices
    cache.admit(HYBRID, unit(_rng.standard_normal(DIM)), answers(4), limit=4, generation=0)
    other = answers(4, document_id="other", prefix="o")
    other[0] = Admission(other[0].hit, other[0].vector, {chunk: 1.0}, other[0].token_ids)
    elsewhere = (TENANT, "other", SearchMode.HYBRID)
    cache.admit(elsewhere, unit(_rng.standard_normal(DIM)), other, limit=4, generation=0)
    # 8 chunks; "refunds" in 7 of them, "chunk" in all 8; another tenant sees nothing.
    idf = cache.idf(TENANT, [refund, chunk, 12345])
    assert idf[refund] == pytest.approx(np.log((8 - 7 + 0.5) / (7 + 0.5) + 1))
    assert idf[chunk] == pytest.approx(np.log(0.5 / 8.5 + 1))
    assert 12345 not in idf
    assert cache.idf("t2", [refund]) == {}
    cache.invalidate(TENANT, "other", "other")  # releases the other collection's 4
    assert cache.idf(TENANT, [refund])[refund] == pytest.approx(np.log(0.5 / 4.5 + 1))
    cache.clear(TENANT)
    assert cache.idf(TENANT, [refund]) == {}
    assert cache.stats().entries == 0


def test_a_hit_is_refused_when_the_new_query_adds_a_rare_or_unknown_word() -> None:
    """A word the recent query lacked can make Qdrant's sparse leg rank chunks outside
    the candidates first: only words the node knows to be common may be added."""
    encoder = Bm25Encoder()
    cache = ChunkCache(DIM, 1 << 20)
    query = unit(_rng.standard_normal(DIM))
    asked = encoder.encode_query("refunds parcels").indices
    held = answers(6, prefix="h")
    rare = encoder.encode_query("xylophone").indices[0]
    held[0] = Admission(held[0].hit, held[0].vector, {**held[0].terms, rare: 1.0},
                        held[0].token_ids)  # fmt: skip
    cache.admit(HYBRID, query, held, limit=6, generation=0, terms=asked)

    def look(text: str, max_idf: float = 4.0) -> object:
        terms = encoder.encode_query(text).indices
        return cache.lookup(HYBRID, query, threshold=0.9, min_limit=6, terms=terms,
                            max_new_term_idf=max_idf)  # fmt: skip

    assert look("refunds parcels") is not None
    assert look("parcels") is not None  # fewer words: nothing new
    assert look("about refunds and parcels") is not None  # in every held chunk: idf ~0.08
    assert look("refunds parcels zebra") is None  # in no held chunk: unknown
    assert look("refunds parcels xylophone") is not None  # 1 of 6: idf ~1.5
    assert look("refunds parcels xylophone", max_idf=1.0) is None
    # Dense lookups (no terms) are not checked.
    assert cache.lookup(HYBRID, query, threshold=0.9, min_limit=6) is not None


def test_hybrid_ranking_cuts_each_leg_like_qdrants_prefetch_limit() -> None:
    """A chunk outside a leg's first ``legs`` gets nothing from that leg, as in Qdrant."""
    encoder = Bm25Encoder()
    query = unit(_rng.standard_normal(DIM))
    cache = ChunkCache(DIM, 1 << 20)
    cache.admit(HYBRID, query, answers(6), limit=6, generation=0)
    found = cache.lookup(HYBRID, query, threshold=0.9, min_limit=6)
    assert found is not None
    terms = encoder.encode_query("c3").indices  # only chunk c3 holds the word
    dense_first = max(found, key=lambda c: float(c.vector @ query)).hit.chunk_id
    args = {"mode": SearchMode.HYBRID, "fusion": Fusion.RRF, "k": 6, "score_floor": None}
    full = rank(query, terms, found, **args)  # type: ignore[arg-type]
    cut = rank(query, terms, found, legs=1, idf={terms[0]: 1.0}, **args)  # type: ignore[arg-type]
    assert len(full) == 6
    # With one-chunk legs only each leg's first survives: the sparse leg's c3 and the
    # dense leg's best (the same chunk when c3 is also the nearest).
    assert {h.chunk_id for h in cut} == {"c3", dense_first}
