"""One forward pass over many sequences at once, for Llama-family models.

Every token of a step (one per decoding sequence, plus the prefill chunks) goes
through the linear layers together as one ``[tokens, hidden]`` matrix, which is
where batching pays; attention reads each sequence's keys and values from the
slot-based ``KVCache``.

The op order and dtypes mirror Hugging Face's ``modeling_llama`` (RMSNorm in
float32, rotary embeddings from the model's own ``rotary_emb``), so float32 greedy
decoding gives the same tokens as ``model.generate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from inference.errors import ModelLoadError
from inference.int4_linear import Int4Projections, decode_projections
from inference.int8_linear import (
    Int8Projections,
    RowsLinear,
    RowsResidual,
    check_decode_weights,
    float_residual_rows,
    float_rows,
)
from inference.kv_cache import KVCache
from inference.packed_linear import gated_linear, linear, residual_linear, stacked_linear
from inference.step_attention import StepAttention

if TYPE_CHECKING:
    from inference.decode_attention import DecodeAttention
    from inference.loader import LoadedModel
    from inference.prefill_attention import PrefillAttention
    from inference.step_batch import StepBatch

_SUPPORTED_MODEL_TYPES = frozenset({"llama"})


def check_supported(config: Any) -> None:
    """Raise ``ModelLoadError`` unless ``config`` is a Llama-family model this pass runs."""
    model_type = getattr(config, "model_type", None)
    if model_type not in _SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(
            f"the batching engine runs Llama-family models only, not {model_type!r}"
        )
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise ModelLoadError("the batching engine does not support attention or MLP biases")
    if getattr(config, "hidden_act", "silu") != "silu":
        raise ModelLoadError(f"unsupported activation {config.hidden_act!r}")
    if getattr(config, "pretraining_tp", 1) != 1:
        raise ModelLoadError("pretraining_tp > 1 is not supported")


@dataclass(frozen=True, slots=True)
class _LayerLinears:
    """One decoder layer's projections (``packed_linear``; with ``int8``, decode rows
    on INT8 weights, ``int8_linear``), each called with the step's decode rows."""

    qkv: RowsLinear
    """q, k and v side by side."""
    o: RowsResidual
    """The attention output projection, added to the residual."""
    mlp: RowsLinear
    """``silu(gate) * up``."""
    down: RowsResidual
    """The MLP's down projection, added to the residual."""

    @classmethod
    def of(cls, layer: Any, pack: bool, int8: Int8Projections | None) -> _LayerLinears:
        attn, mlp = layer.self_attn, layer.mlp
        qkv_weights = [attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]
        gate, up = mlp.gate_proj.weight, mlp.up_proj.weight
        o, down = attn.o_proj.weight, mlp.down_proj.weight
        qkv = stacked_linear(qkv_weights, pack)
        gated = gated_linear(gate, up, pack)
        o_add, down_add = residual_linear(o, pack), residual_linear(down, pack)
        if int8 is None:
            return cls(
                float_rows(qkv), float_residual_rows(o_add), float_rows(gated),
                float_residual_rows(down_add),
            )  # fmt: skip
        return cls(
            int8.stacked(qkv_weights, qkv),
            int8.residual(o, o_add),
            int8.gated(gate, up, gated),
            int8.residual(down, down_add),
        )


class LlamaBatchForward:
    """Runs a loaded Hugging Face Llama model's weights over a ``StepBatch``.

    Args:
        model: A ``LlamaForCausalLM`` (eval mode).
        cache: Where keys and values live; sized for this model.
        pack_weights: Run bf16 CPU projections on weights packed for oneDNN
            (``packed_linear``; a copy of the weights); ``False`` for ``F.linear``.
        decode_weights: ``"int8"``: also keep every projection's weight as INT8 and
            run decode rows on it (``int8_linear``); ``"int4"``: 4-bit copies too, for
            steps of a few decode rows (``int4_linear``); CPU only. ``"model"``: none.
        decode_attention, prefill_attention: The attention kernels of decode rows
            and of prompt chunks (``step_attention``); ``None``: torch's SDPA.

    Raises:
        ModelLoadError: The model is not a supported Llama-family model.
    """

    def __init__(
        self,
        model: Any,
        cache: KVCache,
        pack_weights: bool = True,
        decode_weights: str = "model",
        decode_attention: DecodeAttention | None = None,
        prefill_attention: PrefillAttention | None = None,
    ) -> None:
        config = model.config
        check_supported(config)
        self._model = model
        self.cache = cache
        self._layers = list(model.model.layers)
        self._heads = int(config.num_attention_heads)
        self._kv_heads = int(config.num_key_value_heads)
        self._head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // self._heads)
        self._eps = float(config.rms_norm_eps)
        self._norm_shape = (int(config.hidden_size),)
        self._device = next(model.parameters()).device
        self._attention = StepAttention(
            self._heads, self._kv_heads, self._head_dim, cache.keys.dtype, self._device,
            decode_attention, prefill_attention,
        )  # fmt: skip
        check_decode_weights(decode_weights)
        int8 = (
            None if decode_weights == "model" else decode_projections(self._device, decode_weights)
        )
        self._linears = [_LayerLinears.of(layer, pack_weights, int8) for layer in self._layers]
        head = linear(model.lm_head.weight, pack_weights)
        self._lm_head = (
            float_rows(head) if int8 is None else int8.linear(model.lm_head.weight, head)
        )
        self.int8_bytes = 0 if int8 is None else int8.bytes
        """Bytes of INT8 weights held beside the model's own (0 for ``"model"``)."""
        self.int4_bytes = int8.int4_bytes if isinstance(int8, Int4Projections) else 0
        """Bytes of 4-bit weights and their scales held (``"int4"`` only)."""
        if int8 is not None:
            int8.log()

    @classmethod
    def with_cache(
        cls,
        loaded: LoadedModel,
        slots: int,
        max_seq_len: int,
        decode_weights: str = "model",
        decode_attention: DecodeAttention | None = None,
        prefill_attention: PrefillAttention | None = None,
    ) -> LlamaBatchForward:
        """A forward pass over a new ``KVCache`` of ``slots`` x ``max_seq_len`` for ``loaded``."""
        layers, kv_heads, head_dim = cls.cache_geometry(loaded.model)
        cache = KVCache(layers, slots, kv_heads, max_seq_len, head_dim, loaded.dtype, loaded.device)
        return cls(loaded.model, cache, True, decode_weights, decode_attention, prefill_attention)

    @staticmethod
    def cache_geometry(model: Any) -> tuple[int, int, int]:
        """``(layers, kv_heads, head_dim)`` of ``model``, to size a ``KVCache``."""
        config = model.config
        check_supported(config)
        heads = int(config.num_attention_heads)
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
        return int(config.num_hidden_layers), int(config.num_key_value_heads), head_dim

    def _rms_norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # torch.rms_norm gives the same bits as HF's float32 steps in one call, not
        # six (and skips F.rms_norm's Python wrapper: 60 calls a step).
        h = torch.rms_norm(x.to(torch.float32), self._norm_shape, eps=self._eps)
        return weight * h.to(x.dtype)

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
        """Rotary embedding: ``x * cos + rotate_half(x) * sin``."""
        return (x * cos) + (x.roll(self._head_dim // 2, dims=-1) * signed_sin)

    @torch.inference_mode()
    def forward(self, batch: StepBatch) -> torch.Tensor:
        """Run one step: write every row's keys and values, return the wanted logits.

        Returns:
            ``[len(batch.logit_rows), vocab]`` float32 logits.
        """
        device = self._device
        cache = self.cache
        ids = torch.tensor(batch.token_ids, device=device)
        positions = torch.tensor(batch.positions, device=device)
        row_slots = list(batch.decode_slots)
        for chunk in batch.prefills:
            row_slots.extend([chunk.slot] * chunk.length)
        slots = torch.tensor(row_slots, device=device)
        rows = len(batch.token_ids)
        n_decode = len(batch.decode_slots)
        # Rows on the decode rows' weights (INT8 where chosen): decode rows and drafts.
        n_fast = n_decode + sum(chunk.length for chunk in batch.prefills if chunk.draft)
        if n_fast < rows:
            # NOTE: a step with prompt rows reads the model's weights for them anyway;
            # its decode rows share that read instead of reading the INT8 copies too.
            n_fast = 0

        hidden = self._model.model.embed_tokens(ids)
        cos, sin = self._model.model.rotary_emb(hidden[None], positions[None])
        cos, sin = cos[0, :, None, :], sin[0, :, None, :]
        half = self._head_dim // 2
        # rotate_half(x) * sin == roll(x, half) * signed_sin, bit for bit: -(a) * b is
        # a * (-b) in IEEE arithmetic. One roll a layer instead of two slices, a neg
        # and a cat.
        signed_sin = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)
        decode_ctx, prefill_masks = self._attention.prepare(batch)
        # SDPA decode attention reads slots 0 .. span - 1 up to length: zero what nobody
        # wrote there yet, before this step's writes count as written (the kernel reads
        # each row's own written positions only, so it needs no zeroing).
        if decode_ctx is not None and self._attention.reads_unwritten:
            cache.ensure_finite(decode_ctx.span, decode_ctx.length)
        for slot, position in zip(batch.decode_slots, batch.positions, strict=False):
            cache.mark_written(slot, position, position + 1)
        for chunk in batch.prefills:
            cache.mark_written(chunk.slot, chunk.start, chunk.start + chunk.length)

        qk_heads = self._heads + self._kv_heads
        qk_width = qk_heads * self._head_dim
        for index, (layer, lin) in enumerate(zip(self._layers, self._linears, strict=True)):
            x = self._rms_norm(hidden, layer.input_layernorm.weight)
            qkv = lin.qkv(x, n_fast)
            # NOTE: q and k are rotated together: one set of elementwise calls, not two.
            qk = self._rotate(qkv[:, :qk_width].view(rows, qk_heads, -1), cos, signed_sin)
            q, k = qk[:, : self._heads], qk[:, self._heads :]
            v = qkv[:, qk_width:].view(rows, self._kv_heads, self._head_dim)
            layer_keys, layer_values = cache.keys[index], cache.values[index]
            layer_keys[slots, :, positions] = k.to(layer_keys.dtype)
            layer_values[slots, :, positions] = v.to(layer_values.dtype)

            if decode_ctx is not None and not batch.prefills:
                out = self._attention.decode(q, layer_keys, layer_values, decode_ctx)
            else:
                out = torch.empty_like(q)
                if decode_ctx is not None:
                    out[:n_decode] = self._attention.decode(
                        q[:n_decode], layer_keys, layer_values, decode_ctx
                    )
                row = n_decode
                for chunk, mask in zip(batch.prefills, prefill_masks, strict=True):
                    rows_of = slice(row, row + chunk.length)
                    self._attention.prefill(
                        q[rows_of], layer_keys, layer_values, chunk, mask, out[rows_of]
                    )
                    row += chunk.length
            hidden = lin.o(out.reshape(rows, -1), hidden, n_fast)
            x = self._rms_norm(hidden, layer.post_attention_layernorm.weight)
            hidden = lin.down(lin.mlp(x, n_fast), hidden, n_fast)

        wanted = hidden[torch.tensor(batch.logit_rows, dtype=torch.long, device=device)]
        wanted = self._rms_norm(wanted, self._model.model.norm.weight)
        logits = self._lm_head(wanted, _leading_decode_rows(batch.logit_rows, n_fast))
        return logits.float()


def _leading_decode_rows(logit_rows: list[int], n_decode: int) -> int:
    """How many of the wanted rows, from the first, are decode rows (the engine
    wants decode rows' logits first; any other order counts none as decode)."""
    count = 0
    for row in logit_rows:
        if row >= n_decode:
            break
        count += 1
    return count if all(row >= n_decode for row in logit_rows[count:]) else 0
