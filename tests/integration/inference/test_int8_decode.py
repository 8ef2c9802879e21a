"""INT8 and 4-bit decode weights on the real SmolLM2-135M-Instruct: prompt rows
exactly the model's own, decode rows close to them, deterministic alone."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
import torch
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from app.core.settings import GenerationSettings
from inference.batch_forward import LlamaBatchForward
from inference.batching_engine import BatchingEngine
from inference.int8_linear import Int8Projections
from inference.kv_cache import KVCache
from inference.step_batch import StepBatch
from inference.types import ChatMessage, GenerationRequest, SamplingParams, TokenEvent

if TYPE_CHECKING:
    from inference.loader import LoadedModel

pytestmark = pytest.mark.model

SYSTEM = (
    "Answer from the sources and cite them. Source 1: the prefix cache reuses the keys "
    "and values of shared prompt prefixes, in blocks of tokens."
)


def _engine(
    loaded: LoadedModel, registry: CollectorRegistry, weights: str = "int8", **knobs: int
) -> BatchingEngine:
    return BatchingEngine(
        lambda: loaded,
        decode_weights=weights,  # type: ignore[arg-type]
        max_seq_len=1024,
        registry=registry,
        **knobs,  # type: ignore[arg-type]
    )


def _request(engine: BatchingEngine, question: str) -> GenerationRequest:
    prompt = engine.render_chat([ChatMessage("system", SYSTEM), ChatMessage("user", question)])
    return GenerationRequest(
        request_id=uuid.uuid4().hex,
        prompt_token_ids=prompt,
        sampling=SamplingParams(max_tokens=16),
    )


async def _text(engine: BatchingEngine, request: GenerationRequest) -> str:
    return "".join([e.text async for e in engine.generate(request) if isinstance(e, TokenEvent)])


SEVEN_BIT_ACTIVATIONS = Int8Projections()._reduce
"""No VNNI here: INT8 quantizes activations to 7 bits (``int8_linear``), further
off (25 of 32 on an AVX2-only EPYC where VNNI CPUs agree on 28 or more)."""


@pytest.mark.parametrize(
    ("weights", "cosine_floor", "min_agree"),
    [("int8", 0.98, 24 if SEVEN_BIT_ACTIVATIONS else 28), ("int4", 0.95, 26)],
)
def test_quantized_decode_steps_pick_the_same_tokens_as_the_models_weights(
    loaded_fp32: LoadedModel, weights: str, cosine_floor: float, min_agree: int
) -> None:
    """Teacher-forced: the model's own greedy tokens fed back one decode row at a
    time; the quantized logits stay close and their top token agrees on nearly
    every step."""
    layers, kv_heads, head_dim = LlamaBatchForward.cache_geometry(loaded_fp32.model)
    made = {}
    for quantized in (False, True):
        cache = KVCache(layers, 1, kv_heads, 256, head_dim, torch.float32, torch.device("cpu"))
        made[quantized] = LlamaBatchForward(
            loaded_fp32.model, cache, decode_weights=weights if quantized else "model"
        )
    assert made[True].int8_bytes > 100 * 2**20  # every projection, the LM head too
    if weights == "int4":  # half a byte a weight, plus a bf16 scale and offset per 32
        assert 60 * 2**20 < made[True].int4_bytes < made[True].int8_bytes
    else:
        assert made[True].int4_bytes == 0
    prompt = loaded_fp32.tokenizer.encode("The prefix cache of a serving engine reuses")
    logits = {}
    for int8, forward in made.items():
        batch = StepBatch()
        batch.logit_rows.append(batch.add_prefill(0, prompt, 0))
        logits[int8] = forward.forward(batch)[0]
    assert torch.equal(logits[True], logits[False])  # prompt rows: the model's weights
    agree = 0
    for step in range(32):
        token = int(logits[False].argmax())
        agree += int(int(logits[True].argmax()) == token)
        if step:
            cosine = torch.cosine_similarity(logits[True], logits[False], dim=0)
            assert float(cosine) > cosine_floor
        for int8, forward in made.items():
            batch = StepBatch()
            batch.logit_rows.append(batch.add_decode(0, token, len(prompt) + step))
            logits[int8] = forward.forward(batch)[0]
    assert agree >= min_agree


def test_a_step_with_prompt_rows_runs_its_decode_rows_on_the_models_weights(
    loaded_fp32: LoadedModel,
) -> None:
    """Prompt rows read the model's weights anyway: decode rows beside them share
    that read, so their logits are the model's, not INT8's."""
    layers, kv_heads, head_dim = LlamaBatchForward.cache_geometry(loaded_fp32.model)
    prompt = loaded_fp32.tokenizer.encode("The prefix cache of a serving engine reuses")
    other = loaded_fp32.tokenizer.encode("Continuous batching shares each forward pass")
    decoded = {}
    for int8 in (False, True):
        cache = KVCache(layers, 2, kv_heads, 256, head_dim, torch.float32, torch.device("cpu"))
        forward = LlamaBatchForward(
            loaded_fp32.model, cache, decode_weights="int8" if int8 else "model"
        )
        batch = StepBatch()
        batch.logit_rows.append(batch.add_prefill(0, prompt, 0))
        token = int(forward.forward(batch)[0].argmax())
        alone, mixed = StepBatch(), StepBatch()
        alone.logit_rows.append(alone.add_decode(0, token, len(prompt)))
        mixed.logit_rows.append(mixed.add_decode(0, token, len(prompt)))
        mixed.logit_rows.append(mixed.add_prefill(1, other, 0))
        decoded[int8] = (forward.forward(alone)[0], forward.forward(mixed)[0])
    assert not torch.equal(decoded[True][0], decoded[False][0])  # alone: INT8
    assert torch.allclose(decoded[True][1], decoded[False][1], atol=1e-4)  # mixed: the model's


@pytest.mark.parametrize("weights", ["int8", "int4"])
async def test_alone_quantized_greedy_is_deterministic(
    loaded_fp32: LoadedModel, weights: str
) -> None:
    """One request at a time, the same prompt always gets the same answer (INT8's
    integer products are exact whatever the thread count; a 4-bit row is its own),
    and it is an answer (INT8's words depend on the CPU: without VNNI activations
    get 7 bits)."""
    engine = _engine(loaded_fp32, CollectorRegistry(), weights, prefix_cache_bytes=0)
    await engine.start()
    try:
        question = "What does the prefix cache reuse?"
        answers = {await _text(engine, _request(engine, question)) for _ in range(3)}
        assert len(answers) == 1
        assert len(answers.pop().split()) >= 5
    finally:
        await engine.stop()


def test_unknown_decode_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="decode_weights"):
        BatchingEngine(lambda: None, decode_weights="int2")  # type: ignore[arg-type, return-value]
    with pytest.raises(ValidationError, match="decode_weights"):
        GenerationSettings(decode_weights="int2")  # type: ignore[arg-type]
    assert GenerationSettings().decode_weights == "model"
