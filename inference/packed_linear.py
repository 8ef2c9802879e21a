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

The packed path also fuses what follows a product into oneDNN's call: the
residual add (``residual_linear``), SiLU and the product of the gated MLP
(``gated_linear``). Those round once where separate ops round after each, so they
are checked within a few bf16 ulps, not bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import structlog
import torch
import torch.nn.functional as F

Linear = Callable[[torch.Tensor], torch.Tensor]
"""``[rows, in]`` activations to ``[rows, out]``."""

Residual = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``([rows, in] activations, [rows, out] residual)`` to ``residual + x @ weight.T``."""

_F = TypeVar("_F", bound=Callable[..., torch.Tensor])

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


def stacked_linear(weights: Sequence[torch.Tensor], pack: bool = True) -> Linear:
    """Several linear layers reading the same input (say q, k and v) as one: their
    outputs side by side, ``[rows, sum(out_i)]``.

    Packed, their weights are stacked into one matrix, so a step makes one call
    instead of several (q, k and v of SmolLM2: 97 -> 51 us a layer at one row,
    bit-identical to three packed calls); otherwise each stays its own ``F.linear``.
    """
    if pack and all(_packable(w) for w in weights):
        packed = _pack(torch.cat(list(weights)))
        if packed is not None:
            return packed
    return lambda x: torch.cat([F.linear(x, w) for w in weights], dim=-1)


def residual_linear(weight: torch.Tensor, pack: bool = True) -> Residual:
    """``(x, residual) -> residual + x @ weight.T``.

    Packed, the sum is oneDNN's post-op: one rounding to bf16 instead of two, one
    call instead of two (256 rows: 281 -> 200 us for the MLP's down product).
    """
    if pack and _packable(weight):
        fused = _fuse(weight, "add", lambda x, r: r + F.linear(x, weight))
        if fused is not None:
            return fused
    plain = linear(weight, pack)
    return lambda x, residual: residual + plain(x)


def gated_linear(gate: torch.Tensor, up: torch.Tensor, pack: bool = True) -> Linear:
    """``x -> silu(x @ gate.T) * (x @ up.T)``, the gated MLP's two products.

    Packed, SiLU is the gate product's post-op and the product with it the up
    product's (256 rows: 619 -> 417 us a layer): rounded once each, not after every
    step as three separate ops do.
    """

    def reference(x: torch.Tensor) -> torch.Tensor:
        return F.silu(F.linear(x, gate)) * F.linear(x, up)

    if pack and _packable(gate) and _packable(up):
        fused = _fuse_gated(gate, up, reference)
        if fused is not None:
            return fused
    gate_of, up_of = linear(gate, pack), linear(up, pack)
    return lambda x: F.silu(gate_of(x)) * up_of(x)


def _fuse_gated(gate: torch.Tensor, up: torch.Tensor, reference: Linear) -> Linear | None:
    ops = torch.ops.mkldnn
    fused_up = _fuse(up, "mul", lambda x, g: g * F.linear(x, up))
    if fused_up is None:
        return None

    def build() -> tuple[Linear, bool]:
        gate_packed = _reorder(gate)

        def gated(x: torch.Tensor) -> torch.Tensor:
            g: torch.Tensor = ops._linear_pointwise.default(x, gate_packed, None, "swish", [], "")
            return fused_up(x, g)

        probe = torch.randn(3, gate.shape[1], dtype=gate.dtype)
        return gated, _close(gated(probe), reference(probe))

    return _verified("swish", gate, build)


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
        out: torch.Tensor = ops._linear_pointwise.default(x, packed, None, "none", [], "")
        return out

    return packed_linear


def _fuse(weight: torch.Tensor, op: str, plain: Residual) -> Residual | None:
    """``(x, other) -> (x @ weight.T) <op> other`` as one oneDNN call with a binary
    post-op, checked once against ``plain`` within bf16 rounding; ``None`` where
    oneDNN refuses or differs."""
    ops = torch.ops.mkldnn

    def build() -> tuple[Residual, bool]:
        packed = _reorder(weight)

        def fused(x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = ops._linear_pointwise.binary(x, other, packed, None, op)
            return out

        probe_other = torch.randn(3, weight.shape[0], dtype=weight.dtype)
        probe = torch.randn(3, weight.shape[1], dtype=weight.dtype)
        return fused, _close(fused(probe, probe_other), plain(probe, probe_other))

    return _verified(op, weight, build)


def _verified(op: str, weight: torch.Tensor, build: Callable[[], tuple[_F, bool]]) -> _F | None:
    """What ``build`` fuses, when oneDNN accepts it and it agreed with the separate
    ops; ``None`` (logged) otherwise."""
    try:
        fused, same = build()
    except (RuntimeError, AttributeError) as exc:  # an older torch or a CPU oneDNN refuses
        logger.info("linear_fusion_unavailable", op=op, error=f"{type(exc).__name__}: {exc}")
        return None
    if not same:
        logger.info("linear_fusion_inexact", op=op, shape=list(weight.shape))
        return None
    return fused


def _close(fused: torch.Tensor, separate: torch.Tensor) -> bool:
    """Whether a fused product agrees with the separate ops within bf16 rounding.

    NOTE: a fused product rounds once where separate ops round after each: they
    agree to a few bf16 ulps, not bit for bit.
    """
    return torch.allclose(fused, separate, rtol=2.0**-6, atol=2.0**-6)
