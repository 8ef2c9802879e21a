"""The running batch's step plan: online prefill first, and a preempted sequence's resume."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
import torch

from inference.kv_cache import KVCache
from inference.prefix_cache import PrefixCache
from inference.request_slot import RequestSlot
from inference.running_batch import RunningBatch
from inference.sequence import Sequence
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
    step = running.next_step(prefill_budget=40)
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
    alone = running.next_step(prefill_budget=40, batch_prefill_cap=8)
    assert [c.length for c in alone.batch.prefills] == [40]  # no online work: the whole budget
    online = _seq(loop, "o", 4, Priority.ONLINE)
    running.add(online)
    step = running.next_step(prefill_budget=40, batch_prefill_cap=8)
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
