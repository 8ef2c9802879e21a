"""Prefill attention in a small C kernel (``prefill_attention.c``), built on the machine.

A prompt chunk's attention (256 query rows over up to ~500 positions, 9 query heads
on 3 KV heads of width 64 for SmolLM2-135M) went through torch's CPU flash kernel
(SDPA), which on a 2-core AMD EPYC without AMX reached ~50 GFLOP/s: 1.6 ms a layer
for a 256-token chunk from position 0 and 2.3-2.8 ms for the chunk after it, about a
fifth of the engine's time at 32 concurrent requests. The kernel does the same work
in float32 vector registers: each KV head's keys and values are copied once a call
into float32 tiles of 16 positions, then blocks of 8 query positions (all their query
heads of that KV head) walk the tiles with an online softmax; 0.9 and 1.7-2.3 ms for
the same chunks, and error against float64 no larger than SDPA's.

Its tiles are aligned to the sequence's start, so a row's result does not depend on
where its chunk begins: the same prompt prefilled in one chunk or several, or after a
prefix taken from the cache, gives the same bits (SDPA's blocks follow the chunk).

Built like the decode kernel (``c_kernel.py``). ``RAGSERVE_GENERATION_PREFILL_ATTENTION``:
``auto`` (the kernel where it builds, else SDPA with a warning), ``kernel`` (refuse to
start without it), ``sdpa``. Heads of width 64 or 128, float32 or bfloat16 caches.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import ClassVar

import torch

import inference.c_kernel as c_kernel

SOURCE = Path(__file__).with_name("prefill_attention.c")
MAX_REP = 16
"""The kernel's bound on query heads per KV head."""
WIDTHS = (64, 128)
"""The head widths it is compiled for."""

_DTYPES = {torch.bfloat16: "bf16", torch.float32: "f32"}
_P, _I = ctypes.c_void_p, ctypes.c_int64
_ARGS = [_P, _I, _P, _P, _I, _P, _I, _I, _I, _I, _I, ctypes.c_float, ctypes.c_int]


def check_prefill_attention(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is one of ``c_kernel.CHOICES``."""
    c_kernel.check_choice("prefill_attention", name)


class PrefillAttention(c_kernel.AttentionKernel):
    """The loaded kernel: ``attend`` runs one layer's prompt chunk."""

    NAME = "prefill_attention"
    BOUNDS: ClassVar[dict[str, object]] = {"max_heads_per_kv_head": MAX_REP, "head_dims": WIDTHS}

    def __init__(self, library: ctypes.CDLL) -> None:
        self._functions = {}
        for dtype, short in _DTYPES.items():
            for width in WIDTHS:
                function = getattr(library, f"prefill_attention_{short}_{width}")
                function.argtypes, function.restype = _ARGS, ctypes.c_int
                self._functions[dtype, width] = function

    def supports(self, dtype: torch.dtype, rep: int, head_dim: int) -> bool:
        return (dtype, head_dim) in self._functions and rep <= MAX_REP

    def attend(
        self,
        q: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        slot: int,
        start: int,
        scale: float,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Causal attention of a chunk's query rows at positions ``start ..`` over its
        slot's positions up to each row's own.

        Args:
            q: ``[length, heads, head_dim]``, the cache's dtype; rows may be strided
                (a view of the projections), each row's heads contiguous.
            keys, values: One layer's ``[slots, kv_heads, max_seq_len, head_dim]``,
                positions ``0 .. start + length - 1`` of ``slot`` written.
            out: Where to write ``[length, heads, head_dim]`` (rows may be strided).

        Returns:
            ``out``, or a new tensor.

        Raises:
            ValueError: A layout the kernel would misread (it takes raw pointers), or
                positions past the cache.
        """
        length, heads, dim = q.shape
        kv_heads = keys.shape[1]
        out = torch.empty(q.shape, dtype=q.dtype, device=q.device) if out is None else out
        if (
            q.dtype != keys.dtype or out.dtype != q.dtype or out.shape != q.shape
            or q.stride()[1:] != (dim, 1) or out.stride()[1:] != (dim, 1)
            or keys.stride()[2:] != (dim, 1) or values.stride() != keys.stride()
            or keys.shape[3] != dim or heads % kv_heads
        ):  # fmt: skip
            raise ValueError("prefill attention needs the cache's dtype and layout")
        if not 0 <= slot < keys.shape[0] or start < 0 or start + length > keys.shape[2]:
            raise ValueError("prefill attention: the chunk lies outside the cache")
        if length == 0:
            return out
        status = self._functions[keys.dtype, dim](
            q.data_ptr(), q.stride(0), keys[slot].data_ptr(), values[slot].data_ptr(),
            keys.stride(1), out.data_ptr(), out.stride(0), length, start, kv_heads,
            heads // kv_heads, scale, torch.get_num_threads(),
        )  # fmt: skip
        if status == 1:
            raise ValueError(f"the kernel takes at most {MAX_REP} heads a KV head")
        if status:
            raise MemoryError("prefill attention could not allocate its buffers")
        return out


def load_prefill_attention(
    choice: str, cache_dir: Path, device: torch.device
) -> PrefillAttention | None:
    """The kernel ``choice`` asks for on ``device``; ``None`` means SDPA.

    Raises:
        ModelLoadError: ``choice`` is ``"kernel"`` and it cannot be had.
    """
    check_prefill_attention(choice)
    library = c_kernel.load_chosen(choice, SOURCE, cache_dir, device)
    return None if library is None else PrefillAttention(library)
