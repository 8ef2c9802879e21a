"""The stream redactor equals whole-text redaction for every split of the stream."""

from __future__ import annotations

import itertools
import random

import pytest

from safety.markup import MARKUP_RULES
from safety.pii import PII_RULES
from safety.rules import RuleSet
from safety.stream import StreamRedactor

RULES = RuleSet(PII_RULES + MARKUP_RULES)
SAMPLES = [
    "mail bob.smith@example.co.uk or call +1 (415) 555-0100 now",
    "card 4111 1111 1111 1111 and 4111 1111 1111 1112.",
    "IBAN DE89 3704 0044 0532 0130 00 THEN GB82WEST12345698765432",
    "ssn 123-45-6789, ip 192.168.1.20 and 2001:db8::1 at 12:30:45",
    "key sk-proj-abcdefghijklmnopqrstuvwxyz12 AKIAIOSFODNN7EXAMPLE",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY----- done",
    "in 2024-01-15 version 1.2.3 costs 1,234,567 and 3.14159",
    "<script>x</script> [a](javascript:alert(1)) &#106; a<b",
    "call 555 123 4567 1234 or a@b.co.uk.",
]


def _stream(text: str, cuts: list[int]) -> tuple[str, int]:
    redactor, out, most_held = StreamRedactor(RULES), [], 0
    bounds = [0, *cuts, len(text)]
    for a, b in itertools.pairwise(bounds):
        out.append(redactor.feed(text[a:b]))
        most_held = max(most_held, redactor.held)
    out.append(redactor.flush())
    return "".join(out), most_held


@pytest.mark.parametrize("text", SAMPLES)
def test_every_two_and_three_piece_split_equals_whole_text(text: str) -> None:
    whole = RULES.apply(text)[0]
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            assert _stream(text, [i, j])[0] == whole, (i, j)


@pytest.mark.parametrize("text", SAMPLES)
def test_random_token_splits_equal_whole_text(text: str) -> None:
    rng = random.Random(text)
    whole = RULES.apply(text)[0]
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 12))))
        assert _stream(text, cuts)[0] == whole


def test_plain_words_are_released_as_soon_as_they_end() -> None:
    redactor = StreamRedactor(RULES)
    assert redactor.feed("Hello") == ""  # may still become hello@example.com
    assert redactor.feed(" world") == "Hello "
    assert redactor.held == len("world")


def test_held_back_is_bounded_by_the_longest_open_candidate() -> None:
    text = "The answer is simple: " * 20 + "call 415 555 0100 today."
    _, most_held = _stream(text, list(range(1, len(text))))
    assert most_held <= len("call 415 555 0100 ")


def test_max_hold_releases_an_unterminated_key_block() -> None:
    redactor = StreamRedactor(RULES, max_hold=100)
    out = redactor.feed("-----BEGIN PRIVATE KEY-----\n" + "A" * 300)
    assert len(out) >= 200
    assert redactor.held <= 100
