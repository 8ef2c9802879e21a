"""One chat turn, from the stored conversation to the stored answer (DESIGN.md §1).

The pipeline is transport-agnostic: REST, SSE and WebSocket handlers iterate the
events of ``TurnPipeline.run`` and only translate them to their wire format.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import structlog

from app.citations import cite
from app.errors import UnprocessableError
from app.metrics import observe_turn
from app.prompt import Source, build_messages, fit_history, fit_sources
from conversation import ConversationService, MessageInfo, MessageStatus
from inference import (
    ChatMessage,
    Engine,
    FinishEvent,
    FinishReason,
    GenerationRequest,
    SamplingParams,
    TokenEvent,
)
from retrieval import RetrievalService

log = structlog.get_logger(__name__)

_HISTORY_MESSAGES = 20
_STATUS_BY_FINISH: dict[FinishReason, MessageStatus] = {
    FinishReason.STOP: "complete",
    FinishReason.LENGTH: "complete",
    FinishReason.CANCELLED: "cancelled",
    FinishReason.ERROR: "failed",
}


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    top_k: int = 4
    score_floor: float = 0.2
    history_token_budget: int = 600
    context_token_budget: int = 1200
    default_max_tokens: int = 256
    max_tokens_limit: int = 1024
    max_message_chars: int = 8000
    temperature: float = 0.0
    repetition_penalty: float = 1.1


@dataclass(frozen=True, slots=True)
class TurnOptions:
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repetition_penalty: float | None = None
    retrieval_k: int | None = None
    collection: str | None = None


@dataclass(frozen=True, slots=True)
class TurnRequest:
    tenant_id: str
    conversation_id: str | None
    content: str
    options: TurnOptions = field(default_factory=TurnOptions)
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True, slots=True)
class TurnStarted:
    """The user message is stored; ``message_id`` names the coming answer."""

    conversation_id: str
    message_id: str
    user_message_id: str


@dataclass(frozen=True, slots=True)
class SourcesFound:
    sources: list[Source]


@dataclass(frozen=True, slots=True)
class TurnFinished:
    """The answer as stored, whatever the ending."""

    message: MessageInfo


TurnEvent = TurnStarted | SourcesFound | TokenEvent | TurnFinished


class _Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self._last = self.start
        self.timings: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round((now - self._last) * 1000, 2)
        self._last = now

    def mark(self, stage: str, since: float) -> None:
        self.timings[stage] = round((time.perf_counter() - since) * 1000, 2)


class TurnPipeline:
    """Runs chat turns over the conversation, retrieval and inference services."""

    def __init__(
        self,
        conversations: ConversationService,
        retrieval: RetrievalService,
        engine: Engine,
        config: PipelineConfig,
    ) -> None:
        self._conversations = conversations
        self._retrieval = retrieval
        self._engine = engine
        self._config = config
        self._cancelled: set[str] = set()

    def validate(self, request: TurnRequest) -> SamplingParams:
        """Check a turn before anything is stored; raises ``UnprocessableError``."""
        cfg, opts = self._config, request.options
        if not request.content.strip():
            raise UnprocessableError("The message is empty.")
        if len(request.content) > cfg.max_message_chars:
            raise UnprocessableError(
                f"The message has {len(request.content)} characters; the limit is "
                f"{cfg.max_message_chars}."
            )
        max_tokens = opts.max_tokens or cfg.default_max_tokens
        if max_tokens > cfg.max_tokens_limit:
            raise UnprocessableError(
                f"max_tokens is {max_tokens}; the limit is {cfg.max_tokens_limit}."
            )
        temperature = cfg.temperature if opts.temperature is None else opts.temperature
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=1.0 if opts.top_p is None else opts.top_p,
            stop=opts.stop,
            seed=opts.seed,
            repetition_penalty=(
                cfg.repetition_penalty
                if opts.repetition_penalty is None
                else opts.repetition_penalty
            ),
        )

    async def cancel(self, message_id: str) -> None:
        """Stop a turn at whatever stage it is; it ends with ``finish_reason="cancelled"``."""
        self._cancelled.add(message_id)
        await self._engine.abort(message_id)

    async def run(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """Run one turn, yielding its events; the answer is stored however it ends.

        Raises the domain error (not found, overloaded, ...) when the turn cannot
        run; once the user message is stored, the answer is stored too (status
        ``failed`` before such an error propagates, ``cancelled`` when the consumer
        stops iterating or calls ``cancel``).
        """
        sampling = self.validate(request)
        # Refuse an overloaded turn before anything is stored (429, Retry-After).
        self._engine.check_capacity()
        watch = _Stopwatch()
        tenant, message_id = request.tenant_id, request.message_id
        if request.conversation_id is None:
            conversation = await self._conversations.create(tenant)
        else:
            conversation = await self._conversations.get(tenant, request.conversation_id)
        earlier = await self._conversations.recent_messages(
            tenant, conversation.id, _HISTORY_MESSAGES
        )
        watch.lap("load_conversation")
        user_message = await self._conversations.add_user_message(
            tenant, conversation.id, request.content
        )
        watch.lap("persist_user_message")
        yield TurnStarted(conversation.id, message_id, user_message.id)

        parts: list[str] = []
        sources: list[Source] = []
        prompt_tokens = 0
        finish: FinishEvent | None = None
        try:
            sources = await self._retrieve(request)
            watch.lap("retrieve")
            yield SourcesFound(sources)
            prompt_ids = self._prompt(request.content, sources, earlier)
            prompt_tokens = len(prompt_ids)
            watch.lap("build_prompt")
            if message_id not in self._cancelled:
                generation_start = time.perf_counter()
                generation = GenerationRequest(message_id, prompt_ids, sampling, tenant)
                async with aclosing(self._engine.generate(generation)) as events:
                    async for event in events:
                        if isinstance(event, TokenEvent):
                            if not parts:
                                watch.mark("first_token", generation_start)
                            parts.append(event.text)
                            yield event
                        else:
                            finish = event
                watch.mark("generate", generation_start)
        except (GeneratorExit, asyncio.CancelledError):
            # The client went away (SSE disconnect, task cancelled): a cancel.
            finish = FinishEvent(FinishReason.CANCELLED, prompt_tokens, len(parts))
            raise
        except Exception as exc:
            log.warning("turn_failed", message_id=message_id, error=repr(exc))
            finish = FinishEvent(FinishReason.ERROR, prompt_tokens, len(parts), str(exc))
            raise
        finally:
            if finish is None:
                finish = FinishEvent(FinishReason.CANCELLED, prompt_tokens, len(parts))
            self._cancelled.discard(message_id)
            watch.mark("total", watch.start)
            # NOTE: shielded so that a client disconnect (which cancels or closes
            # this generator) still leaves the answer stored as cancelled.
            stored = await asyncio.shield(
                self._store_answer(request, conversation.id, "".join(parts), sources, finish, watch)
            )
            observe_turn(stored.finish_reason, stored.timings)
        yield TurnFinished(stored)

    async def _retrieve(self, request: TurnRequest) -> list[Source]:
        k = (
            self._config.top_k
            if request.options.retrieval_k is None
            else request.options.retrieval_k
        )
        if k == 0:
            return []
        hits = await self._retrieval.search(
            request.tenant_id,
            request.content,
            k=k,
            collection=request.options.collection,
            score_floor=self._config.score_floor,
        )
        ranked = [
            Source(
                i,
                h.chunk_id,
                h.document_id,
                h.document_name,
                h.collection,
                h.position,
                h.score,
                h.text,
            )
            for i, h in enumerate(hits, start=1)
        ]
        return fit_sources(ranked, self._config.context_token_budget, self._engine.count_tokens)

    def _prompt(
        self, question: str, sources: list[Source], earlier: list[MessageInfo]
    ) -> list[int]:
        history = [
            ChatMessage(m.role, m.content)
            for m in earlier
            if m.role in ("user", "assistant") and m.status == "complete" and m.content
        ]
        kept = fit_history(history, self._config.history_token_budget, self._engine.count_tokens)
        return self._engine.render_chat(build_messages(question, sources, kept))

    async def _store_answer(
        self,
        request: TurnRequest,
        conversation_id: str,
        content: str,
        sources: list[Source],
        finish: FinishEvent,
        watch: _Stopwatch,
    ) -> MessageInfo:
        usage: dict[str, Any] = {
            "prompt_tokens": finish.prompt_tokens,
            "completion_tokens": finish.completion_tokens,
            "total_tokens": finish.prompt_tokens + finish.completion_tokens,
        }
        return await self._conversations.record_assistant_message(
            tenant_id=request.tenant_id,
            conversation_id=conversation_id,
            message_id=request.message_id,
            content=content,
            status=_STATUS_BY_FINISH[finish.reason],
            finish_reason=str(finish.reason),
            model=self._engine.model_name,
            model_version=self._engine.model_version,
            sources=[s.to_dict() for s in sources],
            citations=cite(content, sources),
            usage=usage,
            timings=watch.timings,
            error=finish.error,
        )
