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
from app.core.errors import ContextLengthError
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


def _pipeline(
    services: State, on_usage: UsageHook | None = None, config: PipelineConfig | None = None
) -> TurnPipeline:
    assert services.gateway is not None
    return TurnPipeline(
        services.conversations,
        services.retrieval,
        services.gateway,
        config or PipelineConfig(),
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


async def test_instructions_over_their_budget_are_refused_before_anything_is_stored(
    services: State,
) -> None:
    """Guards issue 16's bound: a caller's system prompt counts against a token budget
    (a 400 ``context_length_exceeded`` on ``messages``), not an unbounded prompt."""
    tenant = (await services.tenants.ensure("openai-instructions")).id
    pipeline = _pipeline(services, config=PipelineConfig(instructions_token_budget=50))
    options = TurnOptions(max_tokens=2, retrieval_k=0)
    long = "Always answer in the voice of a pirate captain. " * 20
    with pytest.raises(ContextLengthError) as refused:
        await anext(pipeline.run(TurnRequest(tenant, None, "Hi", options, instructions=long)))
    assert refused.value.code == "context_length_exceeded"
    assert refused.value.param == "messages"
    assert (await services.conversations.list(tenant)).items == []
    # Within the budget the same instructions are taken.
    fits = await _answer(
        pipeline, TurnRequest(tenant, None, "Hi", options, instructions="Be a pirate.")
    )
    assert fits.message.status == "complete"


async def test_a_long_history_from_the_request_keeps_its_newest_turns(services: State) -> None:
    """Guards issue 16's bound: a caller's history is trimmed oldest first to the
    history budget, as a stored conversation's is; a turn without sources lends the
    history the sources' budget."""
    tenant = (await services.tenants.ensure("openai-long-history")).id
    budget = 60
    config = PipelineConfig(history_token_budget=budget, context_token_budget=0)
    pipeline = _pipeline(services, config=config)
    options = TurnOptions(max_tokens=2, retrieval_k=0)
    history = tuple(
        ChatMessage(role, f"Turn {i}: the owls of the northern forest hoot at night.")
        for i in range(40)
        for role in ("user", "assistant")
    )
    bare = await _answer(pipeline, TurnRequest(tenant, None, "And then?", options))
    long = await _answer(pipeline, TurnRequest(tenant, None, "And then?", options, history=history))
    assert services.engine is not None
    whole = sum(services.engine.count_tokens(m.content) for m in history)
    grown = long.message.usage["prompt_tokens"] - bare.message.usage["prompt_tokens"]
    # The newest turns fill the budget (template tokens aside); the other 70-odd are left out.
    assert 0 < grown <= budget * 2 < whole
    lent = PipelineConfig(history_token_budget=budget, context_token_budget=240)
    roomier = await _answer(
        _pipeline(services, config=lent),
        TurnRequest(tenant, None, "And then?", options, history=history),
    )
    grown_more = roomier.message.usage["prompt_tokens"] - bare.message.usage["prompt_tokens"]
    assert grown * 3 < grown_more <= (budget + 240) * 2 < whole
