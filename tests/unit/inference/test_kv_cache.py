"""The KV cache zeroes what attention reads for the first time, never written data."""

from __future__ import annotations

import torch

from inference.kv_cache import KVCache


def _cache() -> KVCache:
    cache = KVCache(1, 2, 1, 16, 2, torch.float32, torch.device("cpu"))
    # Memory handed back by the allocator may hold any bits: NaN here.
    cache.keys.fill_(float("nan"))
    cache.values.fill_(float("nan"))
    return cache


def test_ensure_finite_zeroes_unwritten_positions_and_keeps_written_ones() -> None:
    cache = _cache()
    block = torch.ones(2, 1, 1, 5, 2)
    cache.write(1, 0, block)  # slot 1: positions 0 .. 4 written
    cache.mark_written(0, 0, 3)  # slot 0: positions 0 .. 2 about to be written
    cache.keys[:, 0, :, :3] = 7.0
    cache.ensure_finite(2, 8)
    assert torch.equal(cache.keys[0, 0, 0, :3], torch.full((3, 2), 7.0))
    assert torch.equal(cache.keys[0, 1, 0, :5], torch.ones(5, 2))
    assert torch.equal(cache.keys[0, :, 0, 5:8], torch.zeros(2, 3, 2))
    assert torch.equal(cache.values[0, 0, 0, 3:8], torch.zeros(5, 2))
    assert bool(cache.keys[0, :, 0, 8:].isnan().all())  # never read: left alone
    # Zeroed once: data written there later survives the next step's check.
    cache.keys[:, 0, :, 3:8] = 5.0
    cache.ensure_finite(2, 8)
    assert torch.equal(cache.keys[0, 0, 0, 3:8], torch.full((5, 2), 5.0))


def test_a_write_above_a_gap_is_not_counted_as_finite() -> None:
    cache = _cache()
    cache.mark_written(0, 4, 6)  # positions 0 .. 3 were never written
    cache.ensure_finite(1, 6)
    assert torch.equal(cache.keys[0, 0, 0, :6], torch.zeros(6, 2))
