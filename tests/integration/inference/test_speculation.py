"""Speculative decoding in the BatchingEngine, against the real SmolLM2-135M-Instruct:
greedy text equal to plain decoding, stops honoured inside a run of guesses, sampled
requests verified by speculative sampling, counted."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from prometheus_client import CollectorRegistry

from inference import batching_engine
from inference.speculation import SpeculationPolicy
from inference.types import FinishReason
from tests.integration.inference.helpers import hf_greedy
from tests.integration.inference.test_batching_engine import _collect, _make, _metric, _request

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from inference.batching_engine import BatchingEngine
    from inference.loader import LoadedModel

pytestmark = pytest.mark.model

# A passage the answer copies from, so guesses from the prompt come true.
PASSAGE = (
    "The batching engine shares every forward pass between the running requests, "
    "and the prefix cache reuses the keys and values of shared prompt prefixes."
)
COPY = f"Repeat this sentence word for word: {PASSAGE}"


@pytest.fixture
async def speculating(
    loaded_fp32: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[BatchingEngine, CollectorRegistry]]:
    """A started engine guessing up to 4 tokens a step, with its own metrics, that
    verifies them at every lone step after the first (these tests check what
    verifying does, whatever this CPU finds faster; the policy has its own tests)."""
    monkeypatch.setattr(batching_engine, "SpeculationPolicy", lambda: SpeculationPolicy(explore=0))
    registry = CollectorRegistry()
    engine = _make(loaded_fp32, registry, max_running=2, speculate_tokens=4)
    await engine.start()
    yield engine, registry
    await engine.stop()


async def test_speculation_keeps_greedy_text_and_stops_exact(
    speculating: tuple[BatchingEngine, CollectorRegistry], loaded_fp32: LoadedModel
) -> None:
    engine, registry = speculating
    copy = _request(engine, COPY, max_tokens=40)
    reference = hf_greedy(loaded_fp32, copy.prompt_token_ids, 40)
    text, finish = await _collect(engine, copy)
    assert text == reference
    drafted = _metric(registry, "ragserve:spec_decode_num_draft_tokens_total")
    accepted = _metric(registry, "ragserve:spec_decode_num_accepted_tokens_total")
    assert 0 < accepted <= drafted
    # Fewer steps than tokens: each accepted guess saved a forward pass.
    assert accepted >= 10

    # max_tokens inside a run of accepted guesses: exactly that many tokens.
    short = _request(engine, COPY, max_tokens=7)
    text, finish = await _collect(engine, short)
    assert finish.reason == FinishReason.LENGTH
    assert finish.completion_tokens == 7
    assert text == hf_greedy(loaded_fp32, short.prompt_token_ids, 7)

    # A stop string inside the copied run ends the answer before it.
    stop = reference.split()[5]
    stopped = _request(engine, COPY, max_tokens=40, stop=(stop,))
    text, finish = await _collect(engine, stopped)
    assert finish.reason == FinishReason.STOP
    assert text == reference.split(stop)[0]

    # An answer that ends early (EOS) ends at the same token.
    capital = _request(engine, "What is the capital of France?", max_tokens=24)
    text, finish = await _collect(engine, capital)
    assert text == hf_greedy(loaded_fp32, capital.prompt_token_ids, 24)
    assert finish.reason == FinishReason.STOP


async def test_a_sampled_request_verifies_guesses_by_speculative_sampling(
    speculating: tuple[BatchingEngine, CollectorRegistry],
) -> None:
    engine, registry = speculating
    sampled = _request(engine, COPY, max_tokens=30, temperature=0.3)
    text, finish = await _collect(engine, sampled)
    drafted = _metric(registry, "ragserve:spec_decode_num_draft_tokens_total")
    accepted = _metric(registry, "ragserve:spec_decode_num_accepted_tokens_total")
    # At a low temperature the copy is still likely: most guesses are kept.
    assert accepted >= 10
    assert accepted <= drafted
    assert finish.completion_tokens <= 30
    assert "batching engine" in text


async def test_speculation_stays_off_for_seeded_and_concurrent_requests(
    speculating: tuple[BatchingEngine, CollectorRegistry], loaded_fp32: LoadedModel
) -> None:
    engine, registry = speculating
    sampled = _request(engine, COPY, max_tokens=16, temperature=0.7, seed=3)
    await _collect(engine, sampled)
    assert _metric(registry, "ragserve:spec_decode_num_draft_tokens_total") == 0
    # Two greedy requests decoding together: plain decode rows, the same text.
    pair = [_request(engine, COPY, max_tokens=12), _request(engine, "Hi", max_tokens=12)]
    results = await asyncio.gather(*(_collect(engine, r) for r in pair))
    for request, (text, _) in zip(pair, results, strict=True):
        assert text == hf_greedy(loaded_fp32, request.prompt_token_ids, 12)
    assert engine.max_batch_seen == 2


def test_speculate_tokens_is_bounded(loaded_fp32: LoadedModel) -> None:
    with pytest.raises(ValueError, match="speculate_tokens"):
        _make(loaded_fp32, speculate_tokens=17)


async def test_the_engine_times_lone_steps_for_its_policy(loaded_fp32: LoadedModel) -> None:
    """The real policy: the engine times a lone request's plain steps and verifying
    passes, and counts what each pass accepted, for the policy to weigh."""
    registry = CollectorRegistry()
    engine = _make(loaded_fp32, registry, max_running=2, speculate_tokens=4)
    await engine.start()
    try:
        await _collect(engine, _request(engine, COPY, max_tokens=30))
    finally:
        await engine.stop()
    seconds, accepted = engine._policy.measured()
    assert seconds[1] > 0  # plain one-row steps
    assert any(rows > 1 and took > 0 for rows, took in seconds.items())  # verifying passes
    assert accepted[True] >= 0
    assert False not in accepted  # greedy only, this time
    assert _metric(registry, "ragserve:spec_decode_num_draft_tokens_total") > 0
