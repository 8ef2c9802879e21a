"""INT8 decode projections: decode rows on INT8 weights, prompt rows untouched."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from inference.batch_forward import _leading_decode_rows
from inference.errors import ModelLoadError
from inference.int4_linear import decode_projections
from inference.int8_linear import Int8Projections, available
from kernel.cpu import cpu_flags


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).norm() / want.float().norm())


@pytest.fixture
def weight() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(96, 64) / 8


def test_this_torch_has_the_kernels() -> None:
    assert available()


@pytest.mark.parametrize("reduce_range", [True, None])
def test_decode_rows_are_close_to_the_float_product(
    weight: torch.Tensor, reduce_range: bool | None
) -> None:
    # NOTE: None is this CPU's own choice; 8-bit activations (False) are only as
    # close where VNNI sums in int32 (without it pairs saturate in int16: 0.075 here).
    project = Int8Projections(reduce_range).linear(weight, lambda x: F.linear(x, weight))
    x = torch.randn(3, 64)
    got = project(x, 3)
    assert got.shape == (3, 96)
    assert not torch.equal(got, F.linear(x, weight))  # it really is another product
    assert _relative_error(got, F.linear(x, weight)) < 0.03


def test_activations_keep_8_bits_only_where_the_cpu_has_vnni() -> None:
    vnni = bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})
    assert Int8Projections()._reduce is (not vnni)


def test_prompt_rows_run_on_the_float_weights_bit_for_bit(weight: torch.Tensor) -> None:
    project = Int8Projections().linear(weight, lambda x: F.linear(x, weight))
    x = torch.randn(5, 64)
    assert torch.equal(project(x, 0), F.linear(x, weight))
    mixed = project(x, 2)
    assert torch.equal(mixed[2:], F.linear(x[2:], weight))
    assert torch.equal(mixed[:2], project(x[:2], 2))


def test_bf16_activations_come_back_in_bf16(weight: torch.Tensor) -> None:
    w = weight.to(torch.bfloat16)
    project = Int8Projections().linear(w, lambda x: F.linear(x, w))
    x = torch.randn(2, 64, dtype=torch.bfloat16)
    out = project(x, 2)
    assert out.dtype == torch.bfloat16
    assert _relative_error(out, F.linear(x, w)) < 0.03


def test_stacked_residual_and_gated_projections_split_rows_the_same_way() -> None:
    torch.manual_seed(1)
    weights = [torch.randn(n, 64) / 8 for n in (64, 16, 16)]
    gate, up = torch.randn(48, 64) / 8, torch.randn(48, 64) / 8
    projections = Int8Projections()
    stacked = projections.stacked(
        weights, lambda x: torch.cat([F.linear(x, w) for w in weights], -1)
    )
    residual = projections.residual(gate.T.contiguous(), lambda x, r: r + F.linear(x, gate.T))
    gated = projections.gated(gate, up, lambda x: F.silu(F.linear(x, gate)) * F.linear(x, up))
    x, r = torch.randn(4, 64), torch.randn(4, 64)
    h = torch.randn(4, 48)
    # NOTE: the float reference is taken on the same rows the projection gives the
    # float weights: some CPUs' kernels round a row differently in a call of 4 rows
    # than of 3 (the AMD EPYC's float32 products do).
    wants = {
        "stacked": (
            lambda n: stacked(x, n),
            lambda rows: torch.cat([F.linear(x[rows], w) for w in weights], -1),
        ),
        "residual": (lambda n: residual(h, r, n), lambda rows: r[rows] + F.linear(h[rows], gate.T)),
        "gated": (
            lambda n: gated(x, n),
            lambda rows: F.silu(F.linear(x[rows], gate)) * F.linear(x[rows], up),
        ),
    }
    for name, (project, want) in wants.items():
        for n_decode in (0, 1, 4):
            got = project(n_decode)
            assert got.shape == want(slice(None)).shape, name
            assert torch.equal(got[n_decode:], want(slice(n_decode, None))), name
            if n_decode:
                decode = want(slice(None))[:n_decode]
                assert _relative_error(got[:n_decode], decode) < 0.05, name
    assert projections.bytes == 96 * 64 + 48 * 64 + 96 * 64


def test_only_leading_decode_rows_take_the_int8_head() -> None:
    assert _leading_decode_rows([0, 1, 2, 7], 3) == 3
    assert _leading_decode_rows([7, 9], 3) == 0
    assert _leading_decode_rows([0, 1], 2) == 2
    assert _leading_decode_rows([7, 0], 3) == 0  # out of order: nothing on INT8


@pytest.mark.parametrize("weights", ["int8", "int4"])
def test_quantized_decode_weights_refuse_a_gpu(weights: str) -> None:
    with pytest.raises(ModelLoadError, match="CPU only"):
        decode_projections(torch.device("cuda"), weights)
