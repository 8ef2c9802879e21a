"""Citations of the default model's answers to questions about real documentation.

The corpus is Python's Language Reference help topics (``pydoc_data.topics``), cut
into sections, one document each; the questions are made from section titles by
fixed rules, each labelled with the sections that answer it
(``bench/retrieval_corpus.py``, as the retrieval benchmark does). Every question goes
through the whole turn pipeline (retrieval, safety, the packaged model with the
default sampling: greedy, no repeated 4-token run, prompt bias 3; citing), in one
process. (Until 2026-12-07 it turned the repetition penalty off while the default
was 1.1, so its figures were not the default's: docs/benchmarks.md, "The repetition
penalty".)

Reported: the share of answers in which the model wrote a ``[n]`` marker; the
markers dropped as unsupported; the share of answers (every question has sections
answering it) carrying a citation (marker or attribution), a supported one (its
span reaches the calibrated threshold), and one of a section labelled as answering
the question; citation recall (the answer sentences some
shown chunk supports, by the calibrated scorer, that carry a citation of such a
chunk); the time cite() takes with its embedding call. Citation precision is the
scorer's own, on the labelled test pairs (``bench/citation_support.py``): every
kept citation passed the scorer, so it cannot be counted here without labels.
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.chat.citations import SupportScorer, cite, sentences
from app.chat.events import TurnFinished
from app.chat.prompt import Source
from app.chat.turn import TurnOptions, TurnRequest
from bench.retrieval_corpus import build_sections, label_queries, load_topics
from bench.services import bench_services

if TYPE_CHECKING:
    from conversation import MessageInfo

REPO = Path(__file__).resolve().parents[1]
_MARKER = re.compile(r"\[\d{1,2}(?:\s*,\s*\d{1,2})*\]")


async def citation_eval(
    quick: bool, seed: int = 0, questions: slice | None = None
) -> dict[str, Any]:
    """The citation figures over the first 12 (``quick``) or 40 shuffled questions, or
    over the ``questions`` slice of them (a further split, disjoint from the first 40)."""
    rng = random.Random(seed)
    sections = build_sections(load_topics())
    queries = label_queries(sections)
    rng.shuffle(queries)
    queries = queries[questions] if questions else queries[: 12 if quick else 40]
    # The sections that answer the questions, and as many others as distractors.
    wanted = {name for q in queries for name in q.relevant}
    others = [s for s in sections if s.name not in wanted]
    rng.shuffle(others)
    corpus = [s for s in sections if s.name in wanted] + others[: len(wanted) * (2 if quick else 6)]
    rows: list[dict[str, Any]] = []
    async with bench_services() as services:
        tenant = await services.tenants.ensure("quality")
        await asyncio.gather(
            *(services.retrieval.ingest(tenant.id, s.name, s.text.encode()) for s in corpus)
        )
        # The turns run together, as a deployment's users would: the engine batches them.
        answers = await asyncio.gather(*(_answer(services, tenant.id, q.query) for q in queries))
        for query, answer in zip(queries, answers, strict=True):
            citations = answer.citations
            shown = [Source.from_dict(s) for s in answer.sources if s.get("n")]
            began = time.perf_counter()
            await cite(answer.content, shown, services.retrieval.embed)
            cite_ms = (time.perf_counter() - began) * 1000
            covered, supported = await _sentence_recall(answer.content, shown, citations, services)
            rows.append(
                {
                    "question": query.query,
                    "answer": answer.content,
                    "marker_written": bool(_MARKER.search(answer.content)),
                    "dropped": int(answer.usage.get("citations_dropped", 0)),
                    "cited": bool(citations),
                    "supported_citation": any(
                        (c.get("support") or {}).get("supported") for c in citations
                    ),
                    "cites_gold": any(c["document_name"] in query.relevant for c in citations),
                    "supported_sentences": supported,
                    "cited_sentences": covered,
                    "cite_ms": round(cite_ms, 1),
                    "citations": citations,
                }
            )

    def share(key: str) -> float:
        return round(sum(1 for r in rows if r[key]) / len(rows), 3)

    supported = sum(r["supported_sentences"] for r in rows)
    return {
        "questions": len(rows),
        "documents": len(corpus),
        "with_marker_written": share("marker_written"),
        "markers_dropped": sum(r["dropped"] for r in rows),
        "with_citation": share("cited"),
        "with_supported_citation": share("supported_citation"),
        "citing_a_gold_section": share("cites_gold"),
        "supported_sentences": supported,
        "citation_recall": round(sum(r["cited_sentences"] for r in rows) / supported, 3)
        if supported
        else None,
        "cite_ms_median": round(statistics.median(r["cite_ms"] for r in rows), 1),
        "rows": rows,
    }


async def _answer(services: Any, tenant_id: str, question: str) -> MessageInfo:
    options = TurnOptions(max_tokens=64)  # the deployment's defaults otherwise
    answer = None
    async for event in services.pipeline.run(TurnRequest(tenant_id, None, question, options)):
        if isinstance(event, TurnFinished):
            answer = event.message
    if answer is None:
        raise RuntimeError(f"no answer to {question!r}")
    return answer


async def _sentence_recall(
    answer: str, shown: list[Source], citations: list[dict[str, Any]], services: Any
) -> tuple[int, int]:
    """(supported sentences carrying a citation of a chunk supporting them, supported
    sentences): an answer sentence is supported when the scorer finds a shown chunk
    that supports it."""
    said = [text for _, _, text in sentences(_MARKER.sub("", answer)) if len(text.split()) >= 3]
    pairs = [(text, source) for text in said for source in shown]
    scorer = await SupportScorer.build(
        [t for t, _ in pairs], [s.text for _, s in pairs], services.retrieval.embed
    )
    backing: dict[str, set[int]] = {}
    for i, (text, source) in enumerate(pairs):
        span = scorer.support(i)
        if span is not None and scorer.supported(span):
            backing.setdefault(text, set()).add(source.n)
    cited = {int(c["n"]) for c in citations}
    return sum(1 for ns in backing.values() if ns & cited), len(backing)


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\ncitations ({report['questions']} questions over {report['documents']} pydoc "
        f"sections, the packaged model, default sampling, 64 tokens):"
    )
    print(
        f"  answers with a [n] written {report['with_marker_written']}, markers dropped "
        f"{report['markers_dropped']}, with a citation {report['with_citation']}, with a "
        f"supported citation "
        f"{report['with_supported_citation']}, citing a section that answers the question "
        f"{report['citing_a_gold_section']}; citation recall {report['citation_recall']} "
        f"(of {report['supported_sentences']} supported sentences); cite() median "
        f"{report['cite_ms_median']} ms"
    )
