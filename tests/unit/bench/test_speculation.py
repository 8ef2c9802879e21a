"""The speculation benchmark's guesses and its count of verifying passes."""

from __future__ import annotations

from bench.speculation import guess, tokens_per_step


def test_guess_takes_what_followed_the_latest_longest_match() -> None:
    # "5 6" occurs twice; the later occurrence (followed by 9) wins over the earlier.
    assert guess([5, 6, 7, 8, 5, 6, 9, 1, 5, 6], 2) == [9, 1]
    # The 3-token suffix "1 2 3" beats the later 1-token match of "3".
    assert guess([1, 2, 3, 4, 4, 3, 7, 1, 2, 3], 2) == [4, 4]
    assert guess([1, 2, 3], 4) == []


def test_tokens_per_step_counts_accepted_guesses_plus_the_computed_token() -> None:
    prompt = [10, 11, 12, 13, 14, 15]
    # The answer copies the prompt after "10": the first pass guesses nothing (no
    # earlier 10), then each pass accepts k guesses and computes one more token.
    answer = [10, 11, 12, 13, 14, 15]
    assert tokens_per_step(prompt, answer, 2) == (1 + 2, 6)
    assert tokens_per_step(prompt, [99, 98], 4) == (2, 2)
