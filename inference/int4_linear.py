"""4-bit weights for steps of a few decode rows (``RAGSERVE_GENERATION_DECODE_WEIGHTS=int4``).

A step of one or two decode rows reads every weight once and does little with it:
its time is the weights' bytes over the memory bus. ``int8`` halves bf16's bytes;
this halves them again. Every projection is also kept in 4 bits, in groups of 32
input channels, each group with its own scale and minimum (asymmetric, the layout
of llama.cpp's Q4_1, which the serving benchmark's peer runs), and a step of at most
``MAX_ROWS`` decode rows goes through torch's ``_weight_int4pack_mm_for_cpu``: the
weights are unpacked in registers and multiplied with the activations in bf16
(``KERNEL_DTYPE``, whatever the model's dtype), so unlike ``int8`` the activations
are not quantized and each row's result is its own, whatever decodes beside it.

With more rows the product stops being bound by the weights' bytes, and torch's
4-bit kernel falls behind fbgemm's INT8 one (SmolLM2-135M's products, 2-core Xeon,
weights streamed from memory: 1 row 6.6 against 11.1 ms, 2 rows 7.8 against 13.0,
5 rows 18.0 against 16.6, 32 rows 67 against 30); those steps keep the INT8 copies,
so this mode holds both. Prompt rows keep the model's own weights, as with ``int8``
(``int8_linear``), so prefilled keys and values, and the prefix cache, stay exact.
The quality cost is measured by ``python -m bench.decode_step`` (agreement and
perplexity against the model's dtype) and reported in docs/benchmarks.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
import torch

from inference.errors import ModelLoadError
from inference.int8_linear import Int8Projections
from inference.int8_linear import available as int8_available

if TYPE_CHECKING:
    from inference.packed_linear import Linear

logger = structlog.get_logger(__name__)

GROUP = 32
"""Input channels sharing one scale and minimum (Q4_1's block)."""

MAX_ROWS = 4
"""Steps of at most this many decode rows use the 4-bit weights, larger ones INT8."""

KERNEL_DTYPE = torch.bfloat16
"""What the 4-bit product computes in, whatever the model's dtype: torch's CPU
kernel is vectorized for bf16 only (one row through a 576x1536 weight: 0.075 ms in
bf16 against 2.0 ms in fp32 on a 2-core AMD EPYC with AVX2, where INT8 takes 0.085).
An fp32 model's decode rows are rounded to bf16 for it, far less than 4 bits lose."""

_INNER_TILES = 8
"""``_convert_weight_to_int4pack_for_cpu``'s packing argument (its only CPU layout)."""


def available() -> bool:
    """Whether this torch has the CPU 4-bit weight product."""
    return hasattr(torch, "_weight_int4pack_mm_for_cpu") and hasattr(
        torch, "_convert_weight_to_int4pack_for_cpu"
    )


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``weight`` ``[out, in]`` as packed 4-bit codes and ``[in / GROUP, out, 2]``
    (scale, offset) pairs in ``KERNEL_DTYPE``; ``None`` when ``in`` is not a whole
    number of groups.

    A group's codes ``q`` in 0..15 stand for ``minimum + q * scale``; the kernel
    computes ``(q - 8) * scale + offset``, so the offset is ``minimum + 8 * scale``.
    """
    out_features, in_features = weight.shape
    if in_features % GROUP:
        return None
    w = weight.detach().to(torch.float32).reshape(out_features, in_features // GROUP, GROUP)
    low, high = w.amin(dim=-1), w.amax(dim=-1)
    scale = ((high - low) / 15).clamp_min(1e-8)
    codes = torch.round((w - low[..., None]) / scale[..., None]).clamp(0, 15)
    codes = codes.to(torch.int32).reshape(out_features, in_features)
    pairs = torch.stack((scale, low + 8 * scale), dim=-1).transpose(0, 1).contiguous()
    packed = torch._convert_weight_to_int4pack_for_cpu(codes, _INNER_TILES)
    return packed, pairs.to(KERNEL_DTYPE)


class Int4Projections(Int8Projections):
    """``Int8Projections`` whose decode products take the 4-bit copies for steps of
    at most ``MAX_ROWS`` rows (INT8 above that)."""

    def __init__(self, reduce_range: bool | None = None) -> None:
        super().__init__(reduce_range)
        self.int4_bytes = 0
        """4-bit codes and their scales held (beside ``bytes`` of INT8)."""

    def _product(self, weight: torch.Tensor) -> Linear:
        int8 = super()._product(weight)
        quantized = quantize(weight)
        if quantized is None:
            return int8
        packed, pairs = quantized
        self.int4_bytes += packed.numel() * packed.element_size()
        self.int4_bytes += pairs.numel() * pairs.element_size()
        product = torch._weight_int4pack_mm_for_cpu

        def int4(x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] > MAX_ROWS:
                return int8(x)
            out: torch.Tensor = product(x.to(KERNEL_DTYPE), packed, GROUP, pairs)
            return out.to(x.dtype)

        return int4

    def log(self) -> None:
        super().log()
        logger.info("int4_decode_weights", mib=round(self.int4_bytes / 2**20, 1))


def decode_projections(device: torch.device, decode_weights: str) -> Int8Projections:
    """The quantized copies ``decode_weights`` (``"int8"`` or ``"int4"``) asks for.

    Raises:
        ModelLoadError: Not a CPU, or this torch lacks the kernels.
    """
    if device.type != "cpu":
        raise ModelLoadError(f"{decode_weights} decode weights run on the CPU only")
    if not int8_available():
        raise ModelLoadError("this torch has no fbgemm INT8 kernels for quantized decode weights")
    if decode_weights == "int4":
        if not available():
            raise ModelLoadError("this torch has no CPU 4-bit weight product for int4")
        return Int4Projections()
    return Int8Projections()
