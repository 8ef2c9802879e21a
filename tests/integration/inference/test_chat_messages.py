"""Every local engine takes a chat as messages, rendering it with its own template."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from prometheus_client import CollectorRegistry

from inference import (
    BatchingEngine,
    ChatMessage,
    FinishEvent,
    GenerationRequest,
    InvalidRequestError,
    LocalEngine,
    SamplingParams,
    TokenEvent,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from inference import Engine, LoadedModel

pytestmark = pytest.mark.model

CHAT = (
    ChatMessage("system", "Answer in one short sentence."),
    ChatMessage("user", "What is the capital of France?"),
)


@pytest.fixture(scope="module", params=["sequential", "batching"])
async def local_engine(
    request: pytest.FixtureRequest, loaded_fp32: LoadedModel
) -> AsyncIterator[Engine]:
    """Each in-process engine over the one loaded model."""
    engine: Engine = (
        LocalEngine(lambda: loaded_fp32)
        if request.param == "sequential"
        else BatchingEngine(lambda: loaded_fp32, max_seq_len=1024, registry=CollectorRegistry())
    )
    await engine.start()
    yield engine
    await engine.stop()


async def _run(engine: Engine, request: GenerationRequest) -> tuple[str, FinishEvent]:
    text, finish = "", None
    async for event in engine.generate(request):
        if isinstance(event, TokenEvent):
            text += event.text
        else:
            finish = event
    assert finish is not None
    return text, finish


async def test_messages_without_token_ids_answer_like_the_rendered_prompt(
    local_engine: Engine,
) -> None:
    """Guards the pipeline's switch to messages: same answer, prompt counted as rendered."""
    sampling = SamplingParams(max_tokens=12)
    rendered = local_engine.render_chat(CHAT)
    by_ids = await _run(local_engine, GenerationRequest(uuid.uuid4().hex, rendered, sampling))
    by_messages = await _run(
        local_engine, GenerationRequest(uuid.uuid4().hex, sampling=sampling, messages=CHAT)
    )
    assert by_messages == by_ids
    assert by_messages[1].prompt_tokens == len(rendered)
    assert by_messages[0]


async def test_token_ids_win_over_messages(local_engine: Engine) -> None:
    """Callers that pass token ids keep their prompt, whatever messages ride along."""
    rendered = local_engine.render_chat(CHAT)
    request = GenerationRequest(
        uuid.uuid4().hex,
        rendered,
        SamplingParams(max_tokens=4),
        messages=(ChatMessage("user", "Something else entirely."),),
    )
    _, finish = await _run(local_engine, request)
    assert finish.prompt_tokens == len(rendered)


async def test_a_request_without_prompt_or_messages_is_refused(local_engine: Engine) -> None:
    with pytest.raises(InvalidRequestError, match="neither prompt token ids nor messages"):
        await anext(local_engine.generate(GenerationRequest(uuid.uuid4().hex)))
