"""Sampling: greedy, temperature, top-k, top-p, seeded reproducibility, the prompt bias
and repeated runs."""

from __future__ import annotations

import math

import pytest
import torch

from inference.errors import InvalidRequestError
from inference.sampling import (
    biased_tokens,
    filter_logits,
    make_generator,
    repeated_ngram_tokens,
    sample_next,
    validate_sampling,
)
from inference.types import SamplingParams


def _logits(probs: list[float]) -> torch.Tensor:
    return torch.tensor([math.log(p) for p in probs])


def _draw(logits: torch.Tensor, params: SamplingParams, n: int) -> list[int]:
    generator = make_generator(params)
    return [sample_next(logits, params, generator) for _ in range(n)]


def test_greedy_picks_the_argmax() -> None:
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    assert sample_next(logits, SamplingParams(temperature=0.0)) == 1


def test_greedy_ignores_the_generator_and_top_k() -> None:
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    params = SamplingParams(temperature=0.0, top_k=2, seed=3)
    assert _draw(logits, params, 20) == [1] * 20


def test_same_seed_gives_the_same_draws() -> None:
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    params = SamplingParams(temperature=1.0, seed=1234)
    assert _draw(logits, params, 50) == _draw(logits, params, 50)


def test_different_seeds_give_different_draws() -> None:
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    first = _draw(logits, SamplingParams(temperature=1.0, seed=1), 50)
    second = _draw(logits, SamplingParams(temperature=1.0, seed=2), 50)
    assert first != second


def test_unseeded_generators_differ() -> None:
    logits = torch.zeros(1000)
    params = SamplingParams(temperature=1.0)
    assert _draw(logits, params, 20) != _draw(logits, params, 20)


def test_top_k_keeps_only_the_k_most_likely() -> None:
    logits = _logits([0.05, 0.4, 0.1, 0.3, 0.15])
    draws = set(_draw(logits, SamplingParams(temperature=1.0, top_k=2, seed=0), 300))
    assert draws == {1, 3}


def test_top_k_one_is_greedy() -> None:
    logits = torch.randn(500, generator=torch.Generator().manual_seed(5))
    params = SamplingParams(temperature=2.0, top_k=1, seed=0)
    assert set(_draw(logits, params, 50)) == {int(torch.argmax(logits))}


def test_top_p_keeps_the_smallest_nucleus_reaching_p() -> None:
    logits = _logits([0.5, 0.3, 0.15, 0.05])
    filtered = filter_logits(logits, SamplingParams(temperature=1.0, top_p=0.6))
    assert torch.isfinite(filtered).tolist() == [True, True, False, False]
    draws = set(_draw(logits, SamplingParams(temperature=1.0, top_p=0.6, seed=0), 300))
    assert draws == {0, 1}


def test_tiny_top_p_still_keeps_the_most_likely_token() -> None:
    logits = _logits([0.2, 0.7, 0.1])
    draws = _draw(logits, SamplingParams(temperature=1.0, top_p=1e-6, seed=0), 30)
    assert set(draws) == {1}


def test_draws_follow_the_distribution() -> None:
    logits = _logits([0.7, 0.2, 0.1])
    draws = _draw(logits, SamplingParams(temperature=1.0, seed=42), 4000)
    shares = [draws.count(i) / len(draws) for i in range(3)]
    assert shares == pytest.approx([0.7, 0.2, 0.1], abs=0.03)


def test_low_temperature_sharpens() -> None:
    logits = _logits([0.4, 0.35, 0.25])
    draws = _draw(logits, SamplingParams(temperature=0.05, seed=7), 500)
    assert draws.count(0) / len(draws) > 0.9


def test_bfloat16_logits_are_accepted() -> None:
    logits = _logits([0.1, 0.9]).to(torch.bfloat16)
    assert sample_next(logits, SamplingParams(temperature=0.5, top_p=0.9, seed=1)) == 1


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_tokens=0),
        SamplingParams(temperature=-0.1),
        SamplingParams(top_p=0.0),
        SamplingParams(top_p=1.5),
        SamplingParams(top_k=-1),
        SamplingParams(stop=("",)),
        SamplingParams(prompt_bias=-0.5),
        SamplingParams(prompt_bias=10.5),
        SamplingParams(no_repeat_ngram=1),
        SamplingParams(no_repeat_ngram=-1),
        SamplingParams(no_repeat_ngram=65),
    ],
)
def test_invalid_parameters_are_rejected(params: SamplingParams) -> None:
    with pytest.raises(InvalidRequestError):
        validate_sampling(params)


def test_valid_parameters_pass() -> None:
    validate_sampling(SamplingParams(max_tokens=1, temperature=0.7, top_p=0.9, top_k=40))


def test_repetition_penalty_follows_hugging_face_over_generated_tokens() -> None:
    """Guards the rule: positive logits are divided, negative ones multiplied."""
    from transformers import RepetitionPenaltyLogitsProcessor

    from inference.sampling import penalize_repetition

    logits = torch.tensor([2.0, -1.0, 0.5, 3.0])
    ours = penalize_repetition(logits, [0, 1, 1], 1.3)
    theirs = RepetitionPenaltyLogitsProcessor(1.3)(torch.tensor([[0, 1, 1]]), logits[None].clone())[
        0
    ]
    assert torch.allclose(ours, theirs)
    assert torch.equal(logits, torch.tensor([2.0, -1.0, 0.5, 3.0]))


def test_a_penalty_breaks_a_greedy_tie_towards_a_fresh_token() -> None:
    logits = torch.tensor([5.0, 4.9, 0.0])
    assert sample_next(logits, SamplingParams(), previous=[0]) == 0
    assert sample_next(logits, SamplingParams(repetition_penalty=1.2), previous=[0]) == 1


@pytest.mark.parametrize("guess", [0, 1, 2])
def test_verifying_a_guess_keeps_the_distribution(guess: int) -> None:
    # Speculative sampling: keeping the guess with its probability, else drawing
    # from the rest, is a draw from the whole distribution, whatever was guessed.
    logits = _logits([0.6, 0.3, 0.1])
    params = SamplingParams(temperature=1.0, seed=11)
    generator = make_generator(params)
    draws = [sample_next(logits, params, generator, guess=guess) for _ in range(6000)]
    shares = [draws.count(i) / len(draws) for i in range(3)]
    assert shares == pytest.approx([0.6, 0.3, 0.1], abs=0.025)


def test_verifying_follows_temperature_top_k_and_the_penalty() -> None:
    logits = _logits([0.5, 0.3, 0.2])
    params = SamplingParams(temperature=1.0, top_k=2, repetition_penalty=2.0, seed=5)
    generator = make_generator(params)
    # Token 2 is outside the top 2: a guess of it is always rejected.
    assert {sample_next(logits, params, generator, guess=2) for _ in range(300)} <= {0, 1}
    # Penalised, token 0 falls to 0.25 / (0.25 + 0.3): the guess is kept that often.
    draws = [sample_next(logits, params, generator, [0], guess=0) for _ in range(4000)]
    assert draws.count(0) / len(draws) == pytest.approx(0.25 / 0.55, abs=0.03)


def test_a_guess_holding_all_the_mass_is_kept() -> None:
    logits = torch.tensor([10.0, -1e4, -1e4])
    params = SamplingParams(temperature=1.0, top_k=1, seed=1)
    generator = make_generator(params)
    assert {sample_next(logits, params, generator, guess=0) for _ in range(100)} == {0}


def test_greedy_ignores_the_guess() -> None:
    logits = torch.tensor([0.1, 3.0, 2.9])
    assert sample_next(logits, SamplingParams(temperature=0.0), guess=2) == 1


def test_the_prompt_bias_raises_the_prompts_tokens_but_never_a_special_one() -> None:
    params = SamplingParams(prompt_bias=1.5)
    assert biased_tokens(SamplingParams(), [3, 4], set()) is None
    biased = biased_tokens(params, [4, 2, 4, 0], {0})
    assert biased is not None
    assert biased.tolist() == [2, 4]
    logits = torch.tensor([2.0, 2.2, 1.0, 0.0, 0.0])
    assert sample_next(logits, SamplingParams()) == 1
    assert sample_next(logits, params, biased=biased) == 2  # 1 + 1.5 beats 2.2
    assert sample_next(logits, SamplingParams(prompt_bias=0.5), biased=biased) == 1
    assert torch.equal(logits, torch.tensor([2.0, 2.2, 1.0, 0.0, 0.0]))  # not in place
    # sampled: the bias moves probability toward the prompt's tokens
    sampled = SamplingParams(temperature=1.0, seed=3, prompt_bias=2.0)
    generator = make_generator(sampled)
    draws = [sample_next(logits, sampled, generator, biased=biased) for _ in range(400)]
    plain = _draw(logits, SamplingParams(temperature=1.0, seed=3), 400)
    assert draws.count(2) + draws.count(4) > 2 * (plain.count(2) + plain.count(4))


def test_no_repeat_ngram_forbids_completing_a_run_the_answer_already_holds() -> None:
    # The answer 5 6 7 8 ... 5 6 7: a 4th token 8 would repeat the run 5 6 7 8.
    previous = [5, 6, 7, 8, 1, 5, 6, 7]
    assert repeated_ngram_tokens(previous, 4) == {8}
    assert repeated_ngram_tokens(previous, 3) == {8}
    assert repeated_ngram_tokens(previous, 5) == set()  # 1 5 6 7 was never followed
    assert repeated_ngram_tokens([7, 7, 7], 2) == {7}
    assert repeated_ngram_tokens([5, 6, 7, 9, 5, 6, 7, 8, 5, 6, 7], 4) == {8, 9}
    assert repeated_ngram_tokens(previous, 0) == set()
    assert repeated_ngram_tokens((5, 6, 5), 2) == {6}  # any sequence, not only lists
    logits = torch.tensor([0.0] * 6 + [1.0, 0.5, 3.0])  # token 8 is the argmax
    params = SamplingParams(no_repeat_ngram=4)
    assert sample_next(logits, params, previous=previous) == 6
    assert sample_next(logits, SamplingParams(), previous=previous) == 8
    # A sampled draw never picks a forbidden token either.
    sampled = SamplingParams(no_repeat_ngram=4, temperature=1.0, seed=3)
    draws = {sample_next(logits, sampled, make_generator(sampled), previous) for _ in range(50)}
    assert 8 not in draws
