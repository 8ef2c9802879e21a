"""The response cache: the semantic threshold's hit and wrong-hit rates, and hit latency.

Questions: the 182 questions made by fixed rules from the section titles of Python's
Language Reference (``pydoc_data``, ``bench/retrieval_corpus.py``), split in halves by
topic (seeded): the threshold is chosen on the dev half and reported on the test half.

- Paraphrases (must hit): each question rewritten by five fixed rules that keep its
  meaning ("Can you explain X?", "Tell me about X.", ...).
- Near misses (must not hit): the question about the most similar *other* topic
  ("set types" against "mapping types", the "for" statement against "while"), and
  rewrites that change what is asked ("When should I avoid X?", "What is wrong with
  X?", "Is X deprecated?").

A pair hits at a threshold when the cosine of the two questions' embeddings (the
model the cache uses) reaches it, and, in the "scoped" columns, when both questions
also retrieve the same set of chunks from the corpus (the cache's scope: the same
sources, so the same prompt but for the question). The default threshold is the
lowest whose scoped wrong-hit rate on dev is 0: a wrong hit is worse than a miss.

Latency: a generated answer against an exact and a semantic hit, through the whole
turn pipeline in one process (p50/p95).

    python -m bench.response_cache [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.chat.events import TurnFinished
from app.chat.response_cache.guard import compatible
from app.chat.turn import TurnOptions, TurnRequest
from bench.machine import describe, machine
from bench.retrieval_corpus import build_sections, label_queries, load_topics
from bench.services import bench_services

if TYPE_CHECKING:
    from app.core.settings import Settings
    from bench.retrieval_corpus import LabelledQuery

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 11
THRESHOLDS = [round(0.80 + 0.01 * i, 2) for i in range(20)]
PARAPHRASES = {
    "explain": "Can you explain {t}?",
    "tell_me": "Tell me about {t}.",
    "please": "Please describe {t}.",
    "question": "I have a question: {q}",
    "need_to_know": "I need to understand {t}, how does it work?",
}
NEAR_MISSES = {
    "avoid": "When should I avoid {t}?",
    "wrong": "What is wrong with {t}?",
    "deprecated": "Is {t} deprecated?",
}


def _topic(query: LabelledQuery) -> str:
    title = query.title
    return title[0].lower() + title[1:] if not title[:2].isupper() else title


def pairs(queries: list[LabelledQuery], vectors: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """(cached question, new question, should hit, source) for every rule and query."""
    out: list[dict[str, Any]] = []
    for query in queries:
        topic = _topic(query)
        for name, rule in PARAPHRASES.items():
            text = rule.format(t=topic, q=query.query)
            out.append({"a": query.query, "b": text, "hit": True, "source": f"para:{name}"})
        for name, rule in NEAR_MISSES.items():
            text = rule.format(t=topic)
            out.append({"a": query.query, "b": text, "hit": False, "source": f"miss:{name}"})
        # NOTE: the same title under another heading is the same question, not a miss.
        others = [q for q in queries if _topic(q).split(" (")[0] != topic.split(" (")[0]]
        nearest = max(others, key=lambda q: float(vectors[q.query] @ vectors[query.query]))
        out.append({"a": query.query, "b": nearest.query, "hit": False, "source": "miss:nearest"})
    return out


CACHE_SCOPE = "same_set+guard"
"""The rule ``app/chat/response_cache`` enforces (see ``SCOPES``)."""
Admits = Callable[[dict[str, Any]], bool]
_RETRIEVALS: dict[str, Admits] = {
    "question_only": lambda r: True,
    "same_top1": lambda r: r["a_ids"][:1] == r["b_ids"][:1],
    "same_set": lambda r: set(r["a_ids"]) == set(r["b_ids"]),
}


def _guarded(admits: Admits) -> Admits:
    return lambda r: bool(admits(r) and r["compatible"])


SCOPES: dict[str, Admits] = {
    **_RETRIEVALS,
    **{f"{name}+guard": _guarded(admits) for name, admits in _RETRIEVALS.items()},
}
"""What else than the questions' similarity a hit may require of the two retrievals."""


def curve(rows: list[dict[str, Any]], scope: str) -> list[dict[str, Any]]:
    points = []
    admits = SCOPES[scope]
    for threshold in THRESHOLDS:
        hits = [r for r in rows if r["hit"]]
        misses = [r for r in rows if not r["hit"]]

        def fires(r: dict[str, Any], t: float = threshold) -> bool:
            return bool(r["cosine"] >= t and admits(r))

        points.append(
            {
                "threshold": threshold,
                "hit_rate": round(sum(map(fires, hits)) / max(len(hits), 1), 4),
                "wrong_hit_rate": round(sum(map(fires, misses)) / max(len(misses), 1), 4),
            }
        )
    return points


def per_source(
    rows: list[dict[str, Any]], scope: str, threshold: float
) -> dict[str, dict[str, float]]:
    """Per source: share of pairs similar enough, admitted by ``scope`` too, and admitted."""
    admits = SCOPES[scope]
    out: dict[str, dict[str, float]] = {}
    for source in sorted({r["source"] for r in rows}):
        mine = [r for r in rows if r["source"] == source]
        out[source] = {
            "pairs": len(mine),
            "similar": round(sum(r["cosine"] >= threshold for r in mine) / len(mine), 4),
            "fires": round(
                sum(r["cosine"] >= threshold and admits(r) for r in mine) / len(mine), 4
            ),
            "admitted": round(sum(bool(admits(r)) for r in mine) / len(mine), 4),
        }
    return out


def _configure(settings: Settings) -> None:
    settings.response_cache.enabled = True


async def run(quick: bool) -> dict[str, Any]:
    rng = random.Random(SEED)
    sections = build_sections(load_topics())
    queries = label_queries(sections)
    rng.shuffle(queries)
    half = len(queries) // 2
    splits = {"dev": queries[:half], "test": queries[half:]}
    if quick:
        splits = {name: qs[:40] for name, qs in splits.items()}
    async with bench_services(_configure) as services:
        tenant = await services.tenants.ensure("bench-cache")
        start = time.perf_counter()
        for section in sections:
            await services.retrieval.ingest(tenant.id, section.name, section.text.encode())
        ingest_s = time.perf_counter() - start
        retrieval = services.retrieval

        async def embed(text: str) -> np.ndarray:
            return np.asarray(await retrieval.embed_query(text), dtype=np.float32)

        async def ranked(text: str) -> list[str]:
            hits = await retrieval.search(tenant.id, text, k=4, score_floor=0.2)
            return [h.chunk_id for h in hits]

        rows: dict[str, list[dict[str, Any]]] = {}
        for name, qs in splits.items():
            vectors = {q.query: await embed(q.query) for q in qs}
            rows[name] = pairs(qs, vectors)
            for row in rows[name]:
                a, b = await embed(row["a"]), await embed(row["b"])
                row["cosine"] = round(float(a @ b), 4)
                row["a_ids"], row["b_ids"] = await ranked(row["a"]), await ranked(row["b"])
                row["compatible"] = compatible(row["a"], row["b"])
        curves = {split: {scope: curve(rows[split], scope) for scope in SCOPES} for split in rows}
        chosen = {}
        for scope, points in curves["dev"].items():
            safe = [p["threshold"] for p in points if p["wrong_hit_rate"] == 0.0]
            chosen[scope] = min(safe) if safe else THRESHOLDS[-1]
        latency = await _latency(services, tenant.id, splits["test"][: 6 if quick else 15])
    return {
        "machine": machine(),
        "quick": quick,
        "questions": {name: len(qs) for name, qs in splits.items()},
        "ingest_s": round(ingest_s, 1),
        "cache_scope": CACHE_SCOPE,
        "chosen_threshold": chosen,
        "curves": curves,
        "wrong_hits_at_0.90": {
            split: [
                {k: r[k] for k in ("a", "b", "source", "cosine", "a_ids", "b_ids")}
                for r in rows[split]
                if not r["hit"] and r["cosine"] >= 0.90
            ]
            for split in rows
        },
        "test_per_source_at_chosen": {
            scope: per_source(rows["test"], scope, chosen[scope]) for scope in SCOPES
        },
        "latency_ms": latency,
    }


async def _latency(services: Any, tenant_id: str, queries: list[LabelledQuery]) -> dict[str, Any]:
    """Generated vs exact hit vs semantic hit, one turn at a time (greedy, 48 tokens)."""
    timings: dict[str, list[float]] = {"generated": [], "exact_hit": [], "semantic_hit": []}
    kinds: dict[str, int] = {}
    for query in queries:
        for label, text in (
            ("generated", query.query),
            ("exact_hit", query.query.lower()),
            ("semantic_hit", f"I have a question: {query.query}"),
        ):
            start = time.perf_counter()
            answer = None
            async for event in services.pipeline.run(
                TurnRequest(tenant_id, None, text, TurnOptions(max_tokens=48))
            ):
                if isinstance(event, TurnFinished):
                    answer = event.message
            elapsed = (time.perf_counter() - start) * 1000
            kind = answer.usage.get("cache_kind", "generated") if answer else "none"
            kinds[f"{label}->{kind}"] = kinds.get(f"{label}->{kind}", 0) + 1
            expected = {"generated": "generated", "exact_hit": "exact", "semantic_hit": "semantic"}
            slot = label if kind == expected[label] else f"{label}_missed"
            timings.setdefault(slot, []).append(elapsed)

    def pct(values: list[float], q: float) -> float:
        return round(float(np.percentile(values, q)), 1) if values else float("nan")

    return {
        "outcomes": kinds,
        **{
            label: {"n": len(v), "p50": pct(v, 50), "p95": pct(v, 95)}
            for label, v in timings.items()
        },
    }


def print_report(report: dict[str, Any]) -> None:
    print(describe())
    print(f"questions {report['questions']}, corpus ingested in {report['ingest_s']} s")
    print(f"the cache's scope: {report['cache_scope']}")
    for scope, chosen in report["chosen_threshold"].items():
        dev, test = report["curves"]["dev"][scope], report["curves"]["test"][scope]
        print(f"scope {scope}: threshold chosen on dev (no wrong hit) {chosen}")
        print("  threshold  dev hit/wrong   test hit/wrong")
        for d, t in zip(dev, test, strict=True):
            if d["threshold"] >= 0.85:
                print(
                    f"  {d['threshold']:.2f}       {d['hit_rate']:.3f}/{d['wrong_hit_rate']:.3f}"
                    f"     {t['hit_rate']:.3f}/{t['wrong_hit_rate']:.3f}"
                )
        print("  test pairs per source at it: similar / fires / admitted by the scope")
        for source, row in report["test_per_source_at_chosen"][scope].items():
            print(
                f"    {source:18} n={row['pairs']:4}  {row['similar']:.3f} / {row['fires']:.3f}"
                f" / {row['admitted']:.3f}"
            )
    lat = report["latency_ms"]
    print(f"latency ms (outcomes {lat['outcomes']}):")
    for label, row in lat.items():
        if label != "outcomes":
            print(f"  {label:20} n={row['n']:3}  p50 {row['p50']:8.1f}  p95 {row['p95']:8.1f}")
    if "generated" in lat and "exact_hit" in lat and lat["exact_hit"]["p50"]:
        ratio = lat["generated"]["p50"] / lat["exact_hit"]["p50"]
        print(f"  generated/exact-hit p50 ratio: {ratio:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 questions a half, 6 timed")
    args = parser.parse_args()
    report = asyncio.run(run(args.quick))
    print_report(report)
    RESULTS.mkdir(exist_ok=True)
    name = "response_cache_quick.json" if args.quick else "response_cache.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2))
    print(f"wrote bench/results/{name}")


if __name__ == "__main__":
    main()
