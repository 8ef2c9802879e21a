"""One chat turn, from the stored conversation to the stored answer.

The stages and where each lives are listed in ``docs/architecture.md``. The pipeline
is transport-agnostic: REST, SSE and WebSocket handlers iterate the events of
``TurnPipeline.run`` and only translate them to their wire format.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from app.chat.citations import cite
from app.chat.context import ContextBuilder, previous_version, shown_before, stored_history
from app.chat.events import (
    GENERATION_FAILED,
    GENERATION_FAILED_CODE,
    SourcesFound,
    TurnEvent,
    TurnFinished,
    TurnStarted,
)
from app.chat.outcome import Stopwatch, TurnOutcome
from app.chat.response_cache.turns import cached_sources
from app.chat.sampling import turn_sampling, with_sources, within_version
from app.chat.streams import closing, replay
from app.core.errors import UnavailableError, classify
from app.core.metrics import observe_turn
from app.routing.shadow import PrimaryResult
from conversation import INTERRUPTED_REASON as INTERRUPTED
from inference import FinishReason, GenerationRequest, SamplingParams, TokenEvent
from safety import FINISH_REASON as CONTENT_FILTER
from safety import refusal_pieces

if TYPE_CHECKING:
    from app.chat.response_cache import TurnCache
    from app.chat.safety_gate import SafetyGate
    from app.chat.turn import PipelineConfig, TurnRequest
    from app.labeling.intake import AnswerReview
    from app.routing.gateway import ModelGateway, Route
    from conversation import AnswerStreams, ConversationService, MessageInfo, MessageStatus
    from inference import ChatMessage
    from retrieval import RetrievalService

__all__ = ["TurnPipeline", "UsageHook"]

log = structlog.get_logger(__name__)
_T = TypeVar("_T")

UsageHook = Callable[[str, str | None, int], Awaitable[None]]
"""Called once per finished turn with ``(tenant_id, subject, completion_tokens)``."""

_HISTORY_MESSAGES = 20
_STATUS_BY_FINISH: dict[str, MessageStatus] = {
    FinishReason.STOP: "complete",
    FinishReason.LENGTH: "complete",
    FinishReason.CANCELLED: "cancelled",
    FinishReason.ERROR: "failed",
    CONTENT_FILTER: "refused",
    INTERRUPTED: "interrupted",
}
_DRAIN_RETRY_AFTER_S = 5.0


class TurnPipeline:
    """Runs chat turns over the conversation, retrieval, inference and safety services."""

    def __init__(
        self,
        conversations: ConversationService,
        retrieval: RetrievalService,
        models: ModelGateway,
        config: PipelineConfig,
        safety: SafetyGate | None = None,
        on_usage: UsageHook | None = None,
        answers: AnswerStreams | None = None,
        cache: TurnCache | None = None,
        review: AnswerReview | None = None,
    ) -> None:
        """Compose the pipeline.

        Args:
            conversations: Stores conversations and messages.
            retrieval: Searches the tenant's chunks.
            models: Chooses the model version and endpoint that generate the answer.
            config: Limits and defaults.
            safety: The input, retrieval and output filters; ``None`` turns them off.
            on_usage: Told the generated tokens of every finished turn (rate limits
                count them); its errors are logged, never fail the turn.
            answers: Stores each answer as ``streaming`` when its turn starts (so a
                crash leaves an ``interrupted`` row); ``None`` stores it at the end only.
            cache: The response cache; ``None`` generates every answer.
            review: Queues stored answers for labelers; ``None`` queues none.
        """
        self._conversations = conversations
        self._retrieval = retrieval
        self._models = models
        self._context = ContextBuilder(retrieval, models, config, safety)
        self._config = config
        self._safety = safety
        self._on_usage = on_usage
        self._cancelled: set[str] = set()
        self._answers = answers
        self._running: dict[str, TurnOutcome] = {}
        self._draining = False
        self._cache = cache
        self._review = review

    def progress(self) -> dict[str, str]:
        """The text produced so far by each turn running on this process."""
        return {message_id: "".join(out.parts) for message_id, out in self._running.items()}

    def drain(self) -> None:
        """Refuse new turns (503, ``Retry-After``); running ones go on."""
        self._draining = True

    async def interrupt_all(self) -> None:
        """End every running turn now, stored with finish reason ``interrupted``."""
        for message_id, out in list(self._running.items()):
            out.end(INTERRUPTED)
            await self.cancel(message_id)

    async def cancel(self, message_id: str) -> None:
        """Stop a turn at whatever stage it is; it ends with ``finish_reason="cancelled"``."""
        self._cancelled.add(message_id)
        await self._models.abort(message_id)

    async def run(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """Run one turn, yielding its events; the answer is stored however it ends.

        Raises the domain error (not found, overloaded, ...) when the turn cannot
        run; once the user message is stored, the answer is stored too (status
        ``failed`` before such an error propagates, ``cancelled`` when the consumer
        stops iterating or calls ``cancel``, ``refused`` with finish reason
        ``content_filter`` when a safety filter refuses the question or the answer).
        """
        if self._draining:
            raise UnavailableError(
                "This server is shutting down; retry the turn.", retry_after=_DRAIN_RETRY_AFTER_S
            )
        sampling = turn_sampling(request, self._config)
        model = self._models.require(request.model, request.tenant_id)
        watch = Stopwatch()
        tenant, message_id = request.tenant_id, request.message_id
        stored: list[MessageInfo] = []
        if request.conversation_id is not None:
            conversation = await self._conversations.get(tenant, request.conversation_id)
            if request.history is None:
                stored = await self._conversations.recent_messages(
                    tenant, conversation.id, _HISTORY_MESSAGES
                )
        route = self._models.route(
            model,
            tenant_id=tenant,
            # NOTE: a new conversation has no id yet; its first message id is as
            # random, and its later turns keep the version that answered this one.
            conversation_key=request.conversation_id or message_id,
            previous_version=previous_version(stored, model.name),
        )
        sampling = within_version(route.version, request.options, sampling)
        await self._context.check_instructions(request, route)
        # Refuse an overloaded turn before anything is stored (429, Retry-After).
        self._models.check_capacity(route, request.priority)
        if request.conversation_id is None:
            conversation = await self._conversations.create(tenant, owner=request.subject)
        earlier = list(request.history) if request.history is not None else stored_history(stored)
        watch.lap("load_conversation")
        user_message = await self._conversations.add_user_message(
            tenant, conversation.id, request.content
        )
        out = TurnOutcome()
        if self._answers is not None:
            await self._answers.start(
                tenant,
                conversation.id,
                message_id,
                model=route.model.name,
                model_version=route.version.version,
            )
        self._running[message_id] = out
        watch.lap("persist_user_message")
        shadows: list[asyncio.Future[PrimaryResult]] = []
        try:
            yield TurnStarted(conversation.id, message_id, user_message.id)
            refusal = (
                await self._safety.refusal(tenant, request.content, out.verdicts)
                if self._safety
                else None
            )
            watch.lap("input_safety")
            messages: list[ChatMessage] = []
            if refusal is None:
                out.sources = await self._context.sources(request, route, out, shown_before(stored))
                sampling = with_sources(sampling, out.sources, self._config)
                watch.lap("retrieve")
                messages, out.prompt_tokens = await self._context.messages(
                    request, route, out.sources, earlier
                )
                watch.lap("build_prompt")
                await self._lookup_cache(request, route, sampling, messages, out)
            yield SourcesFound([*out.sources, *out.withheld])
            if refusal is not None:
                for index, piece in enumerate(refusal_pieces(refusal)):
                    out.parts.append(piece)
                    yield TokenEvent(index, piece)
                out.end(CONTENT_FILTER)
            elif message_id not in self._cancelled:
                generation = GenerationRequest(
                    message_id,
                    [],
                    sampling,
                    tenant,
                    messages=tuple(messages),
                    priority=request.priority,
                )
                if out.cache is None or out.cache.hit is None:
                    shadows = self._models.start_shadows(
                        route, generation, conversation_id=conversation.id, sources=out.sources
                    )
                async for event in self._generate(route, generation, out, watch, conversation.id):
                    yield event
        except (GeneratorExit, asyncio.CancelledError):
            # The client went away (SSE disconnect, task cancelled): a cancel.
            out.end(FinishReason.CANCELLED)
            raise
        except Exception as exc:
            log.warning("turn_failed", message_id=message_id, error=repr(exc))
            # The stored (and shown) error is the client-safe one; the detail is logged.
            error = classify(exc)
            out.end(FinishReason.ERROR, error.message, error.code)
            raise
        finally:
            out.end(FinishReason.CANCELLED)
            self._cancelled.discard(message_id)
            watch.mark("total", watch.start)
            # NOTE: shielded so that a client disconnect (which cancels or closes
            # this generator) still leaves the answer stored as cancelled.
            try:
                answer = await asyncio.shield(
                    self._finish(request, route, conversation.id, out, watch, shadows)
                )
            finally:
                self._running.pop(message_id, None)
        yield TurnFinished(answer)

    async def _lookup_cache(
        self,
        request: TurnRequest,
        route: Route,
        sampling: SamplingParams,
        messages: list[ChatMessage],
        out: TurnOutcome,
    ) -> None:
        """Look the turn up in the response cache; a hit answers with its own sources."""
        if self._cache is None:
            return
        out.cache = await self._cache.lookup(request, route, sampling, messages, out.sources)
        if out.cache is not None and out.cache.hit is not None:
            out.sources, out.prompt_tokens = cached_sources(out.cache.hit), 0

    async def _generate(
        self,
        route: Route,
        generation: GenerationRequest,
        out: TurnOutcome,
        watch: Stopwatch,
        conversation_id: str,
    ) -> AsyncIterator[TokenEvent]:
        """The engine's stream (or a cached answer's pieces) through the output filters,
        renumbered from 0."""
        start = time.perf_counter()
        guard = self._safety.output_guard(generation.tenant_id) if self._safety else None

        async def texts(events: AsyncIterator[Any]) -> AsyncIterator[str]:
            async for event in events:
                if isinstance(event, TokenEvent):
                    yield event.text
                else:
                    out.engine_finish = event

        hit = out.cache.hit if out.cache is not None else None
        async with AsyncExitStack() as stack:
            # Closing these (a refusal, a disconnect) aborts the engine request.
            if hit is None:
                events = await stack.enter_async_context(
                    closing(self._models.generate(route, generation, affinity_key=conversation_id))
                )
                pieces = await stack.enter_async_context(closing(texts(events)))
            else:
                pieces = await stack.enter_async_context(closing(replay(hit.answer.pieces)))
            if guard is not None:
                pieces = await stack.enter_async_context(closing(guard.stream(pieces)))
            async for piece in pieces:
                if not out.parts:
                    watch.mark("first_token", start)
                out.parts.append(piece)
                yield TokenEvent(len(out.parts) - 1, piece)
        watch.mark("generate", start)
        if guard is not None:
            out.verdicts.extend(guard.result.verdicts)
            if guard.refused is not None:
                out.end(CONTENT_FILTER)
        if hit is not None:
            out.end(hit.answer.finish_reason)
        finish = out.engine_finish
        if finish is not None:
            if finish.reason == FinishReason.ERROR:
                # NOTE: the engine's text is for operators (an exception, an upstream
                # server's body); the answer stores and shows a safe message only.
                log.warning("generation_failed", message_id=generation.request_id,
                            error=finish.error)  # fmt: skip
                out.end(finish.reason, GENERATION_FAILED, GENERATION_FAILED_CODE)
            else:
                out.end(finish.reason)
            if finish.prompt_tokens:
                out.prompt_tokens = finish.prompt_tokens

    async def _finish(
        self,
        request: TurnRequest,
        route: Route,
        conversation_id: str,
        out: TurnOutcome,
        watch: Stopwatch,
        shadows: list[asyncio.Future[PrimaryResult]],
    ) -> MessageInfo:
        """Store the answer, its citations, usage and cost, then its safety verdicts; queue
        it for review; export metrics; hand the answer to the shadow copies."""
        content = "".join(out.parts)
        reason = out.finish_reason or FinishReason.CANCELLED
        timings = watch.timings
        for future in shadows:
            if not future.done():
                future.set_result(PrimaryResult(content, timings.get("first_token"),
                                                timings.get("generate")))  # fmt: skip
        compute_s = timings.get("generate", 0.0) / 1000
        cost = await self._models.record_usage(
            route,
            message_id=request.message_id,
            tenant_id=request.tenant_id,
            prompt_tokens=out.prompt_tokens,
            completion_tokens=out.completion_tokens,
            compute_seconds=compute_s,
        )
        cited = await cite(content, out.sources, self._retrieval.embed)
        usage: dict[str, Any] = {
            "prompt_tokens": out.prompt_tokens,
            "completion_tokens": out.completion_tokens,
            "total_tokens": out.prompt_tokens + out.completion_tokens,
            "cost": round(cost, 8),
            "citations_dropped": cited.dropped,
            **(out.cache.usage() if out.cache is not None else {}),
        }
        store = (
            self._conversations.record_assistant_message
            if self._answers is None
            else self._answers.finish
        )
        stored = await store(
            tenant_id=request.tenant_id,
            conversation_id=conversation_id,
            message_id=request.message_id,
            content=content,
            status=_STATUS_BY_FINISH[reason],
            finish_reason=str(reason),
            model=route.model.name,
            model_version=route.version.version,
            sources=[s.to_dict() for s in [*out.sources, *out.withheld]],
            citations=cited.citations,
            usage=usage,
            timings=watch.timings,
            error=out.error,
            error_code=out.error_code,
        )
        if self._safety is not None and out.verdicts:
            await self._safety.record(request.tenant_id, request.message_id, out.verdicts)
        if self._review is not None:
            await self._review.answer_stored(stored, out.verdicts, request.options.collection)
        if self._cache is not None and stored.status == "complete":
            generation_s = watch.timings.get("generate", 0.0) / 1000
            await self._cache.remember(request, out, generation_s)
        observe_turn(stored.finish_reason, stored.timings, route.model.name, route.version.version)
        await self._report_usage(request, out.completion_tokens)
        if stored.status == "complete" and out.sources:
            await self._context.prefetch_next(request, content)
        return stored

    async def _report_usage(self, request: TurnRequest, completion_tokens: int) -> None:
        if self._on_usage is None:
            return
        try:
            await self._on_usage(request.tenant_id, request.subject, completion_tokens)
        except Exception as exc:
            # NOTE: usage accounting (rate limits) must never cost the caller an answer.
            log.warning("usage_hook_failed", message_id=request.message_id, error=repr(exc))
