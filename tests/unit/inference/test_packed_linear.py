"""Packed linear layers give the same bits as ``F.linear`` for decode-sized batches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from inference import packed_linear
from inference.packed_linear import linear, native_bf16, split_linear


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


def test_stacked_projections_split_back_into_each_layers_output() -> None:
    torch.manual_seed(0)
    weights = [torch.randn(n, 576, dtype=torch.bfloat16) for n in (576, 192, 192)]
    x = torch.randn(4, 576, dtype=torch.bfloat16)
    outputs = split_linear(weights)(x)
    assert [tuple(o.shape) for o in outputs] == [(4, 576), (4, 192), (4, 192)]
    for out, weight in zip(outputs, weights, strict=True):
        assert torch.equal(out, F.linear(x, weight))
    plain = split_linear([w.float() for w in weights])(x.float())
    for out, weight in zip(plain, weights, strict=True):
        assert torch.equal(out, F.linear(x.float(), weight.float()))


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
