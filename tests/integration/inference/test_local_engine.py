"""LocalEngine against the real SmolLM2-135M-Instruct: streaming, stopping, cancelling."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import TYPE_CHECKING

import pytest
import torch

from inference.errors import (
    EngineOverloadedError,
    EngineUnavailableError,
    InvalidRequestError,
    ModelLoadError,
)
from inference.loader import DEFAULT_CACHE_SUBDIR, LoadedModel, load_model
from inference.local_engine import LocalEngine
from inference.types import (
    ChatMessage,
    FinishEvent,
    FinishReason,
    GenerationRequest,
    SamplingParams,
    TokenEvent,
)
from tests.integration.inference.helpers import eventually, hf_greedy

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.model

PROMPTS = ["What is the capital of France?", "Write a haiku about autumn leaves."]
LONG_PROMPT = "Write a long story about a dragon who learns to bake bread."


def _request(engine: LocalEngine, text: str, **sampling: object) -> GenerationRequest:
    return GenerationRequest(
        request_id=uuid.uuid4().hex,
        prompt_token_ids=engine.render_chat([ChatMessage("user", text)]),
        sampling=SamplingParams(**sampling),  # type: ignore[arg-type]
    )


async def _collect(
    engine: LocalEngine, request: GenerationRequest
) -> tuple[list[TokenEvent], FinishEvent]:
    tokens: list[TokenEvent] = []
    finish: FinishEvent | None = None
    async for event in engine.generate(request):
        assert finish is None, "no event may follow the FinishEvent"
        if isinstance(event, TokenEvent):
            tokens.append(event)
        else:
            finish = event
    assert finish is not None
    return tokens, finish


def test_cache_is_written_and_reused(loaded_fp32: LoadedModel, model_cache_dir: Path) -> None:
    """Guards the one-time GGUF conversion: later loads read the safetensors cache."""
    folder = model_cache_dir / DEFAULT_CACHE_SUBDIR
    marker = folder / "ragserve-cache.json"
    assert (folder / "model.safetensors").is_file()
    assert marker.is_file()
    assert not list(model_cache_dir.glob(f".{DEFAULT_CACHE_SUBDIR}-*")), "staging dir left over"
    before = (folder.stat().st_ino, marker.stat().st_mtime_ns)

    again = load_model(None, model_cache_dir, dtype="bfloat16")

    assert (folder.stat().st_ino, marker.stat().st_mtime_ns) == before
    assert again.name == loaded_fp32.name == "SmolLM2-135M-Instruct"
    assert again.version == loaded_fp32.version
    assert again.version.startswith("q4_1-gguf+")
    assert len(again.version) == len("q4_1-gguf+") + 12
    assert again.dtype == torch.bfloat16
    assert not again.model.training


def test_a_local_folder_loads_as_a_custom_model(model_cache_dir: Path) -> None:
    folder = model_cache_dir / DEFAULT_CACHE_SUBDIR
    custom = load_model(str(folder), model_cache_dir, dtype="float32")
    assert (custom.name, custom.version) == (DEFAULT_CACHE_SUBDIR, DEFAULT_CACHE_SUBDIR)


def test_missing_model_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError):
        load_model(str(tmp_path / "nowhere"), tmp_path)


async def test_render_chat_and_count_tokens(engine: LocalEngine) -> None:
    ids = engine.render_chat([ChatMessage("user", "hi")])
    tokenizer = engine.loaded.tokenizer
    assert tokenizer.decode(ids).endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert engine.count_tokens("hello world") == 2
    assert engine.model_name == "SmolLM2-135M-Instruct"


@pytest.mark.parametrize("prompt", PROMPTS)
async def test_greedy_stream_equals_hf_generate(engine: LocalEngine, prompt: str) -> None:
    """Guards the manual KV-cache decode loop against drifting from HF ``generate``."""
    request = _request(engine, prompt, max_tokens=24)
    tokens, finish = await _collect(engine, request)

    expected = hf_greedy(engine.loaded, request.prompt_token_ids, 24)
    assert "".join(t.text for t in tokens) == expected
    assert len(tokens) > 1
    assert [t.index for t in tokens] == list(range(len(tokens)))
    assert all(t.text for t in tokens)
    assert finish.prompt_tokens == len(request.prompt_token_ids)
    assert finish.reason in (FinishReason.STOP, FinishReason.LENGTH)


async def test_max_tokens_ends_with_length(engine: LocalEngine) -> None:
    tokens, finish = await _collect(engine, _request(engine, LONG_PROMPT, max_tokens=5))
    assert finish.reason == FinishReason.LENGTH
    assert finish.completion_tokens == 5
    assert 1 <= len(tokens) <= 5


async def test_stop_string_cuts_the_text(engine: LocalEngine) -> None:
    reference, _ = await _collect(engine, _request(engine, LONG_PROMPT, max_tokens=24))
    full = "".join(t.text for t in reference)
    words = full.split()
    stop = words[len(words) // 2]

    tokens, finish = await _collect(
        engine, _request(engine, LONG_PROMPT, max_tokens=24, stop=(stop,))
    )

    assert "".join(t.text for t in tokens) == full[: full.index(stop)]
    assert finish.reason == FinishReason.STOP
    assert finish.completion_tokens < 24


async def test_seeded_sampling_is_reproducible(engine: LocalEngine) -> None:
    async def sample(seed: int) -> str:
        request = _request(engine, LONG_PROMPT, max_tokens=12, temperature=1.0, seed=seed)
        tokens, _ = await _collect(engine, request)
        return "".join(t.text for t in tokens)

    first = await sample(1234)
    assert await sample(1234) == first
    others = {await sample(seed) for seed in (1, 2)}
    assert others != {first}


async def test_abort_mid_stream_cancels_and_engine_serves_the_next(engine: LocalEngine) -> None:
    request = _request(engine, LONG_PROMPT, max_tokens=200)
    finish: FinishEvent | None = None
    async for event in engine.generate(request):
        if isinstance(event, TokenEvent) and event.index == 1:
            await engine.abort(request.request_id)
        if isinstance(event, FinishEvent):
            finish = event
    assert finish is not None
    assert finish.reason == FinishReason.CANCELLED
    assert 2 <= finish.completion_tokens < 200

    _, next_finish = await _collect(engine, _request(engine, PROMPTS[0], max_tokens=3))
    assert next_finish.reason == FinishReason.LENGTH


async def test_closing_the_stream_early_frees_the_engine(engine: LocalEngine) -> None:
    """Guards a disconnecting client: its request must not keep the worker busy."""
    stream = engine.generate(_request(engine, LONG_PROMPT, max_tokens=200))
    first = await anext(stream)
    assert isinstance(first, TokenEvent)
    await stream.aclose()
    await eventually(lambda: engine.num_running == 0, within=5)

    _, finish = await _collect(engine, _request(engine, PROMPTS[0], max_tokens=3))
    assert finish.reason == FinishReason.LENGTH


async def test_cancelling_the_consumer_task_frees_the_engine(engine: LocalEngine) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in engine.generate(_request(engine, LONG_PROMPT, max_tokens=200)):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: engine.num_running == 0, within=5)


async def test_event_loop_stays_responsive(engine: LocalEngine) -> None:
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    start = time.monotonic()
    await _collect(engine, _request(engine, LONG_PROMPT, max_tokens=16))
    elapsed = time.monotonic() - start
    done.set()
    await task

    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= elapsed / 0.05
    assert max(gaps) < 0.5


async def test_expired_deadline_cancels_without_generating(engine: LocalEngine) -> None:
    request = _request(engine, PROMPTS[0], max_tokens=50)
    request.deadline = time.monotonic() - 1
    tokens, finish = await _collect(engine, request)
    assert (tokens, finish.reason, finish.completion_tokens) == ([], FinishReason.CANCELLED, 0)


async def test_forward_error_ends_only_that_request(engine: LocalEngine) -> None:
    vocab = engine.loaded.model.config.vocab_size
    bad = GenerationRequest(request_id=uuid.uuid4().hex, prompt_token_ids=[1, vocab + 100])
    tokens, finish = await _collect(engine, bad)
    assert tokens == []
    assert finish.reason == FinishReason.ERROR
    assert finish.error

    await engine.check_health()
    _, ok = await _collect(engine, _request(engine, PROMPTS[0], max_tokens=2))
    assert ok.reason == FinishReason.LENGTH


async def test_too_long_prompt_is_rejected(engine: LocalEngine, loaded_fp32: LoadedModel) -> None:
    too_long = GenerationRequest(
        request_id=uuid.uuid4().hex,
        prompt_token_ids=[1] * engine.context_limit,
        sampling=SamplingParams(max_tokens=1),
    )
    with pytest.raises(InvalidRequestError):
        await anext(engine.generate(too_long))

    limited = LocalEngine(lambda: loaded_fp32, max_context_tokens=64)
    await limited.start()
    try:
        assert limited.context_limit == 64
        request = GenerationRequest(uuid.uuid4().hex, [1] * 60, SamplingParams(max_tokens=10))
        with pytest.raises(InvalidRequestError):
            await anext(limited.generate(request))
    finally:
        await limited.stop()


async def test_full_queue_overloads_and_waiting_requests_can_be_aborted(
    loaded_fp32: LoadedModel,
) -> None:
    busy = LocalEngine(lambda: loaded_fp32, max_waiting=1)
    await busy.start()
    try:
        running = busy.generate(_request(busy, LONG_PROMPT, max_tokens=200))
        assert isinstance(await anext(running), TokenEvent)
        waiting = _request(busy, PROMPTS[0], max_tokens=3)
        waiting_task = asyncio.create_task(_collect(busy, waiting))
        await eventually(lambda: busy.num_waiting == 1, within=10.0)

        with pytest.raises(EngineOverloadedError):
            await anext(busy.generate(_request(busy, PROMPTS[1], max_tokens=3)))

        await busy.abort(waiting.request_id)
        tokens, finish = await asyncio.wait_for(waiting_task, 2)
        assert (tokens, finish.reason, finish.completion_tokens) == ([], FinishReason.CANCELLED, 0)
        assert busy.num_running == 1
        await running.aclose()
    finally:
        await busy.stop()


async def test_health_follows_the_lifecycle(loaded_fp32: LoadedModel) -> None:
    local = LocalEngine(lambda: loaded_fp32)
    with pytest.raises(EngineUnavailableError):
        await local.check_health()
    await local.start()
    await local.start()  # idempotent
    await local.check_health()
    await local.stop()
    with pytest.raises(EngineUnavailableError):
        await local.check_health()
    with pytest.raises(EngineUnavailableError):
        await anext(local.generate(_request(local, PROMPTS[0], max_tokens=2)))


async def test_stop_cancels_the_running_request(loaded_fp32: LoadedModel) -> None:
    local = LocalEngine(lambda: loaded_fp32)
    await local.start()
    stream = local.generate(_request(local, LONG_PROMPT, max_tokens=200))
    await anext(stream)
    await local.stop()
    events = [event async for event in stream]
    assert isinstance(events[-1], FinishEvent)
    assert events[-1].reason == FinishReason.CANCELLED


async def test_bf16_engine_smoke(model_cache_dir: Path) -> None:
    local = LocalEngine(cache_dir=model_cache_dir, dtype="bfloat16")
    await local.start()
    try:
        assert local.loaded.dtype == torch.bfloat16
        tokens, finish = await _collect(local, _request(local, PROMPTS[0], max_tokens=6))
        assert finish.reason in (FinishReason.LENGTH, FinishReason.STOP)
        assert tokens
    finally:
        await local.stop()
