"""Decode attention in a small C kernel (``decode_attention.c``), built on the machine.

At 32 decoding rows of ~500 positions each, a decode step's attention reads 12.6 MB
of keys and values a layer, and torch's CPU SDPA (its flash kernel, one query token
a row) reads them at ~6 GB/s: 57-69 ms of an ~88 ms step over SmolLM2-135M's 30
layers on a 2-core AMD EPYC, where memory gives ~33 GB/s. The kernel does the same
work per (row, KV head): the row's grouped query heads read that head's keys once
(scores in float32), take the softmax (vectorized ``expf``), and read its values
once; 25 ms for the same step, and each row reads only its own positions, not the
longest row's. Prompt chunks have their own kernel (``prefill_attention.py``).

It is compiled on first use with the machine's C compiler (``c_kernel.py``: flags,
cache, loading). ``RAGSERVE_GENERATION_DECODE_ATTENTION``: ``auto`` (the kernel
where it builds, else SDPA with a warning), ``kernel`` (refuse to start without
it), ``sdpa``.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F

import inference.c_kernel as c_kernel

DECODE_ATTENTION = c_kernel.CHOICES

SOURCE = Path(__file__).with_name("decode_attention.c")
MAX_REP, MAX_DIM = 16, 256
"""The kernel's bounds on query heads per KV head and on the head's width."""

_FUNCTIONS = {torch.bfloat16: "decode_attention_bf16", torch.float32: "decode_attention_f32"}
_P, _I = ctypes.c_void_p, ctypes.c_int64
_ARGS = [_P, _P, _P, _P, _P, _P, _I, _I, _I, _I, _I, _I, _I, ctypes.c_float, ctypes.c_int]


def check_decode_attention(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is one of ``DECODE_ATTENTION``."""
    c_kernel.check_choice("decode_attention", name)


class DecodeAttention(c_kernel.AttentionKernel):
    """The loaded kernel: ``attend`` runs one layer's decode rows."""

    NAME = "decode_attention"
    BOUNDS: ClassVar[dict[str, object]] = {
        "max_heads_per_kv_head": MAX_REP,
        "max_head_dim": MAX_DIM,
    }

    def __init__(self, library: ctypes.CDLL) -> None:
        self._functions = {}
        for dtype, name in _FUNCTIONS.items():
            function = getattr(library, name)
            function.argtypes, function.restype = _ARGS, ctypes.c_int
            self._functions[dtype] = function

    def supports(self, dtype: torch.dtype, rep: int, head_dim: int) -> bool:
        return dtype in self._functions and rep <= MAX_REP and head_dim <= MAX_DIM

    def attend(
        self,
        q: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        slots: torch.Tensor,
        lengths: torch.Tensor,
        max_length: int,
        scale: float,
    ) -> torch.Tensor:
        """Attention of each decode row over its own slot's first ``lengths`` positions.

        Args:
            q: ``[rows, kv_heads, rep, head_dim]``, contiguous, the cache's dtype.
            keys, values: One layer's ``[slots, kv_heads, max_seq_len, head_dim]``.
            slots, lengths: ``[rows]`` int64: each row's slot and positions to read
                (at least 1, at most ``max_length``).
            max_length: The largest of ``lengths``.

        Returns:
            ``[rows, kv_heads, rep, head_dim]``.

        Raises:
            ValueError: A layout the kernel would misread (it takes raw pointers).
        """
        dim = keys.shape[3]
        if (
            not q.is_contiguous() or q.shape[3] != dim or q.dtype != keys.dtype
            or keys.stride()[2:] != (dim, 1) or values.stride() != keys.stride()
            or slots.dtype != torch.int64 or lengths.dtype != torch.int64
            or not (slots.is_contiguous() and lengths.is_contiguous())
        ):  # fmt: skip
            raise ValueError("decode attention needs contiguous rows of the cache's layout")
        out = torch.empty_like(q)
        status = self._functions[keys.dtype](
            q.data_ptr(), keys.data_ptr(), values.data_ptr(), slots.data_ptr(),
            lengths.data_ptr(), out.data_ptr(), q.shape[0], q.shape[1], q.shape[2],
            q.shape[3], keys.stride(0), keys.stride(1), max_length, scale,
            torch.get_num_threads(),
        )  # fmt: skip
        if status == 1:
            raise ValueError(f"the kernel takes at most {MAX_REP} heads a KV head, width {MAX_DIM}")
        if status:
            raise MemoryError("decode attention could not allocate its score buffers")
        return out


class DecodeRows(NamedTuple):
    """What every layer's decode attention shares within one step."""

    slot_index: torch.Tensor
    """The slot of each decode row (int64)."""
    lengths: torch.Tensor
    """The positions each decode row reads: its position plus one (int64)."""
    mask: torch.Tensor | None
    """SDPA's ``[span, 1, 1, length]`` additive mask: 0 at the positions each slot up
    to ``span`` sees, -inf elsewhere (``None`` for the kernel, which needs none)."""
    span: int
    """Slots ``0 .. span - 1`` take part (the highest decoding slot, plus one)."""
    length: int
    """The longest decoding sequence's positions."""
    dense: bool
    """The decode rows are slots ``0 .. span - 1`` in order: no scatter or gather."""


def sdpa_attend(
    grouped: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, rows: DecodeRows, scale: float
) -> torch.Tensor:
    """Decode attention through torch's SDPA over slots ``0 .. span - 1``, each up to
    the longest row (masked); ``grouped`` is ``[rows, kv_heads, rep, head_dim]``."""
    if not rows.dense:  # scatter the rows into their slots' places
        scattered = grouped.new_zeros(rows.span, *grouped.shape[1:])
        scattered[rows.slot_index] = grouped
        grouped = scattered
    out = F.scaled_dot_product_attention(
        grouped,
        keys[: rows.span, :, : rows.length],
        values[: rows.span, :, : rows.length],
        attn_mask=rows.mask,
        scale=scale,
    )
    return out if rows.dense else out[rows.slot_index]


def build(directory: Path) -> Path:
    """The kernel's shared library for this CPU under ``directory``, compiled if missing
    (``c_kernel.build``)."""
    return c_kernel.build(SOURCE, directory)


def load_decode_attention(
    choice: str, cache_dir: Path, device: torch.device
) -> DecodeAttention | None:
    """The kernel ``choice`` asks for on ``device``; ``None`` means SDPA.

    Raises:
        ModelLoadError: ``choice`` is ``"kernel"`` and it cannot be had.
    """
    check_decode_attention(choice)
    library = c_kernel.load_chosen(choice, SOURCE, cache_dir, device)
    return None if library is None else DecodeAttention(library)
