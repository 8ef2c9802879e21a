"""The pipeline features the OpenAI API relies on: a history and instructions given by
the request, and the usage hook that rate limits plug into."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app.chat.events import TurnFinished
from app.chat.pipeline import TurnPipeline, UsageHook
from app.chat.turn import PipelineConfig, TurnOptions, TurnRequest
from app.core.settings import Settings
from app.server.lifespan import open_state
from inference import ChatMessage
from kernel.migrations import upgrade_async

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar.datastructures import State

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
async def services(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[State]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("openai-turns"))
    settings.generation.cache_dir = REPO / ".cache" / "models"
    settings.safety.enabled = False
    await upgrade_async(settings.database_url)
    async with AsyncExitStack() as stack:
        yield await open_state(settings, stack)


def _pipeline(services: State, on_usage: UsageHook | None = None) -> TurnPipeline:
    assert services.gateway is not None
    return TurnPipeline(
        services.conversations,
        services.retrieval,
        services.gateway,
        PipelineConfig(),
        on_usage=on_usage,
    )


async def _answer(pipeline: TurnPipeline, request: TurnRequest) -> TurnFinished:
    events = [e async for e in pipeline.run(request)]
    finished = events[-1]
    assert isinstance(finished, TurnFinished)
    return finished


async def test_a_history_and_instructions_from_the_request_reach_the_prompt(
    services: State,
) -> None:
    tenant = (await services.tenants.ensure("openai-history")).id
    pipeline = _pipeline(services)
    options = TurnOptions(max_tokens=2, retrieval_k=0)
    bare = await _answer(pipeline, TurnRequest(tenant, None, "And then?", options))
    history = (ChatMessage("user", "Tell me about owls."), ChatMessage("assistant", "Owls hoot."))
    rich = await _answer(
        pipeline,
        TurnRequest(
            tenant, None, "And then?", options, history=history, instructions="Be a pirate."
        ),
    )
    grown = rich.message.usage["prompt_tokens"] - bare.message.usage["prompt_tokens"]
    assert services.engine is not None
    assert grown >= services.engine.count_tokens("Tell me about owls. Owls hoot. Be a pirate.")
    # Only the turn itself is stored: the client's history is not copied in.
    stored = await services.conversations.messages(tenant, rich.message.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[0].content == "And then?"


async def test_the_usage_hook_hears_every_turn_and_cannot_fail_one(services: State) -> None:
    tenant = (await services.tenants.ensure("openai-usage")).id
    heard: list[tuple[str, str | None, int]] = []

    async def record(tenant_id: str, subject: str | None, completion_tokens: int) -> None:
        heard.append((tenant_id, subject, completion_tokens))

    async def broken(tenant_id: str, subject: str | None, completion_tokens: int) -> None:
        raise RuntimeError("the limiter is down")

    options = TurnOptions(max_tokens=3, retrieval_k=0)
    request = TurnRequest(tenant, None, "Hello there", options, subject="key:k1")
    finished = await _answer(_pipeline(services, record), request)
    assert heard == [(tenant, "key:k1", finished.message.usage["completion_tokens"])]
    assert 0 < heard[0][2] <= 3
    survived = await _answer(_pipeline(services, broken), TurnRequest(tenant, None, "Hi", options))
    assert survived.message.status == "complete"
