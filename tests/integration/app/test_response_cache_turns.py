"""Turns through the response cache, over the real services and model."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client import REGISTRY

from app.chat.events import SourcesFound, TurnFinished, TurnStarted
from app.chat.pipeline import TurnPipeline
from app.chat.response_cache import (
    CachedAnswer,
    CacheKey,
    MemoryResponseCache,
    ResponseCacheConfig,
    TurnCache,
)
from app.chat.turn import PipelineConfig, TurnOptions, TurnRequest
from app.core.settings import Settings
from app.server.lifespan import open_state
from inference import TokenEvent
from kernel.migrations import upgrade_async

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar.datastructures import State

    from conversation import MessageInfo

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[3]
BEES = b"Honey bees dance to tell each other where the flowers are."


@pytest.fixture(scope="module")
async def services(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[State]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("response-cache"))
    settings.generation.cache_dir = REPO / ".cache" / "models"
    settings.generation.dtype = "float32"
    settings.response_cache.enabled = True
    settings.response_cache.threshold = 0.85
    await upgrade_async(settings.database_url)
    async with AsyncExitStack() as stack:
        yield await open_state(settings, stack)


@pytest.fixture
async def tenant(services: State, request: pytest.FixtureRequest) -> str:
    """A tenant of its own per test (the cache is per tenant), with one document."""
    info = await services.tenants.ensure(f"cache-{request.node.name}"[:60])
    await services.retrieval.ingest(info.id, "bees.md", BEES)
    return info.id


async def _ask(
    pipeline: TurnPipeline,
    tenant: str,
    question: str,
    conversation_id: str | None = None,
    **options: object,
) -> tuple[list[object], MessageInfo]:
    opts = TurnOptions(max_tokens=12, **options)  # type: ignore[arg-type]
    events = [e async for e in pipeline.run(TurnRequest(tenant, conversation_id, question, opts))]
    finished = events[-1]
    assert isinstance(finished, TurnFinished)
    return events, finished.message


async def test_the_same_question_is_answered_from_the_cache_as_a_stored_turn(
    services: State, tenant: str
) -> None:
    pipeline = services.pipeline
    _, first = await _ask(pipeline, tenant, "Why do bees dance?")
    assert "cached" not in first.usage
    saved = _seconds_saved()
    assert first.usage["completion_tokens"] > 0
    events, again = await _ask(pipeline, tenant, "  why do bees DANCE ")
    assert isinstance(events[0], TurnStarted)
    assert isinstance(events[1], SourcesFound)
    assert [s.chunk_id for s in events[1].sources] == [s["chunk_id"] for s in first.sources]
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert "".join(t.text for t in tokens) == first.content
    assert [t.index for t in tokens] == list(range(len(tokens)))
    assert again.content == first.content
    assert again.finish_reason == first.finish_reason
    assert again.status == "complete"
    assert again.usage["cached"] is True
    assert again.usage["cache_kind"] == "exact"
    assert again.usage["cache_similarity"] == 1.0
    assert again.usage["cached_from"] == first.id
    assert again.usage["completion_tokens"] == 0
    assert again.citations == first.citations
    stored = await services.conversations.messages(tenant, again.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].usage["cached"] is True
    # The hit saved about what generating the first answer took (less its replay).
    generated = first.timings["generate"] / 1000
    assert 0 < _seconds_saved() - saved <= generated


def _seconds_saved() -> float:
    value = REGISTRY.get_sample_value("ragserve:response_cache_seconds_saved_total")
    return value or 0.0


async def test_a_paraphrase_hits_and_a_different_question_does_not(
    services: State, tenant: str
) -> None:
    pipeline = services.pipeline
    await _ask(pipeline, tenant, "Why do honey bees dance?")
    _, paraphrase = await _ask(pipeline, tenant, "Why is it that honey bees dance?")
    assert paraphrase.usage.get("cache_kind") == "semantic"
    assert 0.85 <= paraphrase.usage["cache_similarity"] < 1.0
    _, other = await _ask(pipeline, tenant, "Where do bees sleep at night?")
    assert "cached" not in other.usage
    # Similar enough, but it negates the question: the guard refuses the hit.
    _, negated = await _ask(pipeline, tenant, "Why do honey bees not dance?")
    assert "cached" not in negated.usage


async def test_a_follow_up_in_another_conversation_does_not_hit(
    services: State, tenant: str
) -> None:
    pipeline = services.pipeline
    _, first = await _ask(pipeline, tenant, "Why do bees dance?")
    _, follow_up = await _ask(pipeline, tenant, "Why?", first.conversation_id)
    assert "cached" not in follow_up.usage
    _, opener = await _ask(pipeline, tenant, "Tell me about bee dances.")
    _, elsewhere = await _ask(pipeline, tenant, "Why?", opener.conversation_id)
    assert "cached" not in elsewhere.usage
    _, same_history = await _ask(pipeline, tenant, "Why do bees dance?")
    assert same_history.usage.get("cache_kind") == "exact"


async def test_sampled_answers_are_not_cached_unless_seeded(services: State, tenant: str) -> None:
    pipeline = services.pipeline
    for _ in range(2):
        _, sampled = await _ask(pipeline, tenant, "Why do bees dance?", temperature=0.9)
        assert "cached" not in sampled.usage
    _, seeded = await _ask(pipeline, tenant, "Why do bees dance?", temperature=0.9, seed=7)
    _, again = await _ask(pipeline, tenant, "Why do bees dance?", temperature=0.9, seed=7)
    assert "cached" not in seeded.usage
    assert again.usage.get("cache_kind") == "exact"
    assert again.content == seeded.content


async def test_changing_or_deleting_a_document_drops_the_answers_that_used_it(
    services: State, tenant: str
) -> None:
    pipeline = services.pipeline
    cache = services.response_cache.backend
    await _ask(pipeline, tenant, "Why do bees dance?")
    before = cache.counters.invalidated
    replaced = await services.retrieval.ingest(tenant, "bees.md", BEES + b" They also hum.")
    assert cache.counters.invalidated > before
    _, fresh = await _ask(pipeline, tenant, "Why do bees dance?")
    assert "cached" not in fresh.usage
    _, cached = await _ask(pipeline, tenant, "Why do bees dance?")
    assert cached.usage.get("cache_kind") == "exact"
    await services.retrieval.delete_document(tenant, replaced.document.id)
    _, gone = await _ask(pipeline, tenant, "Why do bees dance?")
    assert "cached" not in gone.usage
    assert gone.sources == []


class _RecordingCache(MemoryResponseCache):
    def __init__(self) -> None:
        super().__init__()
        self.keys: list[CacheKey] = []

    async def put(self, key: CacheKey, answer: CachedAnswer) -> None:
        self.keys.append(key)
        await super().put(key, answer)


async def test_a_hit_passes_the_output_filters_again(services: State, tenant: str) -> None:
    """A cached answer is judged under the policy in force when it is served: here one
    stored before a PII rule existed comes out redacted."""
    backend = _RecordingCache()
    pipeline = TurnPipeline(
        services.conversations,
        services.retrieval,
        services.gateway,
        PipelineConfig(),
        services.safety,
        cache=TurnCache(backend, ResponseCacheConfig(semantic=False)),
    )
    _, first = await _ask(pipeline, tenant, "Why do bees dance?")
    (key,) = backend.keys
    stored = await backend.get_exact(key)
    assert stored is not None
    leaked = CachedAnswer(
        ("Write to ", "jane.doe@example.com", " about bees."),
        "stop",
        stored.sources,
        stored.question,
        first.id,
        stored.created_at,
    )
    await backend.put(key, leaked)
    _, served = await _ask(pipeline, tenant, "Why do bees dance?")
    assert served.usage.get("cache_kind") == "exact"
    assert "jane.doe@example.com" not in served.content
    assert "[EMAIL]" in served.content


async def test_another_tenant_with_the_same_document_gets_its_own_answer(
    services: State, tenant: str
) -> None:
    await _ask(services.pipeline, tenant, "Why do bees dance?")
    other = await services.tenants.ensure(f"{tenant[:20]}-other")
    await services.retrieval.ingest(other.id, "bees.md", BEES)
    _, theirs = await _ask(services.pipeline, other.id, "Why do bees dance?")
    assert "cached" not in theirs.usage
