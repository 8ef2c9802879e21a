"""RemoteEngine against real ``ragserve inference`` processes: streaming, cancel, failures."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

import httpx
import pytest

from inference import (
    ChatMessage,
    EngineOverloadedError,
    EngineUnavailableError,
    FinishEvent,
    FinishReason,
    GenerationRequest,
    InvalidRequestError,
    Priority,
    RemoteEngine,
    SamplingParams,
    TokenEvent,
)
from tests.integration.inference.helpers import eventually
from tests.support.inference_node import InferenceNode, free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

pytestmark = pytest.mark.model

RUNNING = "ragserve:num_requests_running"
# NOTE: how long the node may take to let go of a stopped request. A wait, not a
# measure: on a machine busy with other work one engine step can take seconds.
SETTLE = 10.0
QUESTION = (ChatMessage("user", "What is the capital of France?"),)
LONG = (ChatMessage("user", "Count from 1 to 1000, separated by commas."),)
"""A prompt the model answers at length: hundreds of tokens, seconds of work."""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceNode]:
    node = InferenceNode(tmp_path_factory.mktemp("inference-node"))
    node.start()
    yield node
    node.stop()


@pytest.fixture
async def remote(node: InferenceNode) -> AsyncIterator[RemoteEngine]:
    engine = RemoteEngine(node.url + "/v1")
    await engine.start()
    yield engine
    await engine.stop()


def _request(
    messages: tuple[ChatMessage, ...], max_tokens: int = 24, deadline: float | None = None
) -> GenerationRequest:
    return GenerationRequest(
        uuid.uuid4().hex,
        sampling=SamplingParams(max_tokens=max_tokens),
        deadline=deadline,
        messages=messages,
    )


async def _collect(
    engine: RemoteEngine, request: GenerationRequest
) -> tuple[list[TokenEvent], FinishEvent]:
    tokens: list[TokenEvent] = []
    async for event in engine.generate(request):
        if isinstance(event, TokenEvent):
            tokens.append(event)
        else:
            return tokens, event
    raise AssertionError("the stream ended without a FinishEvent")


async def test_streams_the_greedy_answer_the_node_gives_unstreamed(
    node: InferenceNode, remote: RemoteEngine
) -> None:
    tokens, finish = await _collect(remote, _request(QUESTION))
    assert [t.index for t in tokens] == list(range(len(tokens)))
    async with httpx.AsyncClient(base_url=node.url, timeout=60) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={
                "model": remote.model_name,
                "messages": [{"role": "user", "content": QUESTION[0].content}],
                "max_tokens": 24,
                "temperature": 0,
            },
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert "".join(t.text for t in tokens) == answer["choices"][0]["message"]["content"]
    assert finish.reason == answer["choices"][0]["finish_reason"]
    assert finish.prompt_tokens == answer["usage"]["prompt_tokens"]
    assert finish.completion_tokens == answer["usage"]["completion_tokens"]
    assert remote.model_name == "smollm2-135m-instruct"


async def test_health_needs_the_configured_model(node: InferenceNode, remote: RemoteEngine) -> None:
    await remote.check_health()
    other = RemoteEngine(node.url, model="no-such-model")
    await other.start()
    try:
        with pytest.raises(EngineUnavailableError, match="does not serve"):
            await other.check_health()
    finally:
        await other.stop()


async def test_closing_the_stream_frees_the_node_slot_at_once(
    node: InferenceNode, remote: RemoteEngine
) -> None:
    """Guards the API node's cancel path: the inference node stops generating too."""
    stream = remote.generate(_request(LONG, max_tokens=600))
    for _ in range(3):
        assert isinstance(await anext(stream), TokenEvent)
    assert node.metric(RUNNING) == 1
    closed_at = time.monotonic()
    await stream.aclose()
    await eventually(lambda: node.metric(RUNNING) == 0, within=SETTLE)
    assert time.monotonic() - closed_at < 2.0


async def test_a_batch_request_runs_in_the_node_batch_class(node: InferenceNode) -> None:
    """Guards propagation: a ragserve node is recognised by its model list (``owned_by``)
    and hears ``priority: batch``."""
    engine = RemoteEngine(node.url)
    await engine.start()
    try:
        request = _request(LONG, max_tokens=600)
        stream = engine.generate(replace(request, priority=Priority.BATCH))
        for _ in range(3):
            assert isinstance(await anext(stream), TokenEvent)
        assert node.metric("ragserve:num_batch_requests_running") == 1
        await stream.aclose()
        await eventually(lambda: node.metric(RUNNING) == 0, within=SETTLE)
    finally:
        await engine.stop()


async def test_abort_ends_the_stream_cancelled_and_frees_the_slot(
    node: InferenceNode, remote: RemoteEngine
) -> None:
    request = _request(LONG, max_tokens=600)
    events = []
    async for event in remote.generate(request):
        events.append(event)
        if len(events) == 2:
            await remote.abort(request.request_id)
    finish = events[-1]
    assert isinstance(finish, FinishEvent)
    assert finish.reason is FinishReason.CANCELLED
    assert finish.completion_tokens == len(events) - 1
    await eventually(lambda: node.metric(RUNNING) == 0, within=SETTLE)


async def test_a_passed_deadline_cancels_the_stream(
    node: InferenceNode, remote: RemoteEngine
) -> None:
    # NOTE: 2 s leaves a loaded machine room for the prompt's first token; the
    # 600 tokens would take far longer.
    request = _request(LONG, max_tokens=600, deadline=time.monotonic() + 2.0)
    tokens, finish = await _collect(remote, request)
    assert finish.reason is FinishReason.CANCELLED
    assert tokens
    await eventually(lambda: node.metric(RUNNING) == 0, within=SETTLE)


async def test_a_request_the_node_refuses_is_invalid_with_its_message(
    remote: RemoteEngine,
) -> None:
    with pytest.raises(InvalidRequestError, match="max_tokens is 5000; the limit is"):
        await anext(remote.generate(_request(QUESTION, max_tokens=5000)))


async def test_a_model_the_node_does_not_serve_makes_the_endpoint_unavailable(
    node: InferenceNode,
) -> None:
    engine = RemoteEngine(node.url, model="no-such-model")
    await engine.start()
    try:
        with pytest.raises(EngineUnavailableError, match="404"):
            await anext(engine.generate(_request(QUESTION)))
    finally:
        await engine.stop()


@pytest.mark.parametrize("model", [None, "smollm2-135m-instruct"])
async def test_connection_refused_is_unavailable_before_any_token(model: str | None) -> None:
    engine = RemoteEngine(f"http://127.0.0.1:{free_port()}", model=model)
    await engine.start()
    try:
        with pytest.raises(EngineUnavailableError):
            await anext(engine.generate(_request(QUESTION)))
        with pytest.raises(EngineUnavailableError):
            await engine.check_health()
    finally:
        await engine.stop()


async def test_a_full_node_queue_is_overloaded_with_its_retry_after(
    tmp_path: Path,
) -> None:
    """Guards the router's retry: a 429 from the node is EngineOverloadedError, not a failure."""
    node = InferenceNode(
        tmp_path,
        {"RAGSERVE_GENERATION_MAX_RUNNING": "1", "RAGSERVE_GENERATION_MAX_WAITING": "1"},
    )
    node.start()
    engine = RemoteEngine(node.url, model="smollm2-135m-instruct")
    await engine.start()
    try:
        results = await asyncio.gather(
            *(_collect(engine, _request(LONG, max_tokens=16)) for _ in range(6)),
            return_exceptions=True,
        )
    finally:
        await engine.stop()
        node.stop()
    refused = [r for r in results if isinstance(r, EngineOverloadedError)]
    served = [r for r in results if isinstance(r, tuple)]
    assert refused, results
    assert served, results
    assert len(refused) + len(served) == len(results), results
    assert all(r.retry_after >= 1 and r.retry_after == int(r.retry_after) for r in refused)
    assert all(finish.reason is FinishReason.LENGTH for _, finish in served)


async def test_a_node_killed_mid_stream_ends_the_stream_with_an_error(tmp_path: Path) -> None:
    """Guards the contract after the first token: no exception, a FinishEvent(ERROR)."""
    node = InferenceNode(tmp_path)
    node.start()
    engine = RemoteEngine(node.url)
    await engine.start()
    try:
        events = []
        async for event in engine.generate(_request(LONG, max_tokens=600)):
            events.append(event)
            if len(events) == 1:
                node.kill()
    finally:
        await engine.stop()
        node.stop()
    tokens, finish = events[:-1], events[-1]
    assert tokens
    assert all(isinstance(t, TokenEvent) for t in tokens)
    assert isinstance(finish, FinishEvent)
    assert finish.reason is FinishReason.ERROR
    assert finish.completion_tokens == len(tokens)
    assert finish.error
    assert node.url.removeprefix("http://") in finish.error
