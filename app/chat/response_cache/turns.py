"""The response cache as a turn uses it: which turns may hit, their keys, the lookup
before generation and the store after it.

A failure of the cache (Redis gone) is a miss, never a failed turn.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import structlog
from prometheus_client import Counter

from app.chat.prompt import Source
from app.chat.response_cache.base import (
    FORMAT,
    SECONDS_SAVED,
    CachedAnswer,
    CacheHit,
    CacheKey,
    CacheProbe,
    ResponseCache,
    normalize_question,
)
from app.chat.response_cache.guard import compatible
from inference import FinishReason

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence

    from app.chat.outcome import TurnOutcome
    from app.chat.turn import TurnRequest
    from app.routing.gateway import Route
    from app.routing.specs import ModelSpec
    from inference import ChatMessage, SamplingParams

log = structlog.get_logger(__name__)

LOOKUPS = Counter(
    "ragserve:response_cache_lookups_total",
    "Response cache lookups by result (exact, semantic, miss, skipped: not cacheable).",
    ["result"],
)
_CACHEABLE_FINISH = frozenset({FinishReason.STOP, FinishReason.LENGTH})


@dataclass(frozen=True, slots=True)
class ResponseCacheConfig:
    semantic: bool = True
    """Also answer a paraphrase from the cache (same scope, similar question)."""
    threshold: float = 0.94
    """Least cosine similarity of two questions for a semantic hit."""
    sampled_tenants: frozenset[str] = frozenset()
    """Tenants whose sampled (temperature > 0, no seed) answers are cached too."""


def cache_key(
    tenant_id: str,
    route: Route,
    sampling: SamplingParams,
    messages: Sequence[ChatMessage],
    sources: Sequence[Source],
    instructions: str | None,
) -> CacheKey:
    """The keys of a turn whose prompt is ``messages`` (system, history, question)."""
    fingerprint = [[s.chunk_id, _digest(f"{s.document_name}\n{s.text}")[:24]] for s in sources]
    scope = _digest(
        json.dumps(
            {
                "format": FORMAT,
                "tenant": tenant_id,
                "model": route.model.name,
                "version": route.version.version,
                "upstream": route.version.upstream_model,
                "sampling": asdict(sampling),
                "instructions": instructions,
                "context": [[m.role, m.content] for m in messages[1:-1]],
                "sources": sorted(fingerprint),
            },
            sort_keys=True,
        )
    )
    exact = _digest(
        json.dumps(
            [scope, normalize_question(messages[-1].content), fingerprint, messages[0].content]
        )
    )
    return CacheKey(
        tenant_id=tenant_id,
        exact=exact,
        scope=scope,
        model=route.model.name,
        version=route.version.version,
        document_ids=frozenset(s.document_id for s in sources),
    )


class TurnCache:
    """The response cache between a turn's prompt and its generation."""

    def __init__(
        self,
        cache: ResponseCache,
        config: ResponseCacheConfig,
        embed_query: Callable[[str], Awaitable[Iterable[float]]] | None = None,
    ) -> None:
        """Args:
        cache: Where answers are kept.
        config: What may hit.
        embed_query: The retrieval's query embedder (the semantic cache compares
            questions with it); ``None`` turns the semantic cache off.
        """
        self._cache = cache
        self._config = config
        self._embed_query = embed_query if config.semantic else None

    @property
    def backend(self) -> ResponseCache:
        return self._cache

    async def lookup(
        self,
        request: TurnRequest,
        route: Route,
        sampling: SamplingParams,
        messages: Sequence[ChatMessage],
        sources: Sequence[Source],
    ) -> CacheProbe | None:
        """The turn's probe (its hit, if any), or ``None`` when the turn is not cacheable."""
        deterministic = sampling.greedy or sampling.seed is not None
        if not deterministic and request.tenant_id not in self._config.sampled_tenants:
            LOOKUPS.labels("skipped").inc()
            return None
        key = cache_key(request.tenant_id, route, sampling, messages, sources, request.instructions)
        probe = CacheProbe(key)
        counters = self._cache.counters
        try:
            answer = await self._cache.get_exact(key)
            if answer is not None:
                probe.hit = CacheHit(answer, "exact", 1.0)
            elif self._embed_query is not None:
                probe.embedding = tuple(float(x) for x in await self._embed_query(request.content))
                probe.hit = await self._cache.get_similar(
                    key,
                    probe.embedding,
                    self._config.threshold,
                    lambda cached: compatible(cached.question, request.content),
                )
        except Exception as exc:
            log.warning("response_cache_lookup_failed", error=repr(exc))
            return probe
        result = "miss" if probe.hit is None else probe.hit.kind
        LOOKUPS.labels(result).inc()
        if probe.hit is None:
            counters.misses += 1
        elif probe.hit.kind == "exact":
            counters.exact_hits += 1
        else:
            counters.semantic_hits += 1
        return probe

    async def remember(self, request: TurnRequest, out: TurnOutcome, generation_s: float) -> None:
        """Cache a finished turn's answer if it was generated, whole and not refused
        (``generation_s``: how long that took); on a hit, count the time it saved."""
        probe = out.cache
        if probe is not None and probe.hit is not None:
            SECONDS_SAVED.inc(max(0.0, probe.hit.answer.generation_s - generation_s))
            return
        if (
            probe is None
            or out.finish_reason not in _CACHEABLE_FINISH
            or out.error is not None
            or not out.parts
        ):
            return
        answer = CachedAnswer(
            pieces=tuple(out.parts),
            finish_reason=str(out.finish_reason),
            sources=tuple(s.to_dict() for s in out.sources),
            question=request.content,
            message_id=request.message_id,
            created_at=time.time(),
            embedding=probe.embedding,
            generation_s=generation_s,
        )
        try:
            await self._cache.put(probe.key, answer)
        except Exception as exc:
            log.warning("response_cache_store_failed", error=repr(exc))

    async def on_models(self, models: dict[str, ModelSpec]) -> None:
        """Drop the answers of every version that no longer answers (a rollout change)."""
        serving: set[tuple[str, str]] = set()
        for model in models.values():
            rollout = model.rollout
            serving.add((model.name, rollout.stable))
            if rollout.canary is not None and rollout.canary_percent > 0:
                serving.add((model.name, rollout.canary))
            serving.update((model.name, version) for version in rollout.tenant_pins.values())
        try:
            await self._cache.retain_versions(serving)
        except Exception as exc:
            log.warning("response_cache_invalidation_failed", error=repr(exc))


def document_invalidator(
    cache: ResponseCache,
) -> Callable[[str, str, str], Awaitable[None]]:
    """The retrieval service's ``on_chunks_changed`` hook: drop the answers generated
    from a document just written or deleted (a failure is logged, never raised)."""

    async def forget(tenant_id: str, collection: str, document_id: str) -> None:
        try:
            await cache.invalidate_document(tenant_id, document_id)
        except Exception as exc:
            log.warning("response_cache_invalidation_failed", error=repr(exc))

    return forget


def cached_sources(hit: CacheHit) -> list[Source]:
    """The sources a cached answer was generated from, as ``Source`` objects."""
    return [Source.from_dict(shown) for shown in hit.answer.sources]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
