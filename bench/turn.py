"""What a chat turn costs over bare generation, on the same prompt and model.

Baseline: Hugging Face ``generate`` on the exact prompt the pipeline builds, no
streaming, nothing stored. ragserve: the whole turn (load conversation, store the
user message, retrieve, build the prompt, stream from the engine, cite, store the
answer). Same process, same greedy decoding, same max_tokens, so the ratio is the
pipeline's overhead. Run ``python -m bench.turn [--quick]``; JSON goes to
``bench/results/turn.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import torch

from app.chat.events import TurnFinished
from app.chat.prompt import Source, build_messages
from app.chat.turn import TurnOptions, TurnRequest
from bench.machine import describe, machine
from bench.services import bench_services
from inference import TokenEvent

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "What does the turn pipeline do?",
    "How do I cancel a turn over WebSocket?",
    "Where are the chunks stored?",
    "Which close code means a bad token?",
    "How are API keys stored?",
    "What happens when a document is re-ingested?",
]


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(quick: bool) -> dict[str, object]:
    questions = QUESTIONS[:3] if quick else QUESTIONS
    max_tokens = 32 if quick else 64
    async with bench_services() as services:
        assert services.engine is not None
        tenant = await services.tenants.ensure("bench")
        for doc in sorted((REPO / "docs").glob("*.md")):
            await services.retrieval.ingest(tenant.id, doc.name, doc.read_bytes())
        loaded = services.engine.loaded
        rows: list[dict[str, float | int | str]] = []
        for question in questions:
            options = TurnOptions(max_tokens=max_tokens, repetition_penalty=1.0)
            start = time.perf_counter()
            first: float | None = None
            answer = None
            async for event in services.pipeline.run(
                TurnRequest(tenant.id, None, question, options)
            ):
                if isinstance(event, TokenEvent) and first is None:
                    first = time.perf_counter() - start
                if isinstance(event, TurnFinished):
                    answer = event.message
            turn_s = time.perf_counter() - start
            assert answer is not None
            completion = int(answer.usage["completion_tokens"])
            prompt_ids_len = int(answer.usage["prompt_tokens"])
            # The baseline gets the very prompt the turn used, rebuilt from the
            # sources stored with the answer (a new conversation has no history).
            sources = [Source.from_dict(s) for s in answer.sources]
            prompt_ids = services.engine.render_chat(build_messages(question, sources, []))
            assert len(prompt_ids) == prompt_ids_len
            with torch.inference_mode():
                ids = torch.tensor([prompt_ids])
                start = time.perf_counter()
                out = loaded.model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=completion,
                    min_new_tokens=completion,
                    do_sample=False,
                )
                base_s = time.perf_counter() - start
            assert out.shape[1] - ids.shape[1] == completion
            rows.append(
                {
                    "question": question,
                    "prompt_tokens": prompt_ids_len,
                    "completion_tokens": completion,
                    "turn_s": round(turn_s, 3),
                    "turn_first_token_s": round(first or turn_s, 3),
                    "generate_s": round(base_s, 3),
                    "ratio": round(turn_s / base_s, 3),
                }
            )
            print(
                f"{question[:40]:40s} prompt {prompt_ids_len:4d} out {completion:3d}  "
                f"turn {turn_s:6.2f}s (first token {first or 0:5.2f}s)  "
                f"generate {base_s:6.2f}s  ratio {turn_s / base_s:5.2f}"
            )
    ratios = [float(r["ratio"]) for r in rows]
    summary = {
        "benchmark": "turn",
        "machine": machine(),
        "quick": quick,
        "dtype": str(loaded.dtype),
        "turns": rows,
        "ratio_p50": round(statistics.median(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "first_token_p50_s": round(_p([float(r["turn_first_token_s"]) for r in rows], 0.5), 3),
    }
    print(f"turn / bare generate: p50 {summary['ratio_p50']}, max {summary['ratio_max']}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 questions, 32 tokens")
    args = parser.parse_args()
    print(describe())
    summary = asyncio.run(run(args.quick))
    out = REPO / "bench" / "results" / "turn.json"
    out.write_text(json.dumps(summary, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
