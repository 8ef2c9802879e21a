"""The real model's prompt chunks with attention in the C prefill kernel and in SDPA."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import torch

from inference.batch_forward import LlamaBatchForward
from inference.loader import load_model
from inference.prefill_attention import load_prefill_attention
from inference.step_batch import StepBatch

if TYPE_CHECKING:
    from pathlib import Path

    from inference.loader import LoadedModel
    from inference.prefill_attention import PrefillAttention

pytestmark = pytest.mark.model

TEXT = (
    "The batching engine shares every forward pass between requests. A prompt is "
    "prefilled in chunks beside the decoding rows, and its keys and values stay in "
    "the slot's cache until the answer ends. "
)


def _prefill(
    loaded: LoadedModel, kernel: PrefillAttention | None, ids: list[int], cuts: list[int]
) -> torch.Tensor:
    """Prefill ``ids`` into slot 1 in chunks ending at ``cuts``, with a decode row of
    slot 0 beside each later chunk; the prompt's last logits."""
    forward = LlamaBatchForward.with_cache(loaded, 2, 256, "model", None, kernel)
    first = StepBatch()
    first.logit_rows.append(first.add_prefill(0, ids[:5], 0))
    forward.forward(first)
    logits, start, position = torch.empty(0), 0, 5
    for end in [*cuts, len(ids)]:
        batch = StepBatch()
        batch.add_decode(0, 42, position)
        position += 1
        batch.logit_rows.append(batch.add_prefill(1, ids[start:end], start))
        logits = forward.forward(batch)[0]
        start = end
    return logits


def test_kernel_chunks_match_sdpa_chunks(loaded_fp32: LoadedModel, model_cache_dir: Path) -> None:
    kernel = load_prefill_attention("kernel", model_cache_dir, loaded_fp32.device)
    assert kernel is not None
    ids = loaded_fp32.tokenizer(TEXT * 3)["input_ids"]
    assert len(ids) > 100
    for cuts in ([], [40], [17, 64, 90]):
        ours = _prefill(loaded_fp32, kernel, ids, cuts)
        theirs = _prefill(loaded_fp32, None, ids, cuts)
        assert torch.allclose(ours, theirs, atol=2e-3, rtol=1e-3)
        assert int(ours.argmax()) == int(theirs.argmax())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_with_the_kernel_a_prompt_cut_anywhere_gives_the_same_logits(
    loaded_fp32: LoadedModel, model_cache_dir: Path, dtype: str
) -> None:
    """The kernel's tiles follow the sequence's positions and each projection row is
    computed on its own, so where chunks (or a reused cached prefix) end changes no bit.
    SDPA's blocks follow the chunk: in bf16 its logits moved by ~0.26 here. (A float32
    step of two rows, a one-token chunk beside a decode row, takes another product
    kernel than a larger one; the packed bf16 products do not.)"""
    loaded = loaded_fp32 if dtype == "float32" else load_model(None, model_cache_dir, dtype)
    kernel = load_prefill_attention("kernel", model_cache_dir, loaded.device)
    ids = loaded.tokenizer(TEXT * 3)["input_ids"]
    whole = _prefill(loaded, kernel, ids, [])
    cuts_tried = [[40], [17, 64, 90], [3, 100]] + ([[60, 61]] if dtype == "bfloat16" else [])
    for cuts in cuts_tried:
        assert torch.equal(_prefill(loaded, kernel, ids, cuts), whole)
