"""BatchingEngine against the real SmolLM2-135M-Instruct: exactness, control, fairness, cache."""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
from prometheus_client import CollectorRegistry

from inference.batching_engine import BatchingEngine
from inference.errors import (
    EngineOverloadedError,
    EngineUnavailableError,
    InvalidRequestError,
    ModelLoadError,
)
from inference.types import (
    ChatMessage,
    FinishEvent,
    FinishReason,
    GenerationRequest,
    Priority,
    SamplingParams,
    TokenEvent,
)
from tests.integration.inference.helpers import eventually, hf_greedy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from inference.loader import LoadedModel

pytestmark = pytest.mark.model

SYSTEM = (
    "You are a careful assistant for the ragserve documentation. Answer only from the "
    "sources below, cite them by number, and say so when they do not contain the answer. "
    "Source 1: ragserve streams tokens over WebSocket and REST. Source 2: the batching "
    "engine shares every forward pass between the running requests. Source 3: the prefix "
    "cache reuses the keys and values of shared prompt prefixes."
)


def _make(
    loaded: LoadedModel, registry: CollectorRegistry | None = None, **knobs: float
) -> BatchingEngine:
    knobs.setdefault("max_seq_len", 1024)
    return BatchingEngine(
        lambda: loaded,
        registry=registry or CollectorRegistry(),
        **knobs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
async def batching(loaded_fp32: LoadedModel) -> AsyncIterator[BatchingEngine]:
    """A started engine with a small prefill chunk, so long prompts take several steps."""
    engine = _make(loaded_fp32, max_running=4, prefill_chunk_tokens=64)
    await engine.start()
    yield engine
    await engine.stop()


def _request(
    engine: BatchingEngine,
    text: str,
    system: str | None = None,
    tenant: str = "",
    deadline: float | None = None,
    **sampling: object,
) -> GenerationRequest:
    messages = [ChatMessage("system", system)] if system else []
    messages.append(ChatMessage("user", text))
    return GenerationRequest(
        request_id=uuid.uuid4().hex,
        prompt_token_ids=engine.render_chat(messages),
        sampling=SamplingParams(**sampling),  # type: ignore[arg-type]
        tenant_id=tenant,
        deadline=deadline,
    )


async def _collect(
    engine: BatchingEngine, request: GenerationRequest, delay: float = 0.0
) -> tuple[str, FinishEvent]:
    await asyncio.sleep(delay)
    tokens: list[TokenEvent] = []
    finish: FinishEvent | None = None
    async for event in engine.generate(request):
        assert finish is None, "no event may follow the FinishEvent"
        if isinstance(event, TokenEvent):
            assert event.text
            tokens.append(event)
        else:
            finish = event
    assert finish is not None
    assert [t.index for t in tokens] == list(range(len(tokens)))
    return "".join(t.text for t in tokens), finish


def _metric(registry: CollectorRegistry, name: str) -> float:
    value = registry.get_sample_value(name, {"model_name": "SmolLM2-135M-Instruct"})
    return value or 0.0


async def test_greedy_batch_equals_hf_generate_alone(
    batching: BatchingEngine, loaded_fp32: LoadedModel
) -> None:
    """Guards exactness: batching, chunked prefill and late arrivals change no token."""
    colors = _request(batching, "List three colors.", max_tokens=12)
    # A stop string taken from the middle of the reference answer, so it surely appears.
    stop = hf_greedy(loaded_fp32, colors.prompt_token_ids, 12).split()[3]
    cases = [
        (_request(batching, "What is the capital of France?", max_tokens=12), 0.0),  # EOS early
        (_request(batching, "Describe a rainy day. " * 30, max_tokens=10), 0.0),  # 5 chunks
        (_request(batching, "Write a haiku about autumn leaves.", max_tokens=2), 0.0),
        (_request(batching, "List three colors.", max_tokens=12, stop=(stop,)), 0.5),
        (_request(batching, "Hi", max_tokens=12), 1.0),  # arrives while others decode
        (_request(batching, "Explain gravity simply. " * 12, max_tokens=8), 1.5),
    ]
    results = await asyncio.gather(*(_collect(batching, r, d) for r, d in cases))
    for (request, _), (text, finish) in zip(cases, results, strict=True):
        expected = hf_greedy(loaded_fp32, request.prompt_token_ids, request.sampling.max_tokens)
        for stop in request.sampling.stop:
            expected = expected.split(stop)[0]
        assert text == expected
        assert finish.prompt_tokens == len(request.prompt_token_ids)
    reasons = [finish.reason for _, finish in results]
    assert reasons[0] == FinishReason.STOP  # EOS within 12 tokens
    assert reasons[2] == FinishReason.LENGTH
    assert results[2][1].completion_tokens == 2
    assert reasons[3] == FinishReason.STOP  # the stop string
    assert batching.max_batch_seen > 1
    assert batching.num_running == 0


async def test_abort_mid_stream_frees_the_slot_for_a_queued_request(
    loaded_fp32: LoadedModel,
) -> None:
    engine = _make(loaded_fp32, max_running=1)
    await engine.start()
    try:
        long = _request(engine, "Write a long story about a dragon.", max_tokens=200)
        queued = _request(engine, "Say hello.", max_tokens=3)
        stream = engine.generate(long)
        first = await anext(stream)
        assert isinstance(first, TokenEvent)
        waiting = asyncio.create_task(_collect(engine, queued))
        await eventually(lambda: engine.num_waiting == 1, within=20.0)
        await engine.abort(long.request_id)
        events = [event async for event in stream]
        assert isinstance(events[-1], FinishEvent)
        assert events[-1].reason == FinishReason.CANCELLED
        _, finish = await asyncio.wait_for(waiting, 30)
        assert finish.reason == FinishReason.LENGTH
        await engine.abort("no-such-request")
    finally:
        await engine.stop()


async def test_closing_the_stream_early_aborts(batching: BatchingEngine) -> None:
    stream = batching.generate(_request(batching, "Count to one hundred.", max_tokens=200))
    assert isinstance(await anext(stream), TokenEvent)
    await stream.aclose()
    await eventually(lambda: batching.num_running == 0, within=20.0)


async def test_deadline_cancels_running_and_waiting_requests(batching: BatchingEngine) -> None:
    past = _request(batching, "Hi", deadline=time.monotonic() - 1, max_tokens=5)
    _, finish = await _collect(batching, past)
    assert finish.reason == FinishReason.CANCELLED
    assert finish.completion_tokens == 0
    soon = _request(
        batching, "Write a long essay on rivers.", deadline=time.monotonic() + 1.0, max_tokens=500
    )
    _, finish = await asyncio.wait_for(_collect(batching, soon), 30)
    assert finish.reason == FinishReason.CANCELLED
    assert 0 < finish.completion_tokens < 500


async def test_full_queue_raises_overloaded_with_retry_after(loaded_fp32: LoadedModel) -> None:
    registry = CollectorRegistry()
    engine = _make(loaded_fp32, registry, max_running=1, max_waiting=1, max_waiting_tokens=10_000)
    await engine.start()
    try:
        running = engine.generate(_request(engine, "Tell me a story.", max_tokens=100))
        assert isinstance(await anext(running), TokenEvent)
        waiting = engine.generate(_request(engine, "Hi", max_tokens=2))
        waiting_task = asyncio.create_task(anext(waiting))
        await eventually(lambda: engine.num_waiting == 1, within=20.0)
        with pytest.raises(EngineOverloadedError) as info:
            await anext(engine.generate(_request(engine, "Hi", max_tokens=2)))
        assert info.value.retry_after > 0
        assert _metric(registry, "ragserve:requests_rejected_total") == 1
        await running.aclose()
        assert isinstance(await asyncio.wait_for(waiting_task, 30), TokenEvent)
        await waiting.aclose()
    finally:
        await engine.stop()


async def test_queue_is_bounded_by_prompt_tokens(loaded_fp32: LoadedModel) -> None:
    engine = _make(loaded_fp32, max_running=1, max_waiting_tokens=40)
    await engine.start()
    try:
        running = engine.generate(_request(engine, "Tell me a story.", max_tokens=100))
        assert isinstance(await anext(running), TokenEvent)
        with pytest.raises(EngineOverloadedError):
            await anext(engine.generate(_request(engine, "Describe the sea. " * 10)))
        with pytest.raises(InvalidRequestError):
            await anext(engine.generate(_request(engine, "Hi", max_tokens=5000)))
        await running.aclose()
    finally:
        await engine.stop()


async def test_a_flooding_tenant_does_not_starve_another(loaded_fp32: LoadedModel) -> None:
    """Guards fairness: B's one request finishes before most of A's earlier ones."""
    engine = _make(loaded_fp32, max_running=1)
    await engine.start()
    try:
        finished: list[str] = []

        async def run(request: GenerationRequest) -> None:
            await _collect(engine, request)
            finished.append(request.tenant_id)

        tasks = [
            asyncio.create_task(run(_request(engine, f"Number {i}?", tenant="A", max_tokens=3)))
            for i in range(6)
        ]
        await eventually(lambda: engine.num_waiting >= 5, within=20.0)
        tasks.append(asyncio.create_task(run(_request(engine, "Hi", tenant="B", max_tokens=3))))
        await asyncio.gather(*tasks)
        assert finished.index("B") <= 2
    finally:
        await engine.stop()


async def test_prefix_cache_hit_keeps_output_exact(loaded_fp32: LoadedModel) -> None:
    registry = CollectorRegistry()
    engine = _make(loaded_fp32, registry, max_running=2, prefix_block_tokens=16)
    await engine.start()
    try:
        first = _request(engine, "What does the engine share?", system=SYSTEM, max_tokens=8)
        await _collect(engine, first)
        assert _metric(registry, "ragserve:prefix_cache_hits_total") == 0
        second = _request(engine, "What does the cache reuse?", system=SYSTEM, max_tokens=8)
        text, _ = await _collect(engine, second)
        hits = _metric(registry, "ragserve:prefix_cache_hits_total")
        assert hits >= 64
        queries = _metric(registry, "ragserve:prefix_cache_queries_total")
        assert queries == len(first.prompt_token_ids) + len(second.prompt_token_ids)
        assert text == hf_greedy(loaded_fp32, second.prompt_token_ids, 8)
        assert _metric(registry, "ragserve:time_to_first_token_seconds_count") == 2
        assert _metric(registry, "ragserve:generation_tokens_total") >= 2
    finally:
        await engine.stop()


async def test_seeded_sampling_is_reproducible_in_a_batch(batching: BatchingEngine) -> None:
    def sampled() -> GenerationRequest:
        return _request(batching, "Name an animal.", max_tokens=8, temperature=1.0, seed=7)

    first, second, _ = await asyncio.gather(
        _collect(batching, sampled()),
        _collect(batching, sampled(), delay=0.3),
        _collect(batching, _request(batching, "Describe the sea. " * 8, max_tokens=8)),
    )
    assert first[0] == second[0]


async def test_batches_and_keeps_the_event_loop_responsive(loaded_fp32: LoadedModel) -> None:
    registry = CollectorRegistry()
    engine = _make(loaded_fp32, registry, max_running=8)
    await engine.start()
    try:
        requests = [_request(engine, f"Tell me about {i}.", max_tokens=6) for i in range(8)]
        work = asyncio.gather(*(_collect(engine, r) for r in requests))
        gaps: list[float] = []
        while not work.done():
            before = time.monotonic()
            await asyncio.sleep(0.005)
            gaps.append(time.monotonic() - before)
        await work
        assert max(gaps) < 0.25
        assert engine.max_batch_seen == 8
        assert _metric(registry, "ragserve:batch_size_count") > 0
        assert _metric(registry, "ragserve:e2e_request_latency_seconds_count") == 8
    finally:
        await engine.stop()


async def test_a_preempted_batch_request_resumes_with_the_same_greedy_text(
    loaded_fp32: LoadedModel,
) -> None:
    """Guards preemption's exactness: a batch request that gives its only slot to an
    online request twice, and resumes by recomputing (from the prefix cache, then its
    generated tokens), still streams the very text it would alone, every piece once,
    with gapless indices, and the online requests finish first."""
    registry = CollectorRegistry()
    engine = _make(
        loaded_fp32, registry, max_running=1, max_batch_share=1.0, prefix_block_tokens=16
    )
    await engine.start()
    try:
        batch = replace(
            _request(engine, "Write a long story about a dragon.", max_tokens=24),
            priority=Priority.BATCH,
        )
        online = [_request(engine, q, max_tokens=3) for q in ("Say hello.", "Name a colour.")]
        tasks: list[asyncio.Task[tuple[str, FinishEvent]]] = []
        tokens: list[TokenEvent] = []
        finish: FinishEvent | None = None
        async for event in engine.generate(batch):
            if isinstance(event, FinishEvent):
                finish = event
            else:
                tokens.append(event)
                if event.index in (2, 10):
                    tasks.append(asyncio.create_task(_collect(engine, online[len(tasks)])))
        assert finish is not None
        assert finish.reason == FinishReason.LENGTH
        assert finish.completion_tokens == 24
        assert [t.index for t in tokens] == list(range(len(tokens)))
        assert "".join(t.text for t in tokens) == hf_greedy(loaded_fp32, batch.prompt_token_ids, 24)
        assert all(task.done() for task in tasks)
        assert _metric(registry, "ragserve:num_preemptions_total") == 2
        # The resumptions start from the prompt blocks the first prefill cached.
        assert _metric(registry, "ragserve:prefix_cache_hits_total") >= 32
        assert _metric(registry, "ragserve:prompt_tokens_total") == sum(
            len(r.prompt_token_ids) for r in (batch, *online)
        )
        for request, task in zip(online, tasks, strict=True):
            text, _ = task.result()
            assert text == hf_greedy(loaded_fp32, request.prompt_token_ids, 3)
    finally:
        await engine.stop()


async def test_batch_requests_hold_at_most_their_share_of_the_slots(
    loaded_fp32: LoadedModel,
) -> None:
    registry = CollectorRegistry()
    engine = _make(loaded_fp32, registry, max_running=4, max_batch_share=0.5)
    await engine.start()
    try:
        assert engine.max_batch_running == 2
        requests = [
            replace(_request(engine, f"Number {i}?", max_tokens=3), priority=Priority.BATCH)
            for i in range(4)
        ]
        await asyncio.gather(*(_collect(engine, r) for r in requests))
        assert engine.max_batch_seen == 2
        assert _metric(registry, "ragserve:num_preemptions_total") == 0
        await eventually(
            lambda: _metric(registry, "ragserve:num_batch_requests_running") == 0, within=5.0
        )
    finally:
        await engine.stop()


async def test_beside_online_work_batch_requests_run_only_a_few_at_a_time(
    loaded_fp32: LoadedModel,
) -> None:
    """Guards the throttle under load: while an online request runs, batch requests
    are admitted one at a time (``batch_slots_under_load=1``), whatever their share."""
    engine = _make(loaded_fp32, max_running=4, max_batch_share=1.0, batch_slots_under_load=1)
    await engine.start()
    try:
        online = engine.generate(_request(engine, "Tell me a long story.", max_tokens=60))
        assert isinstance(await anext(online), TokenEvent)
        requests = [
            replace(_request(engine, f"Number {i}?", max_tokens=3), priority=Priority.BATCH)
            for i in range(3)
        ]
        await asyncio.gather(*(_collect(engine, r) for r in requests))
        assert engine.max_batch_seen == 2  # the online sequence and one batch sequence
        await online.aclose()
    finally:
        await engine.stop()


async def test_the_model_loads_on_a_thread_that_ends_and_a_failed_load_is_raised(
    loaded_fp32: LoadedModel,
) -> None:
    """Not on the event loop's executor, whose threads live on (with an OpenMP pool
    that would slow every step: ``kernel/torch_threads.py``)."""
    where: list[str] = []

    def loader() -> LoadedModel:
        where.append(threading.current_thread().name)
        return loaded_fp32

    engine = BatchingEngine(loader, max_seq_len=256, registry=CollectorRegistry())
    await engine.start()
    try:
        assert where == ["ragserve-model-load"]
        alive = [t.name for t in threading.enumerate()]
        assert "ragserve-model-load" not in alive
        assert engine.thread_name in alive
    finally:
        await engine.stop()

    def broken() -> LoadedModel:
        raise ModelLoadError("no such model")

    failing = BatchingEngine(broken, registry=CollectorRegistry())
    with pytest.raises(ModelLoadError, match="no such model"):
        await failing.start()
    with pytest.raises(EngineUnavailableError):
        await failing.check_health()


async def test_the_prompt_bias_leans_the_answer_toward_the_prompts_words(
    batching: BatchingEngine,
) -> None:
    def words(text: str) -> list[str]:
        return re.findall(r"[a-z]{3,}", text.lower())

    prompt_words = set(words(SYSTEM))
    shares = {}
    for bias in (0.0, 4.0):
        request = _request(
            batching, "What does the prefix cache do?", SYSTEM, max_tokens=40, prompt_bias=bias
        )
        text, _ = await _collect(batching, request)
        said = words(text)
        assert said, text
        shares[bias] = sum(word in prompt_words for word in said) / len(said)
    assert shares[4.0] > shares[0.0]
    assert shares[4.0] > 0.6


async def test_no_repeat_ngram_forbids_the_answer_a_run_it_already_holds(
    batching: BatchingEngine,
) -> None:
    def repeated_pairs(text: str) -> int:
        words = text.split()
        pairs = list(itertools.pairwise(words))
        return len(pairs) - len(set(pairs))

    source = (
        "Answer from this source.\n[1] Methods are functions called using the attribute notation."
    )
    ask = "What are methods?"
    free, _ = await _collect(batching, _request(batching, ask, source, max_tokens=64))
    assert repeated_pairs(free) > 0, free  # the model does repeat pairs of words here
    request = _request(batching, ask, source, max_tokens=64, no_repeat_ngram=2)
    text, _ = await _collect(batching, request)
    assert len(text.split()) > 10, text
    assert repeated_pairs(text) == 0, text
