"""Detectors of personal data and secrets, as rewrite rules.

Regexes find candidates; checksums (Luhn, IBAN mod-97) and parsers (``ipaddress``)
keep only real ones. Every rule rewrites its span to ``[ENTITY]``.

NOTE: presidio-analyzer's pattern recognisers do the same job (their regexes were
a reference here), but they pull in spaCy and score each call in milliseconds;
the stream redactor re-scans a short tail after every token, so it needs rules
it can match partially and cheaply (see ``safety.rules``).
"""

from __future__ import annotations

import ipaddress
import re

from safety.checksums import IBAN_LENGTHS, iban_valid, luhn_valid
from safety.rules import Rule, RuleSet, compile_rule
from safety.types import Category

_DIGIT = re.compile(r"\d")


def _card(span: str) -> int | None:
    digits = "".join(_DIGIT.findall(span))
    return len(span) if 12 <= len(digits) <= 19 and luhn_valid(digits) else None


def _iban(span: str) -> int | None:
    # The candidate may run on into the next word; the country fixes the length.
    want = IBAN_LENGTHS.get(span[:2].upper())
    if want is None:
        return None
    taken = 0
    for i, ch in enumerate(span):
        if ch != " ":
            taken += 1
            if taken == want:
                return i + 1 if iban_valid(span[: i + 1]) else None
    return None


def _phone(span: str) -> int | None:
    digits = len(_DIGIT.findall(span))
    return len(span) if 9 <= digits <= 15 else None


def _ipv6(span: str) -> int | None:
    try:
        ipaddress.IPv6Address(span)
    except ValueError:
        return None
    return len(span)


EMAIL = Rule(
    "EMAIL",
    Category.PII,
    compile_rule(
        r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
        r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,24}(?![\w-])"
    ),
    margin=2,
    priority=5,
)
CREDIT_CARD = Rule(
    "CREDIT_CARD",
    Category.PII,
    compile_rule(r"(?<![\d-])[1-6]\d{3}(?:[ -]?\d){8,15}(?![\d])"),
    validate=_card,
    margin=2,
    priority=8,
)
IBAN = Rule(
    "IBAN",
    Category.PII,
    compile_rule(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
    validate=_iban,
    margin=2,
    priority=7,
)
US_SSN = Rule(
    "US_SSN",
    Category.PII,
    compile_rule(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])"),
    margin=2,
    priority=9,
)
PHONE = Rule(
    "PHONE",
    Category.PII,
    compile_rule(
        r"(?<![\w+.-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]?\d{2,5}){1,5}"
        r"(?![\w-]|\.\d)"
    ),
    validate=_phone,
    margin=2,
    priority=1,
)
IPV4 = Rule(
    "IP_ADDRESS",
    Category.PII,
    compile_rule(
        r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
        r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)"
    ),
    margin=2,
    priority=6,
)
IPV6 = Rule(
    "IP_ADDRESS",
    Category.PII,
    compile_rule(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"),
    validate=_ipv6,
    margin=1,
    priority=6,
)
_SECRET_PATTERNS = (
    r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,}",
    r"\brsk_[A-Za-z0-9_-]{16,}",  # ragserve API keys are token_urlsafe: "-" too
    r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
    r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
    r"(?i:aws_?secret_?access_?key)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{36,}",
    r"\bgithub_pat_[A-Za-z0-9_]{40,}",
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    r"\bAIza[0-9A-Za-z_-]{35}",
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]{0,12000}?"
    r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
)
SECRET = Rule(
    "SECRET",
    Category.SECRET,
    compile_rule("|".join(f"(?:{p})" for p in _SECRET_PATTERNS)),
    margin=1,
    priority=10,
)

PII_RULES: tuple[Rule, ...] = (SECRET, EMAIL, IBAN, CREDIT_CARD, US_SSN, IPV4, IPV6, PHONE)
"""Every detector, in the order a reader would check them."""

ENTITY_TYPES = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "SECRET")


def pii_rules() -> RuleSet:
    """The rule set of every PII and secret detector."""
    return RuleSet(PII_RULES)


_DEFAULT = pii_rules()


def redact(text: str) -> str:
    """``text`` with every PII entity and secret replaced by ``[ENTITY]``."""
    return _DEFAULT.apply(text)[0]


def find_pii(text: str) -> dict[str, int]:
    """How many entities of each type ``text`` holds (counts only: no values)."""
    counts: dict[str, int] = {}
    for hit in _DEFAULT.hits(text):
        counts[hit.rule.name] = counts.get(hit.rule.name, 0) + 1
    return counts
