"""Speculative decoding's guesses (what followed the latest, longest match) and the
policy that verifies them only where that is faster than plain decoding."""

from __future__ import annotations

from inference.speculation import SpeculationPolicy, guess


def test_guess_takes_what_followed_the_latest_longest_match() -> None:
    # "5 6" occurs twice; the later occurrence (followed by 9) wins over the earlier.
    assert guess([5, 6, 7, 8, 5, 6, 9, 1, 5, 6], 2) == [9, 1]
    # The 3-token suffix "1 2 3" beats the later 1-token match of "3".
    assert guess([1, 2, 3, 4, 4, 3, 7, 1, 2, 3], 2) == [4, 4]
    assert guess([1, 2, 3], 4) == []
    assert guess([1, 2, 1, 2], 0) == []


def test_the_policy_measures_a_plain_step_and_a_pass_before_judging() -> None:
    policy = SpeculationPolicy()
    assert not policy.verify(True, 5)  # no one-row step timed yet: decode plainly
    policy.timed(1, 0.020)
    assert policy.verify(True, 5)  # a 5-row pass not timed yet: time one
    policy.timed(5, 0.030)
    assert policy.verify(True, 5)  # nothing accepted yet: find out
    policy.verified(True, 2)
    assert policy.verify(True, 5)  # (1 + 2) x 20 ms > 30 ms
    assert policy.verify(True, 3)  # a 3-row pass not timed yet


def test_the_policy_stops_verifying_where_passes_cost_more_than_they_save() -> None:
    policy = SpeculationPolicy(alpha=1.0, explore=3)
    policy.timed(1, 0.020)
    policy.timed(5, 0.030)
    policy.verified(True, 3)  # greedy: copying pays
    policy.verified(False, 0)  # sampled: (1 + 0) x 20 ms < 30 ms
    assert policy.verify(True, 5)
    assert [policy.verify(False, 5) for _ in range(4)] == [False, False, False, True]
    policy.verified(False, 0)  # the exploring pass: still not worth it
    assert not policy.verify(False, 5)
    policy.timed(5, 0.015)  # passes got cheaper (say, another thread count)
    assert policy.verify(False, 5)


def test_the_policy_averages_what_it_sees() -> None:
    policy = SpeculationPolicy(alpha=0.5, explore=100)
    policy.timed(1, 0.020)
    policy.timed(5, 0.050)
    policy.verified(True, 0)
    assert not policy.verify(True, 5)  # (1 + 0) x 20 < 50
    policy.verified(True, 4)  # the average: 2
    assert policy.verify(True, 5)  # (1 + 2) x 20 > 50
