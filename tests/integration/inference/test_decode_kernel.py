"""The real model's steps with decode attention in the C kernel and in torch's SDPA."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import torch

from inference.batch_forward import LlamaBatchForward
from inference.decode_attention import load_decode_attention
from inference.step_batch import StepBatch

if TYPE_CHECKING:
    from pathlib import Path

    from inference.loader import LoadedModel

pytestmark = pytest.mark.model


def _steps(forward: LlamaBatchForward, prompts: list[list[int]]) -> list[torch.Tensor]:
    """Prefill two prompts, then steps mixing their decode rows (slots out of order) with
    a third prompt's chunks; every step's logits."""
    first = StepBatch()
    for slot in (0, 1):
        first.logit_rows.append(first.add_prefill(slot, prompts[slot], 0))
    logits = [forward.forward(first)]
    positions = [len(prompts[0]), len(prompts[1])]
    third = prompts[2]
    for step in range(3):
        batch = StepBatch()
        for slot in (1, 0):
            batch.logit_rows.append(batch.add_decode(slot, 100 + step, positions[slot]))
            positions[slot] += 1
        chunk = third[step * 8 : (step + 1) * 8]
        batch.logit_rows.append(batch.add_prefill(2, chunk, step * 8))
        logits.append(forward.forward(batch))
    return logits


def test_kernel_steps_match_sdpa_steps(loaded_fp32: LoadedModel, model_cache_dir: Path) -> None:
    kernel = load_decode_attention("kernel", model_cache_dir, loaded_fp32.device)
    assert kernel is not None
    tokenizer = loaded_fp32.tokenizer
    texts = [
        "The capital of France is",
        "Rain falls when " * 9,
        "List three colors of the sea and say why each matters. " * 3,
    ]
    prompts = [tokenizer(t)["input_ids"] for t in texts]
    ours = LlamaBatchForward.with_cache(loaded_fp32, 3, 128, "model", kernel)
    theirs = LlamaBatchForward.with_cache(loaded_fp32, 3, 128, "model", None)
    for mine, reference in zip(_steps(ours, prompts), _steps(theirs, prompts), strict=True):
        assert torch.allclose(mine, reference, atol=2e-3, rtol=1e-3)
        assert torch.equal(mine.argmax(-1), reference.argmax(-1))
