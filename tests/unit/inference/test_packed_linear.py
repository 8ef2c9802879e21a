"""Packed linear layers give the same bits as ``F.linear`` for decode-sized batches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from inference import packed_linear
from inference.packed_linear import (
    gated_linear,
    linear,
    native_bf16,
    residual_linear,
    stacked_linear,
)


@pytest.mark.parametrize("rows", [1, 2, 3, 8, 32])
def test_bf16_weights_are_exact_and_packed_where_the_cpu_has_bf16(rows: int) -> None:
    """Guards the packed path's promise: the same bits as ``F.linear`` (on a CPU
    without native bf16, packed kernels rounded 1-3 rows differently)."""
    torch.manual_seed(rows)
    weight = torch.randn(384, 576, dtype=torch.bfloat16)
    x = torch.randn(rows, 576, dtype=torch.bfloat16)
    layer = linear(weight)
    if native_bf16():
        assert layer.__name__ == "packed_linear"
    assert torch.equal(layer(x), F.linear(x, weight))


def test_stacked_projections_give_each_layers_output_side_by_side() -> None:
    torch.manual_seed(0)
    weights = [torch.randn(n, 576, dtype=torch.bfloat16) for n in (576, 192, 192)]
    x = torch.randn(4, 576, dtype=torch.bfloat16)
    for dtype in (torch.bfloat16, torch.float32):
        typed = [w.to(dtype) for w in weights]
        stacked = stacked_linear(typed)(x.to(dtype))
        assert stacked.shape == (4, 960)
        outputs = stacked.split([576, 192, 192], dim=-1)
        for out, weight in zip(outputs, typed, strict=True):
            assert torch.equal(out, F.linear(x.to(dtype), weight))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_fused_residual_and_gated_products_agree_with_separate_ops(dtype: torch.dtype) -> None:
    """bf16 fuses the add, SiLU and product into oneDNN's calls (one rounding, not
    several: a few ulps apart); float32 runs the separate ops, bit for bit."""
    torch.manual_seed(1)
    gate, up = (torch.randn(1536, 576, dtype=dtype) / 24 for _ in range(2))
    down = torch.randn(576, 1536, dtype=dtype) / 40
    for rows in (1, 3, 256):
        x = torch.randn(rows, 576, dtype=dtype)
        residual = torch.randn(rows, 576, dtype=dtype)
        gated = gated_linear(gate, up)(x)
        want = F.silu(F.linear(x, gate)) * F.linear(x, up)
        added = residual_linear(down)(gated, residual)
        want_added = residual + F.linear(gated, down)
        if dtype == torch.float32 or not native_bf16():
            assert torch.equal(gated, want)
            assert torch.equal(added, want_added)
        else:
            assert torch.allclose(gated, want, rtol=2**-6, atol=2**-6)
            assert torch.allclose(added, want_added, rtol=2**-6, atol=2**-6)
            assert not torch.equal(gated, want)  # really the fused kernel


def test_float32_weights_and_failed_packing_stay_on_f_linear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    weight = torch.randn(64, 32)
    assert linear(weight).__name__ == "plain"
    assert linear(weight.bfloat16(), pack=False).__name__ == "plain"

    def refuse(*args: object) -> None:
        raise RuntimeError("no oneDNN here")

    monkeypatch.setattr(packed_linear, "_reorder", refuse)
    x = torch.randn(2, 32, dtype=torch.bfloat16)
    fallback = linear(weight.bfloat16())
    assert fallback.__name__ == "plain"
    assert torch.equal(fallback(x), F.linear(x, weight.bfloat16()))
