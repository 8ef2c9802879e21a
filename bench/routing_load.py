"""The client side of the routing benchmark: fresh prompts, streamed requests, figures."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from bench.generation_stats import percentile
from bench.generation_workload import QUESTIONS, load_corpus

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    import openai
    from openai.types.chat import ChatCompletionMessageParam

    from inference import ChatMessage

MAX_TOKENS = 32
"""Every request's output budget (greedy decoding; EOS may end it sooner)."""


@dataclass(slots=True)
class Sample:
    """One request as the client saw it (``time.perf_counter()`` seconds)."""

    start: float
    first: float | None = None
    end: float = 0.0
    tokens: int = 0


def summarise(samples: Sequence[Sample]) -> dict[str, Any]:
    """Throughput over the whole run, TTFT and latency quantiles, in seconds."""
    wall = max(s.end for s in samples) - min(s.start for s in samples)
    tokens = sum(s.tokens for s in samples)
    ttft = [(s.first or s.end) - s.start for s in samples]
    latency = [s.end - s.start for s in samples]
    return {
        "requests": len(samples),
        "completion_tokens": tokens,
        "wall_s": round(wall, 3),
        "output_tokens_per_s": round(tokens / wall, 2),
        "requests_per_s": round(len(samples) / wall, 3),
        "ttft_s": {f"p{q}": round(percentile(ttft, q / 100), 4) for q in (50, 95)},
        "latency_s": {f"p{q}": round(percentile(latency, q / 100), 4) for q in (50, 95)},
    }


class Prompts:
    """Fixed questions, each over its own passage of the Python reference.

    Every load run gets passages no earlier run had: whatever a node kept from one
    run, the next one starts from the same footing.
    """

    def __init__(self) -> None:
        self._corpus = load_corpus(lambda text: len(text) // 4)  # about 4 characters a token
        self._next = 0

    def take(self, count: int) -> list[str]:
        out = []
        for _ in range(count):
            passage = self._corpus[self._next % len(self._corpus)]
            question = QUESTIONS[self._next % len(QUESTIONS)]
            out.append(f"{passage.text.strip()}\n\n" + question.format(topic=passage.topic))
            self._next += 1
        return out


async def stream_openai(
    client: openai.AsyncOpenAI,
    model: str,
    messages: list[ChatCompletionMessageParam],
    extra: dict[str, Any],
) -> Sample:
    """Stream one chat completion; the client's timings and the usage's token count."""
    sample = Sample(time.perf_counter())
    stream = await client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=extra or None,
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and sample.first is None:
            sample.first = time.perf_counter()
        if chunk.usage is not None:
            sample.tokens = chunk.usage.completion_tokens
    sample.end = time.perf_counter()
    return sample


async def closed_loop(
    send: Callable[[str], Awaitable[Sample]], questions: Sequence[str], concurrency: int
) -> list[Sample]:
    """``concurrency`` clients, each sending its next question once answered."""
    pending = iter(questions)
    samples: list[Sample] = []

    async def client() -> None:
        for question in pending:
            samples.append(await send(question))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return samples


def ratios(new: dict[str, Any], old: dict[str, Any]) -> dict[str, float]:
    return {
        "output_tokens_per_s": round(new["output_tokens_per_s"] / old["output_tokens_per_s"], 3),
        "requests_per_s": round(new["requests_per_s"] / old["requests_per_s"], 3),
        "ttft_p50": round(new["ttft_s"]["p50"] / old["ttft_s"]["p50"], 3),
        "ttft_p95": round(new["ttft_s"]["p95"] / old["ttft_s"]["p95"], 3),
    }


def row(s: dict[str, Any]) -> str:
    return (
        f"{s['output_tokens_per_s']:7.1f} tok/s {s['requests_per_s']:6.3f} req/s  "
        f"TTFT p50/p95 {s['ttft_s']['p50']:.3f}/{s['ttft_s']['p95']:.3f} s  "
        f"latency p50/p95 {s['latency_s']['p50']:.3f}/{s['latency_s']['p95']:.3f} s"
    )


async def alternate(
    first: Callable[[str], Awaitable[Sample]],
    second: Callable[[str], Awaitable[Sample]],
    prompts: Prompts,
    rounds: int,
) -> tuple[list[Sample], list[Sample]]:
    """Sequential pairs of requests: ``first`` and ``second`` on the same fresh question.

    NOTE: the nodes keep no prefix cache (see ``bench/routing.py``), so the second of
    a pair is not helped by the first; which goes first alternates all the same.
    """
    a: list[Sample] = []
    b: list[Sample] = []
    for i in range(rounds):
        question = prompts.take(1)[0]
        for send, into in ((first, a), (second, b)) if i % 2 == 0 else ((second, b), (first, a)):
            into.append(await send(question))
    return a, b


def difference(name_a: str, a: list[Sample], name_b: str, b: list[Sample]) -> dict[str, Any]:
    """Per-request TTFT and total latency of both, in ms, b's quantiles minus a's, and
    the median of the paired differences (``b[i] - a[i]``: the same prompt, one
    right after the other), which machine noise and prompt lengths disturb least."""

    def quantiles(values: list[float]) -> dict[str, float]:
        return {f"p{q}": round(percentile(values, q / 100) * 1000, 2) for q in (50, 95)}

    def ttft(s: Sample) -> float:
        return (s.first or s.end) - s.start

    def total(s: Sample) -> float:
        return s.end - s.start

    out: dict[str, Any] = {}
    for label, get in (("ttft_ms", ttft), ("total_ms", total)):
        qa, qb = quantiles([get(s) for s in a]), quantiles([get(s) for s in b])
        diff = {p: round(qb[p] - qa[p], 2) for p in qa}
        paired = round(
            percentile([get(y) - get(x) for x, y in zip(a, b, strict=True)], 0.5) * 1000, 2
        )
        out[label] = {name_a: qa, name_b: qb, "difference": diff, "paired_median": paired}
        print(
            f"  {label:8s} {name_a} {qa}  {name_b} {qb}  difference {diff}  paired median {paired}"
        )
    out["requests_each"] = len(a)
    return out


def as_dict(message: ChatMessage) -> ChatCompletionMessageParam:
    return cast("ChatCompletionMessageParam", {"role": message.role, "content": message.content})
