"""The block-hashed prefix cache: chain hashing, longest-prefix match, LRU by bytes."""

from __future__ import annotations

import torch

from inference.prefix_cache import PrefixCache


def _block(value: float, nbytes: int = 64) -> torch.Tensor:
    return torch.full((nbytes // 4,), value, dtype=torch.float32)


def _fill(cache: PrefixCache, tokens: list[int]) -> list[int]:
    hashes = cache.block_hashes(tokens)
    for i, key in enumerate(hashes):
        start = i * cache.block_size
        cache.insert(key, tokens[start : start + cache.block_size], _block(float(i)))
    return hashes


def test_only_full_blocks_are_hashed() -> None:
    cache = PrefixCache(block_size=4, capacity_bytes=1 << 20)
    assert len(cache.block_hashes(list(range(11)))) == 2
    assert len(cache.block_hashes(list(range(12)))) == 3
    assert len(cache.block_hashes(list(range(12)), max_blocks=1)) == 1


def test_hash_of_a_block_depends_on_everything_before_it() -> None:
    cache = PrefixCache(block_size=4, capacity_bytes=1 << 20)
    first = cache.block_hashes([1, 2, 3, 4, 5, 6, 7, 8])
    second = cache.block_hashes([9, 2, 3, 4, 5, 6, 7, 8])
    assert first[1] != second[1]
    assert cache.block_hashes([1, 2, 3, 4, 5, 6, 7, 8, 0]) == first


def test_match_returns_the_longest_cached_prefix() -> None:
    cache = PrefixCache(block_size=4, capacity_bytes=1 << 20)
    _fill(cache, list(range(12)))
    query = [*range(8), 99, 99, 99, 99, 5]
    blocks = cache.match(query, cache.block_hashes(query))
    assert [float(b[0]) for b in blocks] == [0.0, 1.0]
    other = [7, *range(1, 12)]
    assert cache.match(other, cache.block_hashes(other)) == []


def test_lru_eviction_keeps_within_capacity() -> None:
    cache = PrefixCache(block_size=2, capacity_bytes=3 * 64)
    old = _fill(cache, [1, 2, 3, 4])
    assert cache.nbytes == 128
    # Touch the first block of the old prompt so its second block is the least recent.
    cache.match([1, 2], old[:1])
    _fill(cache, [9, 9, 8, 8])
    assert cache.nbytes <= 3 * 64
    assert old[0] in cache
    assert old[1] not in cache


def test_oversized_block_and_disabled_cache_store_nothing() -> None:
    cache = PrefixCache(block_size=2, capacity_bytes=0)
    _fill(cache, [1, 2, 3, 4])
    assert len(cache) == 0
    assert cache.match([1, 2], cache.block_hashes([1, 2])) == []
