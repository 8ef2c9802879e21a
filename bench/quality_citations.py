"""Citations of the default model's answers to questions about real documentation.

The corpus is Python's Language Reference help topics (``pydoc_data.topics``), cut
into sections, one document each; the questions are made from section titles by
fixed rules, each labelled with the sections that answer it
(``bench/retrieval_corpus.py``, as the retrieval benchmark does). Every question goes
through the whole turn pipeline (retrieval, safety, the packaged model, greedy,
citing), in one process.

Reported: the share of answers with a ``[n]`` marker citation, with a citation
whose support span holds at least half the claim's words (the cut-off is not
calibrated yet: no labelled claim/chunk pairs), and with a citation of a section
labelled as answering the question.
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path
from typing import Any

from app.chat.events import TurnFinished
from app.chat.turn import TurnOptions, TurnRequest
from bench.retrieval_corpus import build_sections, label_queries, load_topics
from bench.services import bench_services

REPO = Path(__file__).resolve().parents[1]
SUPPORTED = 0.5
"""Support score at which a citation counts as supported here (uncalibrated)."""


async def citation_eval(quick: bool, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    sections = build_sections(load_topics())
    queries = label_queries(sections)
    rng.shuffle(queries)
    queries = queries[: 12 if quick else 40]
    # The sections that answer the questions, and as many others as distractors.
    wanted = {name for q in queries for name in q.relevant}
    others = [s for s in sections if s.name not in wanted]
    rng.shuffle(others)
    corpus = [s for s in sections if s.name in wanted] + others[: len(wanted) * (2 if quick else 6)]
    rows: list[dict[str, Any]] = []
    async with bench_services() as services:
        tenant = await services.tenants.ensure("quality")
        for section in corpus:
            await services.retrieval.ingest(tenant.id, section.name, section.text.encode())
        for query in queries:
            options = TurnOptions(max_tokens=64, repetition_penalty=1.0)
            answer = None
            async for event in services.pipeline.run(
                TurnRequest(tenant.id, None, query.query, options)
            ):
                if isinstance(event, TurnFinished):
                    answer = event.message
            assert answer is not None
            citations = answer.citations
            markers = [c for c in citations if c["kind"] == "marker"]
            scores = [float(c["support"]["score"]) for c in citations if c["support"]]
            rows.append(
                {
                    "question": query.query,
                    "answer": answer.content,
                    "marker": bool(markers),
                    "supported": any(s >= SUPPORTED for s in scores),
                    "cites_gold": any(c["document_name"] in query.relevant for c in citations),
                    "support_scores": scores,
                }
            )

    def share(key: str) -> float:
        return round(sum(1 for r in rows if r[key]) / len(rows), 3)

    scores = [s for r in rows for s in r["support_scores"]]
    return {
        "questions": len(rows),
        "documents": len(corpus),
        "with_marker_citation": share("marker"),
        "with_supported_citation": share("supported"),
        "citing_a_gold_section": share("cites_gold"),
        "support_score_median": round(statistics.median(scores), 3) if scores else None,
        "supported_cutoff": SUPPORTED,
        "rows": rows,
    }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\ncitations ({report['questions']} questions over {report['documents']} pydoc "
        f"sections, the packaged model, greedy, 64 tokens):"
    )
    print(
        f"  answers with a [n] marker {report['with_marker_citation']}, with a citation "
        f"whose support >= {report['supported_cutoff']}: {report['with_supported_citation']}, "
        f"citing a section that answers the question: {report['citing_a_gold_section']}; "
        f"median support {report['support_score_median']}"
    )
