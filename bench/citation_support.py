"""Calibrate and test the citation support decision on labelled claim/chunk pairs.

The pairs (``bench/labels/citation_support.jsonl``, 275, labelled by hand by reading
each claim against the whole chunk) come from real text only, each with its source:

- ``answer``: sentences of the packaged SmolLM2-135M's answers (the turn pipeline,
  greedy, 64 tokens, as ``bench/quality_citations.py`` runs it: 40 questions, seed
  0) paired with the source chunk shown to the model that shares the most words
  with them: the chunk ragserve would attribute them to;
- ``cross``: sentences of ``pydoc_data.topics`` sections paired with the chunk of
  another section holding the sentence closest to them by MiniLM cosine (same
  topic: paraphrases and hard negatives);
- ``own``: such a sentence and the chunk it comes from (a copied claim);
- ``random``: such a sentence and a random chunk of another section.

A pair is labelled ``supports`` when the chunk states what the claim says (a cut-off
fragment is judged on the words it has; a claim that names the wrong kind of thing,
"built-in functions" for operators, is not supported). The pairs are split in halves
by a fixed seed; the lexical weight and threshold are fitted on the dev half (best
F1) and the support decision is reported on the test half.

Run ``python -m bench.citation_support``; the fitted values go to
``app/chat/citations.py`` by hand.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.chat.citations import LEXICAL_WEIGHT, SUPPORT_THRESHOLD, SupportScorer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.chat.citations import EmbedPassages
    from retrieval.embedding import Embedder

PAIRS = Path(__file__).resolve().parent / "labels" / "citation_support.jsonl"
SEED = 11
WEIGHTS = [round(w / 10, 1) for w in range(11)]


def load_pairs() -> list[dict[str, Any]]:
    return [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]


def split(pairs: Sequence[dict[str, Any]], seed: int = SEED) -> tuple[list[Any], list[Any]]:
    """Dev and test halves, by a fixed shuffle."""
    order = list(pairs)
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    return order[:half], order[half:]


def passage_embedder(embedder: Embedder) -> EmbedPassages:
    """``RetrievalService.embed`` for a bare embedder."""

    async def embed(texts: Sequence[str]) -> tuple[list[list[float]], list[int]]:
        return embedder.embed_documents(list(texts)).tolist(), []

    return embed


async def scorer_for(pairs: Sequence[dict[str, Any]], embed: EmbedPassages) -> SupportScorer:
    return await SupportScorer.build(
        [p["claim"] for p in pairs], [p["chunk"] for p in pairs], embed, prune=False
    )


def scores(scorer: SupportScorer, count: int, weight: float) -> list[float]:
    """Each pair's combined score at ``weight`` (its best chunk sentence at that weight)."""
    spans = [scorer.support(i, weight) for i in range(count)]
    return [0.0 if span is None else float(span["combined"]) for span in spans]  # type: ignore[arg-type]


def prf(predicted: Sequence[bool], labels: Sequence[bool]) -> dict[str, float]:
    tp = sum(p and y for p, y in zip(predicted, labels, strict=True))
    fp = sum(p and not y for p, y in zip(predicted, labels, strict=True))
    fn = sum(y and not p for p, y in zip(predicted, labels, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3)}


def fit(
    scorer: SupportScorer, labels: Sequence[bool], weights: Sequence[float]
) -> tuple[float, float, float]:
    """(weight, threshold, dev F1) with the best F1; ties go to the higher threshold."""
    best = (0.0, 0.0, -1.0)
    for weight in weights:
        values = scores(scorer, len(labels), weight)
        for threshold in sorted({round(v, 3) for v in values}):
            f1 = prf([v >= threshold for v in values], labels)["f1"]
            if f1 > best[2] or (f1 == best[2] and weight == best[0] and threshold > best[1]):
                best = (weight, threshold, f1)
    return best


async def calibrate(embedder: Embedder) -> dict[str, Any]:
    """Fit on dev, report on test: combined, lexical alone, cosine alone, the shipped
    constants, and the test figures per kind of pair."""
    dev, test = split(load_pairs())
    embed = passage_embedder(embedder)
    dev_f, test_f = await scorer_for(dev, embed), await scorer_for(test, embed)
    dev_y, test_y = [p["supports"] for p in dev], [p["supports"] for p in test]
    report: dict[str, Any] = {
        "pairs": {
            "dev": len(dev),
            "test": len(test),
            "dev_supported": sum(dev_y),
            "test_supported": sum(test_y),
        },
        "rules": {},
    }
    for name, weights in (("combined", WEIGHTS), ("lexical", [1.0]), ("cosine", [0.0])):
        weight, threshold, dev_f1 = fit(dev_f, dev_y, weights)
        predicted = [v >= threshold for v in scores(test_f, len(test), weight)]
        report["rules"][name] = {
            "weight": weight,
            "threshold": threshold,
            "dev_f1": dev_f1,
            "test": prf(predicted, test_y),
        }
    shipped = [v >= SUPPORT_THRESHOLD for v in scores(test_f, len(test), LEXICAL_WEIGHT)]
    report["shipped"] = {
        "weight": LEXICAL_WEIGHT,
        "threshold": SUPPORT_THRESHOLD,
        "test": prf(shipped, test_y),
    }
    report["shipped_by_kind"] = {
        kind: {
            "pairs": sum(1 for p in test if p["kind"] == kind),
            **prf(
                [s for s, p in zip(shipped, test, strict=True) if p["kind"] == kind],
                [p["supports"] for p in test if p["kind"] == kind],
            ),
        }
        for kind in ("answer", "cross", "own", "random")
    }
    return report


def print_report(report: dict[str, Any]) -> None:
    pairs, shipped = report["pairs"], report["shipped"]
    print(
        f"\ncitation support ({pairs['dev']} dev / {pairs['test']} test labelled pairs): "
        f"shipped rule (weight {shipped['weight']}, threshold {shipped['threshold']}) on "
        f"test: {shipped['test']}"
    )
    for name, rule in report["rules"].items():
        print(
            f"  {name} fitted on dev (weight {rule['weight']}, >= {rule['threshold']}): "
            f"{rule['test']}"
        )


def main() -> None:
    from retrieval.embedding import SentenceTransformerEmbedder

    report = asyncio.run(calibrate(SentenceTransformerEmbedder()))
    print(json.dumps(report, indent=2))
    print_report(report)


if __name__ == "__main__":
    main()
