"""How one engine step's rows attend, layer after layer: decode rows (one query token
each, ``decode_attention``) and prompt or draft chunks (causal, ``prefill_attention``),
each in its C kernel where one is loaded, else torch's SDPA."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from inference.decode_attention import (
    DecodeAttention,
    DecodeRows,
    check_decode_attention,
    load_decode_attention,
    sdpa_attend,
)
from inference.prefill_attention import (
    PrefillAttention,
    check_prefill_attention,
    load_prefill_attention,
)

if TYPE_CHECKING:
    from pathlib import Path

    from inference.step_batch import PrefillChunk, StepBatch


def check_attention(decode: str, prefill: str) -> None:
    """Raise ``ValueError`` unless both are ``"auto"``, ``"kernel"`` or ``"sdpa"``."""
    check_decode_attention(decode)
    check_prefill_attention(prefill)


def load_attention(
    decode: str, prefill: str, cache_dir: Path, device: torch.device
) -> tuple[DecodeAttention | None, PrefillAttention | None]:
    """The decode and prefill kernels these choices ask for (``None``: SDPA).

    Raises:
        ModelLoadError: A choice is ``"kernel"`` and it cannot be had.
    """
    return (
        load_decode_attention(decode, cache_dir, device),
        load_prefill_attention(prefill, cache_dir, device),
    )


class StepAttention:
    """One model's attention shapes and kernels; ``prepare`` once a step, then
    ``decode`` and ``prefill`` in every layer.

    Args:
        heads, kv_heads, head_dim: The model's attention shape (grouped-query heads).
        dtype, device: The KV cache's.
        decode_kernel, prefill_kernel: The loaded kernels; ``None``: SDPA. A kernel
            that does not take these shapes is dropped (SDPA, with a warning).
    """

    def __init__(
        self,
        heads: int,
        kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
        decode_kernel: DecodeAttention | None = None,
        prefill_kernel: PrefillAttention | None = None,
    ) -> None:
        self._heads, self._kv_heads, self._head_dim = heads, kv_heads, head_dim
        self._rep, self._scale = heads // kv_heads, head_dim**-0.5
        self._dtype, self._device = dtype, device
        self._decode = decode_kernel and decode_kernel.usable_for(dtype, self._rep, head_dim)
        self._prefill = prefill_kernel and prefill_kernel.usable_for(dtype, self._rep, head_dim)

    @property
    def reads_unwritten(self) -> bool:
        """Decode attention reads every slot up to the longest row (SDPA): positions
        nobody wrote must hold finite values (``KVCache.ensure_finite``)."""
        return self._decode is None

    def prepare(self, batch: StepBatch) -> tuple[DecodeRows | None, list[torch.Tensor | None]]:
        """What every layer shares: the decode rows' context (``None`` without decode
        rows) and each chunk's SDPA mask (``None``: causal from 0, or the kernel)."""
        decode = self._decode_context(batch) if batch.decode_slots else None
        masks = [
            self._causal_mask(chunk) if chunk.start and self._prefill is None else None
            for chunk in batch.prefills
        ]
        return decode, masks

    def decode(
        self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, ctx: DecodeRows
    ) -> torch.Tensor:
        """Decode rows' ``[rows, heads, head_dim]`` over one layer's cache."""
        # NOTE: with one query token, the ``rep`` query heads sharing a KV head are
        # laid out as ``rep`` query rows of that head: GQA without repeating K and V.
        grouped = q.reshape(-1, self._kv_heads, self._rep, self._head_dim)
        if self._decode is not None:
            out = self._decode.attend(
                grouped.contiguous(), keys, values, ctx.slot_index, ctx.lengths, ctx.length,
                self._scale,
            )  # fmt: skip
        else:
            out = sdpa_attend(grouped, keys, values, ctx, self._scale)
        return out.reshape(-1, self._heads, self._head_dim)

    def prefill(
        self,
        q: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        chunk: PrefillChunk,
        mask: torch.Tensor | None,
        out: torch.Tensor,
    ) -> None:
        """A chunk's ``[length, heads, head_dim]`` rows over one layer's cache, into ``out``."""
        if self._prefill is not None:
            self._prefill.attend(q, keys, values, chunk.slot, chunk.start, self._scale, out)
            return
        end = chunk.start + chunk.length
        # NOTE: 4-D with ``enable_gqa`` reaches the CPU's fused (flash) kernel; the
        # 3-D grouped form it replaces fell back to bmm + softmax (256 tokens: 3.4 ->
        # 1.2 ms a layer on 2 cores, bf16). A chunk from position 0 (``mask`` None)
        # is square: ``is_causal`` lets the kernel skip the blocks above the
        # diagonal (512 tokens: 1.06 -> 0.97 ms a layer, the same bits).
        attended = F.scaled_dot_product_attention(
            q.transpose(0, 1)[None],
            keys[chunk.slot, :, :end][None],
            values[chunk.slot, :, :end][None],
            attn_mask=mask,
            scale=self._scale,
            is_causal=mask is None,
            enable_gqa=True,
        )
        out.copy_(attended[0].transpose(0, 1))

    def _decode_context(self, batch: StepBatch) -> DecodeRows:
        device = self._device
        n_decode = len(batch.decode_slots)
        span = max(batch.decode_slots) + 1
        length = max(batch.positions[:n_decode]) + 1
        slot_index = torch.tensor(batch.decode_slots, device=device)
        lengths = torch.tensor(batch.positions[:n_decode], device=device) + 1
        dense = batch.decode_slots == list(range(span))
        if self._decode is not None:  # reads each row's own positions: no mask
            return DecodeRows(slot_index, lengths, None, span, length, dense)
        # Slots in the span that do not decode this step attend to position 0 only,
        # so their (discarded) rows never see an all-masked softmax.
        visible = torch.ones(span, dtype=torch.long, device=device)
        visible[slot_index] = lengths
        mask = torch.arange(length, device=device)[None, :] < visible[:, None]
        return DecodeRows(
            slot_index, lengths, self._additive(mask[:, None, None, :]), span, length, dense
        )

    def _causal_mask(self, chunk: PrefillChunk) -> torch.Tensor:
        end = chunk.start + chunk.length
        query_pos = torch.arange(chunk.start, end, device=self._device)
        return self._additive(torch.arange(end, device=self._device)[None, :] <= query_pos[:, None])

    def _additive(self, visible: torch.Tensor) -> torch.Tensor:
        """``visible`` as the additive mask SDPA would build from it in every layer
        (0 where visible, -inf elsewhere), built once a step."""
        mask = torch.zeros(visible.shape, dtype=self._dtype, device=self._device)
        return mask.masked_fill_(~visible, float("-inf"))
