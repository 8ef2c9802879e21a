"""The serving benchmark's load: prompts, clients and figures, in the vocabulary of
``vllm bench serve``.

Prompts are real documentation and a real question: 2-4 passages of the Python
language reference (``pydoc_data``, shipped with Python) and a question about them,
cut to about 450 tokens of SmolLM2's tokenizer, the same list for every server.
A multi-turn conversation asks two follow-ups after its first question, each sent
with the conversation so far.

Per request the client records when it sent it, when each streamed piece came and
the usage's token counts. Reported per load point: TTFT, TPOT (time per output
token after the first), ITL (gaps between streamed pieces) and end-to-end latency
at p50/p90/p99; output and total tokens/s, requests/s, goodput (requests/s that met
the SLO) and errors.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.generation_stats import percentile
from bench.generation_workload import QUESTIONS, load_corpus

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    import openai

SLO_TTFT_S = 2.0
SLO_TPOT_S = 0.1
"""The goodput SLO: a request is good when its TTFT and its TPOT are both within."""
FOLLOW_UPS = ("Give a short example of that.", "Summarise your answer in one sentence.")
QUANTILES = (50, 90, 95, 99)


@dataclass(slots=True)
class Sample:
    """One request as the client saw it (``time.perf_counter()`` seconds)."""

    start: float
    pieces: list[float] = field(default_factory=list)
    end: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    text: str = ""

    @property
    def ttft(self) -> float:
        return (self.pieces[0] if self.pieces else self.end) - self.start

    @property
    def tpot(self) -> float:
        """Seconds per output token after the first (vLLM's TPOT)."""
        if self.completion_tokens < 2:
            return 0.0
        return (self.end - self.start - self.ttft) / (self.completion_tokens - 1)


def prompts(count_tokens: Callable[[str], int], count: int, seed: int = 0) -> list[str]:
    """``count`` user messages of about 450 tokens: passages and a question."""
    corpus = load_corpus(count_tokens)
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        start = rng.randrange(len(corpus))
        topic = corpus[start].topic
        question = rng.choice(QUESTIONS).format(topic=topic.replace("-", " "))
        text = ""
        for passage in corpus[start : start + 4]:
            candidate = f"{text}\n\n{passage.text.strip()}" if text else passage.text.strip()
            if count_tokens(candidate) > 440:
                break
            text = candidate
        if count_tokens(text) < 340:
            continue
        out.append(f"Documentation:\n\n{text}\n\nQuestion: {question}")
    return out


async def stream_openai(
    client: openai.AsyncOpenAI,
    model: str,
    messages: list[dict[str, str]],
    max_tokens: int,
    extra: dict[str, Any] | None,
    temperature: float = 0.0,
) -> Sample:
    """Stream one chat completion with the OpenAI SDK (greedy at temperature 0)."""
    sample = Sample(time.perf_counter())
    parts: list[str] = []
    try:
        stream = await client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=max_tokens,
            temperature=temperature,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=extra,
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                sample.pieces.append(time.perf_counter())
                parts.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                sample.prompt_tokens = chunk.usage.prompt_tokens
                sample.completion_tokens = chunk.usage.completion_tokens
    except Exception as exc:  # counted, reported, never fatal to the run
        sample.error = f"{type(exc).__name__}: {exc}"[:300]
    sample.end = time.perf_counter()
    sample.text = "".join(parts)
    if not sample.completion_tokens:
        sample.completion_tokens = len(sample.pieces)
    return sample


async def stream_ws(url: str, key: str, turns: Sequence[str], max_tokens: int) -> list[Sample]:
    """One ragserve conversation over the WebSocket protocol: its turns in order,
    each follow-up in the same stored conversation (retrieval off)."""
    import websockets

    samples: list[Sample] = []
    async with websockets.connect(url, max_size=None) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"token": key}}))
        json.loads(await socket.recv())
        conversation: str | None = None
        for n, content in enumerate(turns):
            sample = Sample(time.perf_counter())
            payload = {
                "conversation_id": conversation,
                "content": content,
                "options": {"max_tokens": max_tokens, "retrieval_k": 0, "temperature": 0},
            }
            await socket.send(json.dumps({"type": "chat", "id": f"t{n}", "payload": payload}))
            while True:
                message = json.loads(await socket.recv())
                kind, body = message["type"], message.get("payload") or {}
                if kind == "conversation":
                    conversation = body["conversation_id"]
                elif kind == "token":
                    sample.pieces.append(time.perf_counter())
                elif kind == "done":
                    usage = body.get("usage") or {}
                    sample.prompt_tokens = int(usage.get("prompt_tokens", 0))
                    sample.completion_tokens = int(usage.get("completion_tokens", 0))
                    break
                elif kind == "error":
                    sample.error = str(body.get("message"))[:300]
                    break
            sample.end = time.perf_counter()
            samples.append(sample)
    return samples


async def closed_loop(
    send: Callable[[list[dict[str, str]]], Awaitable[Sample]],
    questions: Sequence[str],
    concurrency: int,
    turns: int = 1,
) -> list[Sample]:
    """``concurrency`` clients, each starting its next conversation once its last
    turn is answered; a conversation of ``turns`` sends each follow-up with the
    conversation so far."""
    pending = iter(questions)
    samples: list[Sample] = []

    async def client() -> None:
        for question in pending:
            messages = [{"role": "user", "content": question}]
            for turn in range(turns):
                sample = await send(messages)
                samples.append(sample)
                if sample.error or turn == turns - 1:
                    break
                messages += [
                    {"role": "assistant", "content": sample.text},
                    {"role": "user", "content": FOLLOW_UPS[turn % len(FOLLOW_UPS)]},
                ]

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return samples


async def open_loop(
    send: Callable[[list[dict[str, str]]], Awaitable[Sample]],
    questions: Sequence[str],
    rate: float,
    seed: int = 0,
) -> list[Sample]:
    """Requests arriving as a Poisson process of ``rate`` per second."""
    rng = random.Random(seed)
    tasks = []
    for question in questions:
        tasks.append(asyncio.create_task(send([{"role": "user", "content": question}])))
        await asyncio.sleep(rng.expovariate(rate))
    return list(await asyncio.gather(*tasks))


def summarise(samples: Sequence[Sample]) -> dict[str, Any]:
    """vLLM's figures for one load point."""
    ok = [s for s in samples if s.error is None]
    if not ok:
        return {"requests": len(samples), "errors": len(samples)}
    wall = max(s.end for s in samples) - min(s.start for s in samples)
    out_tokens = sum(s.completion_tokens for s in ok)
    in_tokens = sum(s.prompt_tokens for s in ok)
    itl = [b - a for s in ok for a, b in zip(s.pieces, s.pieces[1:], strict=False)]
    good = [s for s in ok if s.ttft <= SLO_TTFT_S and s.tpot <= SLO_TPOT_S]

    def quantiles(values: list[float]) -> dict[str, float]:
        if not values:
            return {}
        stats = {f"p{q}": round(percentile(values, q / 100), 4) for q in QUANTILES}
        return {"mean": round(sum(values) / len(values), 4), **stats}

    return {
        "requests": len(samples),
        "errors": len(samples) - len(ok),
        "error_examples": sorted({s.error for s in samples if s.error})[:3],
        "duration_s": round(wall, 2),
        "prompt_tokens_mean": round(in_tokens / len(ok), 1),
        "completion_tokens": out_tokens,
        "output_tokens_per_s": round(out_tokens / wall, 2),
        "total_tokens_per_s": round((in_tokens + out_tokens) / wall, 2),
        "requests_per_s": round(len(ok) / wall, 3),
        "goodput_requests_per_s": round(len(good) / wall, 3),
        "ttft_s": quantiles([s.ttft for s in ok]),
        "tpot_s": quantiles([s.tpot for s in ok if s.completion_tokens > 1]),
        "itl_s": quantiles(itl),
        "e2el_s": quantiles([s.end - s.start for s in ok]),
    }


def row(name: str, point: str, s: dict[str, Any]) -> str:
    if "ttft_s" not in s:
        return f"{name:<10} {point:<12} all {s['requests']} requests failed"
    return (
        f"{name:<10} {point:<12} out {s['output_tokens_per_s']:7.1f} tok/s  "
        f"req {s['requests_per_s']:5.2f}/s  good {s['goodput_requests_per_s']:5.2f}/s  "
        f"TTFT p50 {s['ttft_s']['p50']:6.2f} p99 {s['ttft_s']['p99']:6.2f} s  "
        f"TPOT p50 {1000 * s['tpot_s'].get('p50', 0):5.0f} ms  "
        f"ITL p99 {1000 * s['itl_s'].get('p99', 0):5.0f} ms  errors {s['errors']}"
    )
