"""Speculative decoding's guesses: what followed the latest, longest match."""

from __future__ import annotations

from inference.speculation import guess


def test_guess_takes_what_followed_the_latest_longest_match() -> None:
    # "5 6" occurs twice; the later occurrence (followed by 9) wins over the earlier.
    assert guess([5, 6, 7, 8, 5, 6, 9, 1, 5, 6], 2) == [9, 1]
    # The 3-token suffix "1 2 3" beats the later 1-token match of "3".
    assert guess([1, 2, 3, 4, 4, 3, 7, 1, 2, 3], 2) == [4, 4]
    assert guess([1, 2, 3], 4) == []
    assert guess([1, 2, 1, 2], 0) == []
