"""The speculation benchmark's count of verifying passes."""

from __future__ import annotations

from bench.speculation import tokens_per_step


def test_tokens_per_step_counts_accepted_guesses_plus_the_computed_token() -> None:
    prompt = [10, 11, 12, 13, 14, 15]
    # The answer copies the prompt after "10": the first pass guesses nothing (no
    # earlier 10), then each pass accepts k guesses and computes one more token.
    answer = [10, 11, 12, 13, 14, 15]
    assert tokens_per_step(prompt, answer, 2) == (1 + 2, 6)
    assert tokens_per_step(prompt, [99, 98], 4) == (2, 2)
