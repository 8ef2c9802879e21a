"""Retrieval recall on real documentation: dense, sparse and hybrid, and what the
heading path adds, chosen on a dev half of the questions and reported on the other.

Corpus: Python's Language Reference (``pydoc_data.topics``, in the standard
library), one document per section as ``bench/retrieval_corpus.py`` cuts it (reST
text: each section opens with its underlined title). Questions: one per distinct
section title, made by fixed rules, labelled with the sections that answer it; split
in halves by a seeded shuffle. Each configuration ingests the corpus into its own
embedded ragserve (the packaged embedder, Qdrant Edge) and searches with the chunk
cache off. Recall@K: a relevant section among the first K chunks; MRR of the first.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any

from bench.retrieval_corpus import build_sections, label_queries, load_topics
from bench.retrieval_stats import recall_mrr
from bench.services import bench_services

if TYPE_CHECKING:
    from app.core.settings import Settings
    from bench.retrieval_corpus import LabelledQuery

SEED = 7
SEARCHES = {
    "dense": ("dense", "rrf"),
    "sparse": ("sparse", "rrf"),
    "hybrid_rrf": ("hybrid", "rrf"),
    "hybrid_dbsf": ("hybrid", "dbsf"),
}


async def retrieval_eval(quick: bool) -> dict[str, Any]:
    sections = build_sections(load_topics())
    queries = label_queries(sections)
    random.Random(SEED).shuffle(queries)
    half = len(queries) // 2
    splits = {"dev": queries[:half], "test": queries[half:]}
    if quick:
        # Fewer questions, and a corpus of their sections and as many others.
        splits = {name: qs[:30] for name, qs in splits.items()}
        wanted = {name for qs in splits.values() for q in qs for name in q.relevant}
        others = [s for s in sections if s.name not in wanted]
        random.Random(SEED).shuffle(others)
        sections = [s for s in sections if s.name in wanted] + others[: len(wanted)]
    report: dict[str, Any] = {
        "questions": {k: len(v) for k, v in splits.items()},
        "documents": len(sections),
    }
    # NOTE: --quick measures the default chunking (heading paths) only.
    configurations = {"heading_path": True} if quick else {"plain": False, "heading_path": True}
    for name, heading in configurations.items():
        report[name] = await _one_configuration(sections, splits, heading)
    # The configuration and search that win on dev, and what they give on test.
    best = max(
        ((config, search) for config in configurations for search in SEARCHES),
        key=lambda pick: report[pick[0]]["dev"][pick[1]]["recall@5"],
    )
    report["best_on_dev"] = {"configuration": best[0], "search": best[1]}
    report["best_on_test"] = report[best[0]]["test"][best[1]]
    return report


async def _one_configuration(
    sections: list[Any], splits: dict[str, list[LabelledQuery]], heading: bool
) -> dict[str, Any]:
    def configure(settings: Settings) -> None:
        settings.retrieval.heading_context = heading
        settings.safety.enabled = False

    async with bench_services(configure) as services:
        tenant = (await services.tenants.ensure("quality-retrieval")).id
        start = time.perf_counter()
        # Submitted together, as an upload of many files is: the ingestion workers
        # share them (49 -> ~30 s for 138 sections on a 2-core EPYC).
        results = await asyncio.gather(
            *(
                services.retrieval.ingest(tenant, s.name, s.text.encode(), "text/plain")
                for s in sections
            )
        )
        chunks = sum(result.document.chunk_count for result in results)
        out: dict[str, Any] = {"chunks": chunks, "ingest_s": round(time.perf_counter() - start, 1)}
        for split, qs in splits.items():
            out[split] = {}
            for label, (mode, fusion) in SEARCHES.items():
                results = []
                for q in qs:
                    found = await services.retrieval.search(
                        tenant, q.query, 10, mode=mode, fusion=fusion, use_cache=False
                    )
                    results.append(([h.document_name for h in found], q.relevant))
                out[split][label] = recall_mrr(results)
    return out


def print_report(report: dict[str, Any]) -> None:
    print(
        f"retrieval recall, {report['documents']} documents, questions "
        f"{report['questions']} (recall@1/@5/@10, MRR):"
    )
    for config in ("plain", "heading_path"):
        if config not in report:
            print(f"  {config}: not run with --quick")
            continue
        row = report[config]
        print(f"  {config} ({row['chunks']} chunks, ingested in {row['ingest_s']} s)")
        for label in SEARCHES:
            dev, test = row["dev"][label], row["test"][label]
            print(
                f"    {label:12} dev {dev['recall@1']:.3f}/{dev['recall@5']:.3f}/"
                f"{dev['recall@10']:.3f} {dev['mrr']:.3f}   test {test['recall@1']:.3f}/"
                f"{test['recall@5']:.3f}/{test['recall@10']:.3f} {test['mrr']:.3f}"
            )
    best, test = report["best_on_dev"], report["best_on_test"]
    print(
        f"  best on dev: {best['configuration']} {best['search']}; on test: recall@5 "
        f"{test['recall@5']:.3f}, MRR {test['mrr']:.3f}"
    )
