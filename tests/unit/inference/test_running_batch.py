"""The running batch's step plan: online prefill first, and a preempted sequence's resume."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
import torch

from inference.kv_cache import KVCache
from inference.prefix_cache import PrefixCache
from inference.request_slot import RequestSlot
from inference.running_batch import IDLE_PREFILL_CHUNKS, RunningBatch
from inference.sequence import Sequence
from inference.speculation import SpeculationPolicy
from inference.types import GenerationRequest, Priority

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _running() -> RunningBatch:
    cache = KVCache(1, 4, 1, 128, 2, torch.float32, torch.device("cpu"))
    return RunningBatch(cache, PrefixCache(capacity_bytes=0), kv_budget=512)


def _seq(loop: asyncio.AbstractEventLoop, key: str, prompt: int, priority: Priority) -> Sequence:
    request = GenerationRequest(key, list(range(1, prompt + 1)), priority=priority)
    stream: Any = None  # the step plan never detokenizes
    return Sequence(RequestSlot(request, loop), stream, None, kv_tokens=prompt + 16)


def test_batch_prefill_gets_what_online_prefill_leaves(loop: asyncio.AbstractEventLoop) -> None:
    running = _running()
    batch = _seq(loop, "b", 30, Priority.BATCH)
    online = _seq(loop, "o", 30, Priority.ONLINE)
    running.add(batch)  # admitted first, yet prefilled second
    running.add(online)
    # Nothing decodes yet: the step may take IDLE_PREFILL_CHUNKS budgets, 40 tokens.
    step = running.next_step(prefill_budget=40 // IDLE_PREFILL_CHUNKS)
    chunks = [(c.slot, c.start, c.length) for c in step.batch.prefills]
    assert chunks == [(online.kv_slot, 0, 30), (batch.kv_slot, 0, 10)]
    assert step.sampled == [online]
    assert running.free_slots == 2
    assert running.free_kv_tokens == 512 - 2 * 46


def test_batch_prefill_is_capped_while_an_online_sequence_runs(
    loop: asyncio.AbstractEventLoop,
) -> None:
    running = _running()
    batch = _seq(loop, "b", 60, Priority.BATCH)
    running.add(batch)
    budget = 40 // IDLE_PREFILL_CHUNKS  # nothing decodes: 40 tokens a step
    alone = running.next_step(prefill_budget=budget, batch_prefill_cap=8)
    assert [c.length for c in alone.batch.prefills] == [40]  # no online work: the whole budget
    online = _seq(loop, "o", 4, Priority.ONLINE)
    running.add(online)
    step = running.next_step(prefill_budget=budget, batch_prefill_cap=8)
    chunks = [(c.slot, c.length) for c in step.batch.prefills]
    assert chunks == [(online.kv_slot, 4), (batch.kv_slot, 8)]


def test_a_preempted_sequence_recomputes_prompt_and_generated_then_samples(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Guards the resume: every generated token is recomputed, the last row gives the
    next token, and decoding carries on at the right position."""
    running = _running()
    seq = _seq(loop, "b", 6, Priority.BATCH)
    running.add(seq)
    seq.computed = 6
    seq.generated = [7, 8, 9]
    running.remove(seq)
    seq.preempt()
    assert (seq.kv_slot, seq.computed, seq.preemptions) == (-1, 0, 1)
    running.add(seq)
    step = running.next_step(prefill_budget=64)
    assert step.batch.token_ids == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert step.batch.positions == list(range(9))
    assert step.batch.logit_rows == [8]
    assert step.sampled == [seq]
    assert step.prefilled == [seq]
    seq.generated.append(10)
    step = running.next_step(prefill_budget=64)
    assert (step.batch.token_ids, step.batch.positions) == ([10], [9])


def test_a_lone_greedy_sequence_verifies_guesses_in_a_draft_chunk(
    loop: asyncio.AbstractEventLoop,
) -> None:
    running = _running()
    seq = _seq(loop, "g", 8, Priority.ONLINE)  # prompt 1 .. 8
    request = seq.slot.request
    request.sampling = replace(request.sampling, max_tokens=16)
    running.add(seq)
    running.next_step(prefill_budget=64)
    seq.generated = [3, 4]  # "3 4" occurred in the prompt, followed by 5 6 7 8
    seq.slot.completion_tokens = 2
    step = running.next_step(prefill_budget=64, speculate=3)
    assert step.batch.decode_slots == []
    chunk = step.batch.prefills[0]
    assert (chunk.slot, chunk.start, chunk.length, chunk.draft) == (seq.kv_slot, 9, 4, True)
    assert step.batch.token_ids == [4, 5, 6, 7]
    assert step.batch.logit_rows == [0, 1, 2, 3]
    assert step.guesses == [[5, 6, 7]]
    rows = torch.arange(4.0)[:, None]
    assert [(s, g, r.flatten().tolist()) for s, g, r in step.outputs(rows)] == [
        (seq, [5, 6, 7], [0.0, 1.0, 2.0, 3.0])
    ]
    # No more guesses than the tokens left after the one the pass computes anyway.
    seq.slot.completion_tokens = 14
    assert running.next_step(prefill_budget=64, speculate=3).guesses == [[5]]
    seq.slot.completion_tokens = 15
    assert running.next_step(prefill_budget=64, speculate=3).guesses == [[]]


def test_guesses_only_for_a_sequence_decoding_alone_and_not_seeded(
    loop: asyncio.AbstractEventLoop,
) -> None:
    running = _running()
    first, second = _seq(loop, "a", 8, Priority.ONLINE), _seq(loop, "b", 8, Priority.ONLINE)
    for seq in (first, second):
        running.add(seq)
    running.next_step(prefill_budget=64)
    for seq in (first, second):
        seq.generated, seq.slot.completion_tokens = [3, 4], 2
    step = running.next_step(prefill_budget=64, speculate=3)
    assert step.guesses == [[], []]
    assert len(step.batch.decode_slots) == 2
    running.remove(second)
    # Sampled, it guesses (speculative sampling verifies them) unless seeded.
    first.slot.request.sampling = replace(first.slot.request.sampling, temperature=0.5)
    assert running.next_step(prefill_budget=64, speculate=3).guesses == [[5, 6, 7]]
    first.slot.request.sampling = replace(first.slot.request.sampling, seed=7)
    assert running.next_step(prefill_budget=64, speculate=3).guesses == [[]]


def test_the_policy_decides_whether_guesses_are_verified(
    loop: asyncio.AbstractEventLoop,
) -> None:
    cache = KVCache(1, 4, 1, 128, 2, torch.float32, torch.device("cpu"))
    policy = SpeculationPolicy(alpha=1.0)
    running = RunningBatch(cache, PrefixCache(capacity_bytes=0), 512, policy)
    seq = _seq(loop, "g", 8, Priority.ONLINE)
    running.add(seq)
    assert running.next_step(prefill_budget=64).lone_rows() == 0  # a prompt chunk
    seq.generated, seq.slot.completion_tokens = [3, 4], 2
    # No one-row step timed yet: a plain decode row, and that step is timed.
    step = running.next_step(prefill_budget=64, speculate=3)
    assert (step.guesses, step.lone_rows()) == ([[]], 1)
    policy.timed(1, 0.02)
    step = running.next_step(prefill_budget=64, speculate=3)
    assert (step.guesses, step.lone_rows()) == ([[5, 6, 7]], 4)
    policy.timed(4, 0.05)
    policy.verified(True, 0)  # (1 + 0) x 20 ms < 50 ms: plain rows again
    assert running.next_step(prefill_budget=64, speculate=3).guesses == [[]]
    # Two sequences: no step is a lone one.
    running.add(_seq(loop, "h", 8, Priority.ONLINE))
    assert running.next_step(prefill_budget=64, speculate=3).lone_rows() == 0


def test_declined_guesses_are_scored_by_the_tokens_that_follow(
    loop: asyncio.AbstractEventLoop,
) -> None:
    cache = KVCache(1, 4, 1, 128, 2, torch.float32, torch.device("cpu"))
    policy = SpeculationPolicy(alpha=1.0, explore=100)
    running = RunningBatch(cache, PrefixCache(capacity_bytes=0), 512, policy)
    seq = _seq(loop, "g", 8, Priority.ONLINE)  # prompt 1 .. 8
    running.add(seq)
    running.next_step(prefill_budget=64)
    policy.timed(1, 0.02)
    policy.timed(4, 0.08)
    policy.verified(True, 0)  # (1 + 0) x 20 ms < 80 ms: declined from now on
    seq.generated, seq.slot.completion_tokens = [3, 4], 2
    assert running.next_step(prefill_budget=64, speculate=3).guesses == [[]]
    assert seq.unverified == (2, [5, 6, 7])
    # Plain steps bring 5, 6 (as guessed), then 9: two of the three came true.
    for token in (5, 6, 9):
        seq.generated.append(token)
        running.next_step(prefill_budget=64, speculate=3)
    assert policy.measured()[1] == {True: 2.0}


def test_a_step_prefills_more_while_nothing_decodes(loop: asyncio.AbstractEventLoop) -> None:
    running = _running()
    first = _seq(loop, "a", 100, Priority.ONLINE)
    running.add(first)
    step = running.next_step(prefill_budget=16)
    assert [c.length for c in step.batch.prefills] == [16 * IDLE_PREFILL_CHUNKS]
    first.computed, first.generated = 100, [7]  # now it decodes
    second = _seq(loop, "b", 100, Priority.ONLINE)
    running.add(second)
    step = running.next_step(prefill_budget=16)
    assert step.batch.decode_slots == [first.kv_slot]
    assert [c.length for c in step.batch.prefills] == [16]  # the decode row waits on it
