"""Luhn and IBAN checks accept real numbers and reject one-digit changes."""

from __future__ import annotations

import pytest

from safety.checksums import iban_valid, luhn_valid


@pytest.mark.parametrize("number", ["4111111111111111", "5500005555555559", "378282246310005"])
def test_luhn_accepts_test_card_numbers(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4111111111111112", "1234567812345678", "", "41a1"])
def test_luhn_rejects_others(number: str) -> None:
    assert not luhn_valid(number)


@pytest.mark.parametrize(
    "iban", ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR1420041010050500013M02606"]
)
def test_iban_accepts_valid_ones(iban: str) -> None:
    assert iban_valid(iban)


@pytest.mark.parametrize(
    "iban", ["DE89 3704 0044 0532 0130 01", "GB82WEST1234569876543", "XX82WEST12345698765432"]
)
def test_iban_rejects_bad_checksum_length_or_country(iban: str) -> None:
    assert not iban_valid(iban)
