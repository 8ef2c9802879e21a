"""Pick the next token from a logits vector: greedy, temperature, top-k, top-p, seed."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import torch

from inference.errors import InvalidRequestError

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from inference.types import SamplingParams


def validate_sampling(params: SamplingParams) -> None:
    """Reject parameters no sampler can honour.

    Raises:
        InvalidRequestError: A parameter is out of range.
    """
    if params.max_tokens < 1:
        raise InvalidRequestError("max_tokens must be at least 1")
    if params.temperature < 0:
        raise InvalidRequestError("temperature must not be negative")
    if not 0.0 < params.top_p <= 1.0:
        raise InvalidRequestError("top_p must be in (0, 1]")
    if not 1.0 <= params.repetition_penalty <= 2.0:
        raise InvalidRequestError("repetition_penalty must be between 1 and 2")
    if params.top_k < 0:
        raise InvalidRequestError("top_k must not be negative")
    if not 0.0 <= params.prompt_bias <= 10.0:
        raise InvalidRequestError("prompt_bias must be between 0 and 10")
    if params.no_repeat_ngram == 1 or not 0 <= params.no_repeat_ngram <= 64:
        raise InvalidRequestError("no_repeat_ngram must be 0 (off) or between 2 and 64")
    if any(not stop for stop in params.stop):
        raise InvalidRequestError("stop strings must not be empty")


def make_generator(params: SamplingParams, device: torch.device | str = "cpu") -> torch.Generator:
    """A per-request random generator, seeded with ``params.seed`` (random when ``None``).

    NOTE: one generator per request keeps a seeded request reproducible whatever
    else runs in the process; the global torch RNG would not.
    """
    generator = torch.Generator(device=device)
    seed = params.seed if params.seed is not None else secrets.randbits(63)
    generator.manual_seed(seed)
    return generator


def biased_tokens(
    params: SamplingParams,
    prompt: Sequence[int],
    special: Collection[int],
    device: torch.device | str = "cpu",
) -> torch.Tensor | None:
    """The distinct ids of ``prompt`` that ``params.prompt_bias`` raises, never a
    special token (an end-of-turn token among them would end answers early), on the
    logits' ``device`` (made once a request, used every token); ``None`` without a
    bias."""
    if not params.prompt_bias:
        return None
    ids = sorted(set(prompt).difference(special))
    return torch.tensor(ids, dtype=torch.long, device=device)


def filter_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Scale by temperature, then mask everything outside top-k and the top-p nucleus.

    Args:
        logits: 1-D float tensor over the vocabulary.
        params: Sampling parameters with ``temperature > 0``.

    Returns:
        A float32 tensor of the same shape; masked entries are ``-inf``.
    """
    scores = logits.float() / params.temperature
    vocab = scores.shape[-1]
    if 0 < params.top_k < vocab:
        kth = torch.topk(scores, params.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, sorted_idx = torch.sort(scores, descending=True)
        cumulative = torch.softmax(sorted_scores, dim=-1).cumsum(dim=-1)
        # Drop a token when the tokens ranked above it already reach top_p; the
        # most likely token always stays.
        drop_sorted = (cumulative - torch.softmax(sorted_scores, dim=-1)) >= params.top_p
        drop_sorted[0] = False
        drop = torch.zeros_like(drop_sorted).scatter(0, sorted_idx, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    return scores


def penalize_repetition(
    logits: torch.Tensor, previous: Sequence[int], penalty: float
) -> torch.Tensor:
    """Hugging Face's repetition penalty over ``previous`` token ids (a copy)."""
    if penalty == 1.0 or not previous:
        return logits
    ids = torch.tensor(sorted(set(previous)), device=logits.device)
    scores = logits.clone()
    picked = scores[ids]
    scores[ids] = torch.where(picked < 0, picked * penalty, picked / penalty)
    return scores


def repeated_ngram_tokens(previous: Sequence[int], n: int) -> set[int]:
    """The tokens that would make the last ``n`` of ``previous`` a run of ``n`` tokens
    ``previous`` already holds (Hugging Face's ``no_repeat_ngram_size``)."""
    if n < 2 or len(previous) < n:
        return set()
    tokens = previous if isinstance(previous, list) else list(previous)
    tail = tokens[len(tokens) - n + 1 :]
    end = len(tokens) - n + 1
    banned: set[int] = set()
    at = -1
    while True:
        try:
            at = tokens.index(tail[0], at + 1, end)
        except ValueError:
            return banned
        if tokens[at : at + n - 1] == tail:
            banned.add(tokens[at + n - 1])


def sample_next(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator | None = None,
    previous: Sequence[int] = (),
    guess: int | None = None,
    biased: torch.Tensor | None = None,
) -> int:
    """The id of the next token.

    Args:
        logits: 1-D tensor over the vocabulary for the last position.
        params: ``temperature <= 0`` means greedy (argmax).
        generator: The request's generator (see ``make_generator``); required
            for reproducible sampling.
        previous: The tokens generated so far, for ``repetition_penalty`` and
            ``no_repeat_ngram``.
        guess: A speculated token to verify (``inference.speculation``): sampled,
            it is kept with the probability the model gives it, and otherwise the
            token is drawn from the rest of the distribution, which together is
            exactly a draw from the distribution (speculative sampling with a
            draft that is certain of its guess). Greedy ignores it.
        biased: ``biased_tokens`` of the request, raised by ``params.prompt_bias``.

    Returns:
        The chosen token id.
    """
    if biased is not None and biased.numel():
        raise_by = logits.new_full(biased.shape, params.prompt_bias)
        logits = logits.index_add(0, biased, raise_by)
    logits = penalize_repetition(logits, previous, params.repetition_penalty)
    banned = repeated_ngram_tokens(previous, params.no_repeat_ngram)
    if banned:
        logits = logits.index_fill(
            0, torch.tensor(sorted(banned), device=logits.device), -torch.inf
        )
    if params.greedy:
        return int(torch.argmax(logits).item())
    probs = torch.softmax(filter_logits(logits, params), dim=-1)
    if guess is not None:
        kept = float(probs[guess])
        if float(torch.rand((), generator=generator, device=probs.device)) < kept:
            return guess
        probs[guess] = 0.0  # this call's own softmax output: no copy needed
        if not bool(probs.any()):  # the guess held all the mass, up to rounding
            return guess
    return int(torch.multinomial(probs, num_samples=1, generator=generator).item())
