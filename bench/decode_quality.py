"""What INT8 and 4-bit decode weights cost in answers: greedy output against the model's.

The same real prompts (``bench.serve_load.prompts``: Python reference passages and
a question, ~450 tokens, in the model's chat template) are answered greedily,
``max_tokens`` tokens each, by ``BatchingEngine``s on the same loaded model:
``decode_weights="model"`` (the reference), ``"int8"`` and ``"int4"``. Each is run
one request at a time and ``concurrency`` at a time (co-decoding INT8 rows share an
activation scale; with ``int4`` a step of more than 4 rows runs on INT8). Reported
per run: the share of answers identical to the reference, and how far answers agree
on average (the common prefix's share of the reference's characters). Greedy text
diverges at the first near-tie, so the teacher-forced figures say more: the
reference's own greedy tokens fed back one decode row at a time, with the share of
steps where each quantized set's top token is the reference's, and the perplexity
of those tokens under each set of weights.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
from typing import TYPE_CHECKING, Any

import torch
from prometheus_client import CollectorRegistry

from bench.serve_load import prompts
from inference.batch_forward import LlamaBatchForward
from inference.batching_engine import BatchingEngine
from inference.engine_support import render_chat
from inference.kv_cache import KVCache
from inference.step_batch import StepBatch
from inference.types import ChatMessage, GenerationRequest, SamplingParams, TokenEvent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from inference.loader import LoadedModel

QUANTIZED = ("int8", "int4")
"""The decode weights measured against the model's own."""


async def _answer(engine: BatchingEngine, prompt: list[int], max_tokens: int) -> str:
    request = GenerationRequest(
        request_id=os.urandom(8).hex(),
        prompt_token_ids=prompt,
        sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0),
    )
    pieces = [e.text async for e in engine.generate(request) if isinstance(e, TokenEvent)]
    return "".join(pieces)


async def _answers(
    loaded: LoadedModel, weights: str, rendered: Sequence[list[int]], max_tokens: int, at_once: int
) -> list[str]:
    engine = BatchingEngine(
        lambda: loaded,
        decode_weights=weights,  # type: ignore[arg-type]
        prefix_cache_bytes=0,
        registry=CollectorRegistry(),
    )
    await engine.start()
    try:
        gate = asyncio.Semaphore(at_once)

        async def one(prompt: list[int]) -> str:
            async with gate:
                return await _answer(engine, prompt, max_tokens)

        return list(await asyncio.gather(*(one(p) for p in rendered)))
    finally:
        await engine.stop()


def _agreement(reference: Sequence[str], answers: Sequence[str]) -> dict[str, float]:
    def prefix_share(a: str, b: str) -> float:
        common = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(b))
        return common / max(len(a), 1)

    pairs = list(zip(reference, answers, strict=True))

    return {
        "identical": round(sum(a == b for a, b in pairs) / len(pairs), 3),
        "mean_prefix_share": round(statistics.mean(prefix_share(a, b) for a, b in pairs), 3),
    }


def teacher_forced(
    loaded: LoadedModel, rendered: Sequence[list[int]], steps: int
) -> dict[str, Any]:
    """Feed the reference's greedy tokens one decode row at a time to both weights."""
    layers, kv_heads, head_dim = LlamaBatchForward.cache_geometry(loaded.model)
    longest = max(len(p) for p in rendered) + steps + 1
    made = {}
    for name in ("model", *QUANTIZED):
        cache = KVCache(layers, 1, kv_heads, longest, head_dim, loaded.dtype, loaded.device)
        made[name] = LlamaBatchForward(loaded.model, cache, decode_weights=name)
    agree = dict.fromkeys(QUANTIZED, 0)
    total = 0
    nll = dict.fromkeys(made, 0.0)
    for prompt in rendered:
        logits = {}
        for name, forward in made.items():
            batch = StepBatch()
            batch.logit_rows.append(batch.add_prefill(0, prompt, 0))
            logits[name] = forward.forward(batch)[0]
        for step in range(steps):
            token = int(logits["model"].argmax())
            for name in QUANTIZED:
                agree[name] += int(int(logits[name].argmax()) == token)
            total += 1
            for name, forward in made.items():
                nll[name] -= float(torch.log_softmax(logits[name], -1)[token])
                batch = StepBatch()
                batch.logit_rows.append(batch.add_decode(0, token, len(prompt) + step))
                logits[name] = forward.forward(batch)[0]
    return {
        "steps": total,
        "top1_agreement": {name: round(a / total, 4) for name, a in agree.items()},
        "perplexity": {name: round(math.exp(v / total), 4) for name, v in nll.items()},
    }


def quantized_quality(
    loaded: LoadedModel, count: int, max_tokens: int = 64, concurrency: int = 8
) -> dict[str, Any]:
    """Greedy answers of INT8 and 4-bit decode weights against the model's own, on
    ``count`` prompts."""
    tokenizer = loaded.tokenizer
    texts = prompts(lambda t: len(tokenizer.encode(t)), count, seed=1)
    rendered = [render_chat(tokenizer, (ChatMessage(role="user", content=text),)) for text in texts]

    async def run() -> dict[str, Any]:
        reference = await _answers(loaded, "model", rendered, max_tokens, 1)
        report: dict[str, Any] = {
            "teacher_forced": teacher_forced(loaded, rendered, max_tokens),
            "prompts": count,
            "max_tokens": max_tokens,
        }
        for name in QUANTIZED:
            alone = await _answers(loaded, name, rendered, max_tokens, 1)
            together = await _answers(loaded, name, rendered, max_tokens, concurrency)
            report[f"{name}_alone"] = _agreement(reference, alone)
            report[f"{name}_c{concurrency}"] = _agreement(reference, together)
        return report

    return asyncio.run(run())
