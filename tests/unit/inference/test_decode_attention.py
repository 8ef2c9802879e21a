"""The decode attention kernel: built with the machine's compiler, checked against float64."""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import pytest
import structlog
import torch
import torch.nn.functional as F

from inference.decode_attention import (
    DecodeAttention,
    DecodeRows,
    build,
    load_decode_attention,
    sdpa_attend,
)
from inference.errors import ModelLoadError

if TYPE_CHECKING:
    from pathlib import Path

KV_HEADS, REP, DIM, SLOTS, MAX_LEN = 3, 3, 64, 6, 96


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> DecodeAttention:
    loaded = load_decode_attention("kernel", tmp_path_factory.mktemp("models"), torch.device("cpu"))
    assert loaded is not None
    return loaded


def _cache(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shape = (SLOTS, KV_HEADS, MAX_LEN, DIM)
    keys = torch.randn(shape, generator=generator).to(dtype)
    values = torch.randn(shape, generator=generator).to(dtype)
    return keys, values


def _reference(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, slot: int, length: int
) -> torch.Tensor:
    """One row's attention in float64: ``q`` is ``[kv_heads, rep, dim]``."""
    k = keys[slot, :, :length].double()
    v = values[slot, :, :length].double()
    return F.scaled_dot_product_attention(q.double(), k, v, scale=DIM**-0.5)


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_each_row_attends_over_its_own_slot_and_length(
    kernel: DecodeAttention, dtype: torch.dtype, tolerance: float
) -> None:
    keys, values = _cache(dtype)
    slots, lengths = [4, 0, 2, 5], [1, 17, 96, 40]  # out of order, one row of one position
    q = (torch.randn(len(slots), KV_HEADS, REP, DIM) * 2).to(dtype)
    out = kernel.attend(
        q, keys, values, torch.tensor(slots), torch.tensor(lengths), max(lengths), DIM**-0.5
    )
    assert out.shape == q.shape
    assert out.dtype == dtype
    for row, (slot, length) in enumerate(zip(slots, lengths, strict=True)):
        expected = _reference(q[row], keys, values, slot, length)
        assert torch.allclose(out[row].double(), expected, atol=tolerance, rtol=tolerance)


def test_it_never_reads_past_a_rows_length(kernel: DecodeAttention) -> None:
    """Positions nobody wrote may hold NaN (reused memory): the kernel reads none of them,
    where SDPA over the longest row needs them zeroed first."""
    keys, values = _cache(torch.bfloat16)
    keys[:, :, 30:] = float("nan")
    values[:, :, 30:] = float("nan")
    q = torch.randn(2, KV_HEADS, REP, DIM).to(torch.bfloat16)
    out = kernel.attend(
        q, keys, values, torch.tensor([1, 3]), torch.tensor([30, 12]), 30, DIM**-0.5
    )
    assert torch.isfinite(out).all()


def test_it_agrees_with_sdpa_over_the_same_rows(kernel: DecodeAttention) -> None:
    keys, values = _cache(torch.float32)
    slot_index, lengths = torch.tensor([0, 1, 2]), torch.tensor([50, 96, 7])
    visible = torch.arange(96)[None, :] < lengths[:, None]
    mask = torch.zeros(visible.shape).masked_fill_(~visible, float("-inf"))[:, None, None, :]
    rows = DecodeRows(slot_index, lengths, mask, span=3, length=96, dense=True)
    q = torch.randn(3, KV_HEADS, REP, DIM)
    ours = kernel.attend(q, keys, values, slot_index, lengths, 96, DIM**-0.5)
    theirs = sdpa_attend(q, keys, values, rows, DIM**-0.5)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_it_takes_only_the_shapes_it_was_written_for(kernel: DecodeAttention) -> None:
    assert kernel.supports(torch.bfloat16, REP, DIM)
    assert kernel.supports(torch.float32, 1, 128)
    assert not kernel.supports(torch.float16, REP, DIM)
    assert not kernel.supports(torch.float32, 17, DIM)  # more query heads per KV head
    assert not kernel.supports(torch.float32, REP, 512)


def test_a_model_it_cannot_take_uses_sdpa_and_says_so(kernel: DecodeAttention) -> None:
    assert kernel.usable_for(torch.bfloat16, REP, DIM) is kernel
    with structlog.testing.capture_logs() as logs:
        assert kernel.usable_for(torch.float16, REP, DIM) is None
    [warning] = logs
    assert warning["event"] == "decode_attention_kernel_unsupported_using_sdpa"
    assert (warning["dtype"], warning["head_dim"]) == ("torch.float16", DIM)


def test_a_layout_it_would_misread_is_refused(kernel: DecodeAttention) -> None:
    keys, values = _cache(torch.float32)
    q = torch.randn(2, KV_HEADS, REP, DIM)
    slots, lengths = torch.tensor([0, 1]), torch.tensor([4, 4])
    bad = [
        (q.transpose(0, 1).contiguous().transpose(0, 1), keys, values, slots, lengths),
        (q, keys.transpose(2, 3), values.transpose(2, 3), slots, lengths),
        (q, keys, torch.randn(SLOTS, KV_HEADS, 50, DIM), slots, lengths),  # other strides
        (q.to(torch.bfloat16), keys, values, slots, lengths),
        (q, keys, values, slots.int(), lengths),
    ]
    for args in bad:
        with pytest.raises(ValueError, match="contiguous rows"):
            kernel.attend(*args, 4, DIM**-0.5)
    wide = torch.randn(2, 1, 17, DIM)  # 17 query heads to a KV head: past the bound
    with pytest.raises(ValueError, match="at most 16 heads"):
        kernel.attend(wide, keys, values, slots, lengths, 4, DIM**-0.5)


def test_loading_it_keeps_subnormal_floats(tmp_path: Path) -> None:
    """Linked with ``-ffast-math``, GCC's ``crtfastmath.o`` would set flush-to-zero in
    the loading thread: the process's own float arithmetic would lose subnormals."""
    library = build(tmp_path)
    ctypes.CDLL(str(library))
    tiny = float.fromhex("0x1p-1060")  # subnormal
    assert tiny * 0.5 > 0.0
    assert torch.tensor([tiny], dtype=torch.float64).mul(0.5).item() > 0.0


def test_the_library_is_built_once_and_reused(tmp_path: Path) -> None:
    first = build(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert build(tmp_path) == first
    assert first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no scratch left behind


def test_without_a_compiler_auto_falls_back_and_kernel_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-here")
    cpu = torch.device("cpu")
    assert load_decode_attention("auto", tmp_path, cpu) is None
    with pytest.raises(ModelLoadError, match="no C compiler"):
        load_decode_attention("kernel", tmp_path, cpu)


def test_a_failing_compiler_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "false")  # found on PATH, exits 1
    with pytest.raises(ModelLoadError, match="building the decode attention kernel failed"):
        load_decode_attention("kernel", tmp_path, torch.device("cpu"))
    assert not list((tmp_path / "kernels").glob("*.so"))


def test_sdpa_and_unknown_choices(tmp_path: Path) -> None:
    assert load_decode_attention("sdpa", tmp_path, torch.device("cpu")) is None
    assert not (tmp_path / "kernels").exists()  # nothing built when not wanted
    with pytest.raises(ValueError, match="decode_attention must be one of"):
        load_decode_attention("flash", tmp_path, torch.device("cpu"))
    with pytest.raises(ModelLoadError, match="CPU only"):
        load_decode_attention("kernel", tmp_path, torch.device("meta"))
