"""Each PII and secret detector finds its entity and leaves look-alikes alone."""

from __future__ import annotations

import pytest

from safety.pii import find_pii, redact

CASES = [
    ("write to bob.smith@example.co.uk today", "write to [EMAIL] today"),
    ("call +1 (415) 555-0100 now", "call [PHONE] now"),
    ("card 4111 1111 1111 1111 ok", "card [CREDIT_CARD] ok"),
    ("IBAN DE89 3704 0044 0532 0130 00 THEN", "IBAN [IBAN] THEN"),
    ("ssn 123-45-6789.", "ssn [US_SSN]."),
    ("from 192.168.1.20 and 2001:db8::1", "from [IP_ADDRESS] and [IP_ADDRESS]"),
    ("key sk-proj-abcdefghijklmnopqrstuvwxyz12", "key [SECRET]"),
    ("aws AKIAIOSFODNN7EXAMPLE", "aws [SECRET]"),
    ("token rsk_abcdefghijklmnop1234", "token [SECRET]"),
    # A real ragserve key: token_urlsafe puts "-" in it (regression).
    ("key rsk_oWsqFH6T-ApFjvLIssuPRZzI0uSmsqeQRoc30UMBEIw.", "key [SECRET]."),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3",
        "jwt [SECRET]",
    ),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- x", "[SECRET] x"),
]
NOT_PII = [
    "card 4111 1111 1111 1112 fails Luhn",
    "IBAN DE89 3704 0044 0532 0130 02 fails mod-97",
    "on 2024-01-15 version 1.2.3 costs 1,234,567 and pi is 3.14159",
    "meet at 12:30:45",
    "JavaScript and email-like words such as user@host",
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_entities_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", NOT_PII)
def test_look_alikes_are_kept(text: str) -> None:
    assert redact(text) == text


def test_find_pii_counts_without_values() -> None:
    assert find_pii("a@b.io and c@d.io, 4111111111111111") == {"EMAIL": 2, "CREDIT_CARD": 1}
