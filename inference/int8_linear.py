"""Weight-only INT8 projections for decode rows (``RAGSERVE_GENERATION_DECODE_WEIGHTS=int8``).

A one-row decode step is a read of every weight: 270 MB in bf16 for SmolLM2-135M
(540 MB in fp32), about 14 ms of a 2-core Xeon's memory bandwidth. Each weight is
also kept as INT8, one scale per output channel (symmetric), and decode rows go
through fbgemm's dynamic-quantized product (``quantized::linear_dynamic``: the
activations are quantized per call, the integer products summed exactly in int32,
the result scaled back): a quarter of the fp32 bytes, half of bf16's.

Prompt rows keep the model's own weights. Two reasons: a 256-row prompt chunk is
compute-bound, where the packed bf16 product is as fast; and the activations'
scale is one per call, so a row's result depends on the other rows of the call.
Prefilled keys and values are therefore exactly what they are without INT8, and
reusing them (the prefix cache) stays exact. Decode rows of one step share a
scale, so a sequence's sampled tokens may differ with what else decodes beside
it; alone (one request at a time) it is deterministic. The quality cost is
measured by ``python -m bench.decode_step`` (greedy agreement with the model's
dtype) and reported in docs/benchmarks.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
import torch
import torch.nn.functional as F

from kernel.cpu import cpu_flags

if TYPE_CHECKING:
    from inference.packed_linear import Linear, Residual

logger = structlog.get_logger(__name__)

RowsLinear = Callable[[torch.Tensor, int], torch.Tensor]
"""``(x, n_decode) -> x @ weight.T``: the first ``n_decode`` rows are decode rows."""

RowsResidual = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
"""``(x, residual, n_decode) -> residual + x @ weight.T``."""


DECODE_WEIGHTS = ("model", "int8", "int4")
"""What decode rows run on: the model's weights, INT8 copies, or 4-bit copies for
steps of a few rows (``int4_linear``; INT8 for larger steps)."""


def check_decode_weights(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is one of ``DECODE_WEIGHTS``."""
    if name not in DECODE_WEIGHTS:
        raise ValueError(f"decode_weights must be one of {DECODE_WEIGHTS}, not {name!r}")


def available() -> bool:
    """Whether this torch has fbgemm's dynamic INT8 product on this CPU."""
    engines = torch.backends.quantized.supported_engines
    return "fbgemm" in engines or "x86" in engines


def _vnni() -> bool:
    """Whether the CPU sums int8 products straight into int32 (AVX-512 VNNI or AVX-VNNI).

    NOTE: without it fbgemm adds pairs of u8*s8 products in int16, which saturates
    for 8-bit activations; ``reduce_range`` (7-bit activations) avoids that, at about
    1.7x the error (relative error 0.016 against 0.009 on SmolLM2's shapes).
    """
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def quantize(weight: torch.Tensor) -> Any:
    """``weight`` ``[out, in]`` as fbgemm's packed INT8, one scale per output channel."""
    w = weight.detach().to(torch.float32)
    scales = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12).to(torch.float64)
    zeros = torch.zeros(w.shape[0], dtype=torch.long)
    with warnings.catch_warnings():
        # NOTE: torch marks quantized tensors deprecated in favour of torchao; the
        # fbgemm kernels behind them are what this path needs and are still there.
        warnings.simplefilter("ignore")
        q = torch.quantize_per_channel(w, scales, zeros, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(q, None)


class Int8Projections:
    """Builds projections that run decode rows on INT8 weights and prompt rows on
    the float ones.

    Args:
        reduce_range: Quantize activations to 7 bits; ``None`` picks it on CPUs
            without VNNI.
    """

    def __init__(self, reduce_range: bool | None = None) -> None:
        self._reduce = (not _vnni()) if reduce_range is None else reduce_range
        self.bytes = 0
        """INT8 weight bytes held."""

    def linear(self, weight: torch.Tensor, full: Linear) -> RowsLinear:
        """``full`` (the float projection of ``weight``) for prompt rows, INT8 for decode rows."""
        return _split_rows(self._product(weight), full)

    def stacked(self, weights: Sequence[torch.Tensor], full: Linear) -> RowsLinear:
        """``stacked_linear``'s projection, decode rows on one stacked INT8 matrix."""
        return self.linear(torch.cat(list(weights)), full)

    def residual(self, weight: torch.Tensor, full: Residual) -> RowsResidual:
        """``residual_linear``'s ``residual + x @ weight.T``, decode rows on INT8."""
        int8 = self._product(weight)

        def rows(x: torch.Tensor, residual: torch.Tensor, n_decode: int) -> torch.Tensor:
            if n_decode == 0:
                return full(x, residual)
            if n_decode == x.shape[0]:
                return residual + int8(x)
            head = residual[:n_decode] + int8(x[:n_decode])
            return torch.cat((head, full(x[n_decode:], residual[n_decode:])))

        return rows

    def gated(self, gate: torch.Tensor, up: torch.Tensor, full: Linear) -> RowsLinear:
        """``gated_linear``'s ``silu(x @ gate.T) * (x @ up.T)``, decode rows on one
        stacked INT8 matrix."""
        width = int(gate.shape[0])
        both = self._product(torch.cat((gate, up)))

        def int8(x: torch.Tensor) -> torch.Tensor:
            out = both(x)
            gated: torch.Tensor = F.silu(out[:, :width]) * out[:, width:]
            return gated

        return _split_rows(int8, full)

    def _product(self, weight: torch.Tensor) -> Linear:
        """``x @ weight.T`` on an INT8 copy of ``weight``."""
        packed = quantize(weight)
        self.bytes += weight.numel()
        reduce = self._reduce
        # NOTE: the overload itself, not the packet: the packet's call checks every
        # argument for script objects in Python (the packed weight is one), each call.
        product = torch.ops.quantized.linear_dynamic.default

        def int8(x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = product(x.to(torch.float32), packed, reduce)
            return out.to(x.dtype)

        return int8

    def log(self) -> None:
        logger.info("int8_decode_weights", mib=round(self.bytes / 2**20, 1), reduce=self._reduce)


def _split_rows(int8: Linear, full: Linear) -> RowsLinear:
    """``int8`` for the leading decode rows, ``full`` for the prompt rows after them."""

    def rows(x: torch.Tensor, n_decode: int) -> torch.Tensor:
        if n_decode == 0:
            return full(x)
        if n_decode == x.shape[0]:
            return int8(x)
        return torch.cat((int8(x[:n_decode]), full(x[n_decode:])))

    return rows


def float_rows(full: Linear) -> RowsLinear:
    """``full`` for every row (the model's own weights)."""
    return lambda x, _n_decode: full(x)


def float_residual_rows(full: Residual) -> RowsResidual:
    return lambda x, residual, _n_decode: full(x, residual)
