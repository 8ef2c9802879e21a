"""Linear layers on weights packed once for oneDNN, where that is faster and exact.

``F.linear`` hands oneDNN a plain row-major weight on every call, which it
re-lays out for its bf16 kernels each time; a decode step is many small matrix
products, so that per-call work dominates. Packing each bf16 weight once at load
(``torch.ops.mkldnn._reorder_linear_weight``, what inductor's freezing does)
made SmolLM2's decode matrices 1.3-2x faster on a 2-core Xeon with AMX (the LM
head 2.5 ms -> 1.2 ms a step), with bit-identical results for up to 32 rows
(prompt chunks of 256 rows round differently from ``F.linear``, as two valid
orders of summation do; the engine always takes the packed one).
Float32 weights stay on ``F.linear``: packing them gave different bits and no
steady gain. Every packed weight is checked against ``F.linear`` once; any
failure or difference keeps ``F.linear`` for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog
import torch
import torch.nn.functional as F

Linear = Callable[[torch.Tensor], torch.Tensor]
"""``[rows, in]`` activations to ``[rows, out]``."""

SplitLinear = Callable[[torch.Tensor], Sequence[torch.Tensor]]
"""``[rows, in]`` activations to one ``[rows, out_i]`` output per weight."""

logger = structlog.get_logger(__name__)

_CHECK_ROWS = (1, 2, 3, 4, 8)
"""Row counts each packed weight is checked at (one probe size once missed a
difference at another)."""


def linear(weight: torch.Tensor, pack: bool = True) -> Linear:
    """``x -> x @ weight.T`` for ``[rows, in]`` inputs, packed when that serves.

    Args:
        weight: ``[out, in]``, as a ``nn.Linear`` holds it (no bias).
        pack: ``False`` always uses ``F.linear``.
    """
    if pack and _packable(weight):
        packed = _pack(weight)
        if packed is not None:
            return packed

    def plain(x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight)

    return plain


def split_linear(weights: Sequence[torch.Tensor], pack: bool = True) -> SplitLinear:
    """Several linear layers reading the same input (say q, k and v) as one.

    Packed, their weights are stacked into one matrix, so a step makes one call
    instead of several (q, k and v of SmolLM2: 97 -> 51 us a layer at one row,
    bit-identical to three packed calls); otherwise each stays its own
    ``F.linear``.
    """
    sizes = [int(w.shape[0]) for w in weights]
    if pack and all(_packable(w) for w in weights):
        packed = _pack(torch.cat(list(weights)))
        if packed is not None:
            return lambda x: torch.split(packed(x), sizes, dim=-1)
    return lambda x: [F.linear(x, w) for w in weights]


def native_bf16() -> bool:
    """Whether this CPU computes bf16 itself (avx512_bf16 or AMX tiles).

    NOTE: without it oneDNN emulates bf16, and its packed kernels then round 1, 2,
    3 and 5 rows differently from ``F.linear`` for about one input in ten (measured
    on a 2-core Xeon without either): a probe passes by chance, so nothing is
    packed there (the engine picks fp32 on such CPUs anyway).
    """
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def _packable(weight: torch.Tensor) -> bool:
    return (
        weight.device.type == "cpu"
        and weight.dtype == torch.bfloat16
        and weight.dim() == 2
        and torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
        and native_bf16()
    )


def _reorder(weight: torch.Tensor) -> torch.Tensor:
    # NOTE: the second argument is the expected batch size, a layout hint only:
    # any number of rows works.
    packed: torch.Tensor = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 1)
    return packed


def _pack(weight: torch.Tensor) -> Linear | None:
    ops = torch.ops.mkldnn
    try:
        packed = _reorder(weight)
        same = True
        for rows in _CHECK_ROWS:
            probe = torch.randn(rows, weight.shape[1], dtype=weight.dtype)
            out = ops._linear_pointwise(probe, packed, None, "none", [], "")
            same = same and torch.equal(out, F.linear(probe, weight))
    except (RuntimeError, AttributeError) as exc:  # an older torch or a CPU oneDNN refuses
        logger.info("linear_packing_unavailable", error=f"{type(exc).__name__}: {exc}")
        return None
    if not same:
        logger.info("linear_packing_inexact", shape=list(weight.shape))
        return None

    def packed_linear(x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = ops._linear_pointwise(x, packed, None, "none", [], "")
        return out

    return packed_linear
