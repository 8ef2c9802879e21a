"""Batched decode over a KV cache whose memory held other bits (NaN) before: a short
sequence beside a long one reads positions nobody wrote, masked, and must stay exact."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import torch

from inference.batch_forward import LlamaBatchForward
from inference.kv_cache import KVCache
from inference.step_batch import StepBatch

if TYPE_CHECKING:
    from inference.loader import LoadedModel

pytestmark = pytest.mark.model


def _decode_pair(loaded: LoadedModel, garbage: float) -> torch.Tensor:
    layers, kv_heads, head_dim = LlamaBatchForward.cache_geometry(loaded.model)
    cache = KVCache(layers, 2, kv_heads, 128, head_dim, torch.float32, torch.device("cpu"))
    cache.keys.fill_(garbage)
    cache.values.fill_(garbage)
    forward = LlamaBatchForward(loaded.model, cache)
    tokenizer = loaded.tokenizer
    long = tokenizer.encode("The batching engine shares every forward pass between requests.")
    short = tokenizer.encode("Hi")
    batch = StepBatch()
    batch.add_prefill(0, long, 0)
    batch.logit_rows.append(batch.add_prefill(1, short, 0))
    forward.forward(batch)
    step = StepBatch()
    step.logit_rows.append(step.add_decode(0, 42, len(long)))
    step.logit_rows.append(step.add_decode(1, 42, len(short)))
    return forward.forward(step)


def test_unwritten_nan_positions_do_not_reach_a_shorter_sequences_logits(
    loaded_fp32: LoadedModel,
) -> None:
    clean = _decode_pair(loaded_fp32, 0.0)
    dirty = _decode_pair(loaded_fp32, float("nan"))
    assert bool(torch.isfinite(dirty).all())
    assert torch.equal(dirty, clean)
