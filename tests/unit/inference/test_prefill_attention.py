"""The prefill attention kernel: built with the machine's compiler, checked against
float64 and SDPA, and the same bits however a prompt is cut into chunks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import structlog
import torch
import torch.nn.functional as F

from inference.errors import ModelLoadError
from inference.prefill_attention import PrefillAttention, load_prefill_attention

if TYPE_CHECKING:
    from pathlib import Path

KV_HEADS, REP, DIM, SLOTS, MAX_LEN = 3, 3, 64, 4, 320
HEADS = KV_HEADS * REP


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> PrefillAttention:
    loaded = load_prefill_attention(
        "kernel", tmp_path_factory.mktemp("models"), torch.device("cpu")
    )
    assert loaded is not None
    return loaded


def _cache(
    dtype: torch.dtype, kv_heads: int = KV_HEADS, dim: int = DIM
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shape = (SLOTS, kv_heads, MAX_LEN, dim)
    return (
        torch.randn(shape, generator=generator).to(dtype),
        torch.randn(shape, generator=generator).to(dtype),
    )


def _queries(length: int, heads: int, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """``[length, heads, dim]`` rows strided like the engine's (a view of q|k)."""
    generator = torch.Generator().manual_seed(1)
    both = torch.randn(length, heads + 3, dim, generator=generator) * 2
    return both.to(dtype)[:, :heads]


def _reference(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, slot: int, start: int
) -> torch.Tensor:
    """Causal attention of rows at ``start ..`` in float64, ``[length, heads, dim]``."""
    length, end = q.shape[0], start + q.shape[0]
    visible = torch.arange(end)[None, :] <= torch.arange(start, end)[:, None]
    out = F.scaled_dot_product_attention(
        q.double().transpose(0, 1)[None],
        keys[slot, :, :end].double()[None],
        values[slot, :, :end].double()[None],
        attn_mask=visible,
        scale=q.shape[2] ** -0.5,
        enable_gqa=True,
    )
    return out[0].transpose(0, 1)[:length]


def _error(out: torch.Tensor, expected: torch.Tensor) -> float:
    return float((out.double() - expected).norm() / expected.norm())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("start", "length"), [(0, 1), (0, 37), (0, 256), (90, 1), (100, 200)])
def test_chunks_attend_causally_no_worse_than_sdpa(
    kernel: PrefillAttention, dtype: torch.dtype, start: int, length: int
) -> None:
    keys, values = _cache(dtype)
    q = _queries(length, HEADS, DIM, dtype)
    out = kernel.attend(q, keys, values, 2, start, DIM**-0.5)
    assert out.shape == q.shape
    assert out.dtype == dtype
    expected = _reference(q, keys, values, 2, start)
    end = start + length
    visible = torch.arange(end)[None, :] <= torch.arange(start, end)[:, None]
    sdpa = F.scaled_dot_product_attention(
        q.transpose(0, 1)[None], keys[2, :, :end][None], values[2, :, :end][None],
        attn_mask=visible, scale=DIM**-0.5, enable_gqa=True,
    )[0].transpose(0, 1)  # fmt: skip
    assert _error(out, expected) <= 1.2 * _error(sdpa, expected) + 1e-6


@pytest.mark.parametrize(("kv_heads", "rep", "dim"), [(1, 1, 64), (2, 4, 128), (4, 16, 64)])
def test_every_shape_it_is_built_for(
    kernel: PrefillAttention, kv_heads: int, rep: int, dim: int
) -> None:
    keys, values = _cache(torch.float32, kv_heads, dim)
    q = _queries(45, kv_heads * rep, dim, torch.float32)
    out = kernel.attend(q, keys, values, 0, 7, dim**-0.5)
    expected = _reference(q, keys, values, 0, 7)
    assert torch.allclose(out.double(), expected, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_prompt_cut_anywhere_gives_the_same_bits(
    kernel: PrefillAttention, dtype: torch.dtype
) -> None:
    """Tiles follow the sequence's positions, not the chunk's: what the prefix cache
    reuses is what a whole prefill would have computed."""
    keys, values = _cache(dtype)
    q = _queries(300, HEADS, DIM, dtype)
    whole = kernel.attend(q, keys, values, 1, 0, DIM**-0.5)
    for cut in (1, 17, 100, 256, 299):
        first = kernel.attend(q[:cut], keys, values, 1, 0, DIM**-0.5)
        rest = kernel.attend(q[cut:], keys, values, 1, cut, DIM**-0.5)
        assert torch.equal(torch.cat([first, rest]), whole)


def test_it_never_reads_past_the_chunk(kernel: PrefillAttention) -> None:
    """Positions after the chunk may hold NaN (reused memory, up to the slot's end)."""
    keys, values = _cache(torch.bfloat16)
    keys[:, :, 50:] = float("nan")
    values[:, :, 50:] = float("nan")
    q = _queries(21, HEADS, DIM, torch.bfloat16)  # positions 29 .. 49
    assert torch.isfinite(kernel.attend(q, keys, values, 3, 29, DIM**-0.5)).all()
    last = _queries(MAX_LEN, HEADS, DIM, torch.bfloat16)  # the slot's last position
    keys[3, :, 50:] = 0.5
    values[3, :, 50:] = 0.5
    assert torch.isfinite(kernel.attend(last, keys, values, 3, 0, DIM**-0.5)).all()


def test_it_writes_into_a_given_output(kernel: PrefillAttention) -> None:
    keys, values = _cache(torch.float32)
    q = _queries(10, HEADS, DIM, torch.float32)
    rows = torch.full((14, HEADS, DIM), 7.0)
    kernel.attend(q, keys, values, 0, 5, DIM**-0.5, rows[2:12])
    assert torch.equal(rows[2:12], kernel.attend(q, keys, values, 0, 5, DIM**-0.5))
    assert (rows[:2] == 7.0).all()
    assert (rows[12:] == 7.0).all()


def test_a_layout_it_would_misread_is_refused(kernel: PrefillAttention) -> None:
    keys, values = _cache(torch.float32)
    q = _queries(4, HEADS, DIM, torch.float32)
    bad = [
        (q.to(torch.bfloat16), keys, values),  # another dtype than the cache
        (q.transpose(1, 2).contiguous().transpose(1, 2), keys, values),  # heads strided
        (q, keys.transpose(2, 3), values.transpose(2, 3)),
        (q, keys, torch.randn(SLOTS, KV_HEADS, 50, DIM)),  # other strides
        (q[:, :8], keys, values),  # 8 query heads on 3 KV heads
    ]
    for q_bad, k_bad, v_bad in bad:
        with pytest.raises(ValueError, match="dtype and layout"):
            kernel.attend(q_bad, k_bad, v_bad, 0, 0, DIM**-0.5)
    with pytest.raises(ValueError, match="outside the cache"):
        kernel.attend(q, keys, values, 0, MAX_LEN - 3, DIM**-0.5)
    with pytest.raises(ValueError, match="outside the cache"):
        kernel.attend(q, keys, values, SLOTS, 0, DIM**-0.5)
    wide_keys = torch.randn(1, 1, 8, DIM)
    with pytest.raises(ValueError, match="at most 16 heads"):
        kernel.attend(torch.randn(2, 17, DIM), wide_keys, wide_keys.clone(), 0, 0, DIM**-0.5)


def test_a_model_it_cannot_take_uses_sdpa_and_says_so(kernel: PrefillAttention) -> None:
    assert kernel.usable_for(torch.bfloat16, REP, DIM) is kernel
    assert kernel.supports(torch.float32, 16, 128)
    with structlog.testing.capture_logs() as logs:
        assert kernel.usable_for(torch.float32, REP, 96) is None
    [warning] = logs
    assert warning["event"] == "prefill_attention_kernel_unsupported_using_sdpa"
    assert not kernel.supports(torch.float16, REP, DIM)
    assert not kernel.supports(torch.float32, 17, DIM)


def test_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    assert load_prefill_attention("sdpa", tmp_path, cpu) is None
    assert not (tmp_path / "kernels").exists()  # nothing built when not wanted
    with pytest.raises(ValueError, match="prefill_attention must be one of"):
        load_prefill_attention("flash", tmp_path, cpu)
    with pytest.raises(ModelLoadError, match="prefill attention kernel runs on the CPU only"):
        load_prefill_attention("kernel", tmp_path, torch.device("meta"))
    monkeypatch.setenv("CC", "no-such-compiler-here")
    with structlog.testing.capture_logs() as logs:
        assert load_prefill_attention("auto", tmp_path, cpu) is None
    assert logs[0]["event"] == "prefill_attention_kernel_unavailable"
    with pytest.raises(ModelLoadError, match="no C compiler"):
        load_prefill_attention("kernel", tmp_path, cpu)
