"""4-bit decode projections: Q4_1-style groups, a row's result its own, INT8 for larger steps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from inference.int4_linear import GROUP, MAX_ROWS, Int4Projections, available, quantize
from inference.int8_linear import Int8Projections


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).norm() / want.float().norm())


def _dequantized(weight: torch.Tensor) -> torch.Tensor:
    """What the 4-bit codes stand for, computed here from the definition (Q4_1)."""
    out_features, in_features = weight.shape
    w = weight.reshape(out_features, in_features // GROUP, GROUP)
    low, high = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
    scale = (high - low) / 15
    return (torch.round((w - low) / scale).clamp(0, 15) * scale + low).reshape(weight.shape)


@pytest.fixture
def weight() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(96, 128) / 8


def _full(weight: torch.Tensor) -> object:
    return lambda x: F.linear(x, weight)


def test_this_torch_has_the_kernel() -> None:
    assert available()


def test_a_decode_row_is_the_product_with_the_dequantized_weight(weight: torch.Tensor) -> None:
    project = Int4Projections().linear(weight, _full(weight))  # type: ignore[arg-type]
    x = torch.randn(2, 128)
    got = project(x, 2)
    assert got.shape == (2, 96)
    assert got.dtype == torch.float32
    # the kernel computes Q4_1's dequantized weight, in bf16 (to its rounding) ...
    want = F.linear(x.bfloat16().float(), _dequantized(weight))
    assert _relative_error(got, want) < 1e-2
    # ... which is 4 bits: about 8 % off the float product on random weights
    assert 0.02 < _relative_error(got, F.linear(x, weight)) < 0.15


def test_a_rows_result_does_not_depend_on_the_rows_beside_it(weight: torch.Tensor) -> None:
    project = Int4Projections().linear(weight, _full(weight))  # type: ignore[arg-type]
    x = torch.randn(MAX_ROWS, 128)
    together = project(x, MAX_ROWS)
    for row in range(MAX_ROWS):
        assert torch.equal(project(x[row : row + 1], 1)[0], together[row])


def test_larger_steps_take_the_int8_copies_and_prompt_rows_the_model(weight: torch.Tensor) -> None:
    int4 = Int4Projections(reduce_range=False).linear(weight, _full(weight))  # type: ignore[arg-type]
    int8 = Int8Projections(reduce_range=False).linear(weight, _full(weight))  # type: ignore[arg-type]
    x = torch.randn(MAX_ROWS + 3, 128)
    assert torch.equal(int4(x, MAX_ROWS + 1), int8(x, MAX_ROWS + 1))
    assert not torch.equal(int4(x[:MAX_ROWS], MAX_ROWS), int8(x[:MAX_ROWS], MAX_ROWS))
    assert torch.equal(int4(x, 0), F.linear(x, weight))
    mixed = int4(x, 2)
    assert torch.equal(mixed[2:], F.linear(x[2:], weight))


def test_bf16_activations_come_back_in_bf16(weight: torch.Tensor) -> None:
    w = weight.to(torch.bfloat16)
    project = Int4Projections().linear(w, _full(w))  # type: ignore[arg-type]
    x = torch.randn(1, 128, dtype=torch.bfloat16)
    out = project(x, 1)
    assert out.dtype == torch.bfloat16
    # the scales and offsets are held in bf16 too: a little further off
    assert _relative_error(out, F.linear(x.float(), _dequantized(weight))) < 0.05


def test_widths_that_are_not_whole_groups_stay_on_int8() -> None:
    torch.manual_seed(2)
    odd = torch.randn(64, GROUP + 8)
    assert quantize(odd) is None
    projections = Int4Projections(reduce_range=False)
    project = projections.linear(odd, _full(odd))  # type: ignore[arg-type]
    want = Int8Projections(reduce_range=False).linear(odd, _full(odd))  # type: ignore[arg-type]
    x = torch.randn(1, GROUP + 8)
    assert torch.equal(project(x, 1), want(x, 1))
    assert projections.int4_bytes == 0
    assert projections.bytes == odd.numel()


def test_the_held_bytes_are_counted(weight: torch.Tensor) -> None:
    projections = Int4Projections()
    projections.linear(weight, _full(weight))  # type: ignore[arg-type]
    codes = weight.numel() // 2
    pairs = 2 * (weight.shape[1] // GROUP) * weight.shape[0] * 2  # bf16 scales, fp32 weight
    assert projections.int4_bytes == codes + pairs
    assert projections.bytes == weight.numel()
