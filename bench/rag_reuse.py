"""RAG-aware KV reuse: multi-turn conversations with retrieval on, sources in a stable
order against sources by rank.

A follow-up's prompt is the instructions, the numbered sources, the history and the
question. Numbered by rank, a chunk the previous turn also showed usually moves,
and the prompt stops matching the previous one (whose keys and values the engine's
prefix cache holds) right after the instructions. ``stable_order``
(``app/chat/prompt.py``) keeps such chunks where they were. This benchmark asks the
same three-turn conversations both ways, each in a fresh process state (a fresh
prefix cache), and reports the share of prompt tokens the prefix cache served and
the time to first token (retrieval included), per turn.

The corpus is Python's Language Reference help topics (``pydoc_data.topics``), cut
into sections, one document each; a conversation asks three questions made from the
titles of sections of one help topic (``bench/retrieval_corpus.py``), so follow-ups
retrieve some of the same chunks, as a user's follow-ups about one subject do. The
packaged model, greedy without the repetition penalty (as the other engine
benchmarks), 32 tokens an answer, one conversation at a time.

    python -m bench.rag_reuse [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY

import app.chat.context as context_module
from app.chat.events import TurnStarted
from app.chat.prompt import Source, stable_order
from app.chat.turn import TurnOptions, TurnRequest
from bench.machine import describe, machine
from bench.retrieval_corpus import LabelledQuery, build_sections, label_queries, load_topics
from bench.services import bench_services
from inference import TokenEvent

if TYPE_CHECKING:
    from collections.abc import Sequence

REPO = Path(__file__).resolve().parents[1]
TURNS = 3
MAX_TOKENS = 32


def conversations(count: int, seed: int = 0) -> tuple[list[list[str]], set[str]]:
    """``count`` conversations of ``TURNS`` questions about one help topic each, and
    the names of the sections to ingest (every section of those topics)."""
    sections = build_sections(load_topics())
    by_topic: dict[str, list[LabelledQuery]] = defaultdict(list)
    for query in label_queries(sections):
        by_topic[min(query.relevant).split("--")[0]].append(query)
    topics = sorted(t for t, qs in by_topic.items() if len(qs) >= TURNS)
    rng = random.Random(seed)
    rng.shuffle(topics)
    chats = []
    for topic in topics[:count]:
        picked = rng.sample(by_topic[topic], TURNS)
        chats.append([q.query for q in picked])
    wanted = set(topics[:count])
    return chats, {s.name for s in sections if s.name.split("--")[0] in wanted}


def _counter(name: str) -> float:
    """A counter's value summed over its labels (every model)."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == f"{name}_total"
    )


def _rank_order(sources: Sequence[Source], shown_before: Sequence[Sequence[str]]) -> list[Source]:
    return list(sources)


async def run_pass(chats: list[list[str]], names: set[str], stable: bool) -> dict[str, Any]:
    """Every conversation, one turn at a time, in a fresh process state."""
    context_module.stable_order = stable_order if stable else _rank_order  # type: ignore[assignment]
    sections = {s.name: s for s in build_sections(load_topics())}
    per_turn: dict[int, dict[str, list[float]]] = {
        t: {"ttft": [], "hits": [], "queries": []} for t in range(TURNS)
    }
    async with bench_services() as services:
        tenant = await services.tenants.ensure("reuse")
        for name in sorted(names):
            await services.retrieval.ingest(tenant.id, name, sections[name].text.encode())
        for questions in chats:
            conversation_id = None
            for turn, question in enumerate(questions):
                hits, queries = (
                    _counter("ragserve:prefix_cache_hits"),
                    _counter("ragserve:prefix_cache_queries"),
                )
                options = TurnOptions(max_tokens=MAX_TOKENS, repetition_penalty=1.0)
                began = time.perf_counter()
                first = None
                async for event in services.pipeline.run(
                    TurnRequest(tenant.id, conversation_id, question, options)
                ):
                    if isinstance(event, TurnStarted):
                        conversation_id = event.conversation_id
                    elif first is None and isinstance(event, TokenEvent):
                        first = time.perf_counter() - began
                per_turn[turn]["ttft"].append(first or 0.0)
                per_turn[turn]["hits"].append(_counter("ragserve:prefix_cache_hits") - hits)
                per_turn[turn]["queries"].append(
                    _counter("ragserve:prefix_cache_queries") - queries
                )
    context_module.stable_order = stable_order  # type: ignore[assignment]
    return {
        f"turn {t + 1}": {
            "ttft_p50_s": round(statistics.median(v["ttft"]), 3),
            "ttft_mean_s": round(statistics.fmean(v["ttft"]), 3),
            "prompt_tokens": int(sum(v["queries"])),
            "prefix_hit_tokens": int(sum(v["hits"])),
            "prefix_hit_rate": round(sum(v["hits"]) / max(sum(v["queries"]), 1), 3),
        }
        for t, v in per_turn.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 conversations (about 2 min)")
    args = parser.parse_args()
    info = machine()
    print(describe(info))
    chats, names = conversations(6 if args.quick else 16)
    print(f"{len(chats)} conversations of {TURNS} turns over {len(names)} pydoc sections")
    results = {}
    for label, stable in (("rank order", False), ("stable order", True)):
        results[label] = asyncio.run(run_pass(chats, names, stable))
        for turn, row in results[label].items():
            print(
                f"{label:12s} {turn}: prefix cache served {row['prefix_hit_tokens']} of "
                f"{row['prompt_tokens']} prompt tokens ({row['prefix_hit_rate']}), "
                f"TTFT p50 {row['ttft_p50_s']} s, mean {row['ttft_mean_s']} s",
                flush=True,
            )
    out = REPO / "bench" / "results" / f"rag_reuse{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "results": results}, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}")
    for turn in (f"turn {t + 1}" for t in range(1, TURNS)):
        rank, ours = results["rank order"][turn], results["stable order"][turn]
        print(
            f"stable / rank order, {turn}: prefix hit rate {ours['prefix_hit_rate']} vs "
            f"{rank['prefix_hit_rate']}, TTFT mean {ours['ttft_mean_s']} vs "
            f"{rank['ttft_mean_s']} s"
        )


if __name__ == "__main__":
    main()
