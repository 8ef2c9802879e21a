"""What the model is shown for a turn: the tenant's sources and the conversation's
history, each within its token budget, around the question."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from app.chat.prompt import (
    Source,
    build_messages,
    fit_history,
    fit_sources,
    sources_tokens,
    stable_order,
)
from app.core.errors import ContextLengthError
from inference import ChatMessage

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.chat.outcome import TurnOutcome
    from app.chat.safety_gate import SafetyGate
    from app.chat.turn import PipelineConfig, TurnRequest
    from app.routing.gateway import ModelGateway, Route
    from conversation import MessageInfo
    from retrieval import RetrievalService

__all__ = ["ContextBuilder", "previous_version", "shown_before", "stored_history"]

log = structlog.get_logger(__name__)


class ContextBuilder:
    """Builds a turn's sources and prompt messages."""

    def __init__(
        self,
        retrieval: RetrievalService,
        models: ModelGateway,
        config: PipelineConfig,
        safety: SafetyGate | None,
    ) -> None:
        self._retrieval = retrieval
        self._models = models
        self._config = config
        self._safety = safety

    async def sources(
        self,
        request: TurnRequest,
        route: Route,
        out: TurnOutcome,
        shown: Sequence[Sequence[str]] = (),
    ) -> list[Source]:
        """The tenant's chunks for the question, filtered by the retrieval safety
        guard (its verdicts go to ``out``), the best-ranked within the context budget,
        led by those an earlier answer was shown, in its order (``shown_before``,
        ``stable_order``), numbered."""
        k = (
            self._config.top_k
            if request.options.retrieval_k is None
            else request.options.retrieval_k
        )
        if k == 0:
            return []
        floor = request.options.score_floor
        hits = await self._retrieval.search(
            request.tenant_id,
            request.content,
            k=k,
            collection=request.options.collection,
            score_floor=self._config.score_floor if floor is None else floor,
        )
        ranked = [
            Source(i, h.chunk_id, h.document_id, h.document_name, h.collection, h.position,
                   h.score, h.text, similarity=h.similarity)
            for i, h in enumerate(hits, start=1)
        ]  # fmt: skip
        if self._safety is not None:
            ranked, refused, verdicts = await self._safety.filter_sources(request.tenant_id, ranked)
            out.verdicts.extend(verdicts)
            out.withheld = refused
        fitted = fit_sources(
            ranked,
            self._config.context_token_budget,
            lambda text: self._models.count_tokens(route, text),
        )
        return stable_order(fitted, shown)

    async def prefetch_next(self, request: TurnRequest, answer: str) -> None:
        """Warm the node's chunk cache for the conversation's likely next question.

        NOTE: a follow-up usually asks about what the question and its answer talked
        about, so their text is the prefetch query; it only schedules the search.
        """
        try:
            await self._retrieval.prefetch(
                request.tenant_id,
                request.options.collection,
                f"{request.content}\n{answer}",
                k=request.options.retrieval_k or self._config.top_k,
            )
        except Exception as exc:
            log.warning("prefetch_failed", message_id=request.message_id, error=repr(exc))

    async def check_instructions(self, request: TurnRequest, route: Route) -> None:
        """Refuse a caller's system prompt over its budget, before the turn is stored.

        Raises:
            ContextLengthError: The instructions take more than their budget of tokens.
        """
        if not request.instructions:
            return
        budget = self._config.instructions_token_budget
        # NOTE: a tokenizer takes milliseconds per thousand words: off the event loop.
        tokens = await asyncio.to_thread(self._models.count_tokens, route, request.instructions)
        if tokens > budget:
            raise ContextLengthError(
                f"The system and developer messages take {tokens} tokens; the limit is {budget}.",
                param="messages",
            )

    async def messages(
        self,
        request: TurnRequest,
        route: Route,
        sources: list[Source],
        history: list[ChatMessage],
    ) -> tuple[list[ChatMessage], int]:
        """The chat to send and its tokens: the system prompt with the numbered
        sources, the most recent history within its budget (the oldest turns are
        left out first, the caller's as the stored ones; what the sources leave of
        theirs adds to it), the question. Tokenised off the event loop."""
        return await asyncio.to_thread(self._messages, request, route, sources, history)

    def _messages(
        self,
        request: TurnRequest,
        route: Route,
        sources: list[Source],
        history: list[ChatMessage],
    ) -> tuple[list[ChatMessage], int]:
        counted: dict[str, int] = {}

        def count(text: str) -> int:
            # NOTE: each history message is counted to fit the history and again for
            # the usage: once is enough.
            if text not in counted:
                counted[text] = self._models.count_tokens(route, text)
            return counted[text]

        # NOTE: a turn without sources (retrieval off, nothing found) gives the
        # conversation their room: a follow-up then keeps the whole conversation, and
        # with it the prefix the engine cached for the turn before.
        unused = max(0, self._config.context_token_budget - sources_tokens(sources, count))
        kept = fit_history(history, self._config.history_token_budget + unused, count)
        messages = build_messages(request.content, sources, kept)
        if request.instructions:
            # NOTE: the caller's system prompt goes first, so ragserve's rules and the
            # numbered sources stay next to the question, where a small model heeds them.
            system = messages[0]
            messages[0] = ChatMessage(system.role, f"{request.instructions}\n\n{system.content}")
        return messages, sum(count(m.content) for m in messages)


def previous_version(earlier: list[MessageInfo], model: str) -> str | None:
    """The version of ``model`` that answered the conversation's latest turn."""
    for message in reversed(earlier):
        if message.role == "assistant" and message.model == model and message.model_version:
            return message.model_version
    return None


def shown_before(earlier: list[MessageInfo], answers: int = 3) -> list[list[str]]:
    """The chunk ids each of the latest ``answers`` complete answers' model was shown,
    in their order, newest first (an interrupted answer's prompt may never have been
    cached: it is skipped)."""
    shown: list[list[str]] = []
    for message in reversed(earlier):
        if len(shown) == answers:
            break
        if message.role == "assistant" and message.status == "complete":
            chunks = sorted((s for s in message.sources if s.get("n")), key=lambda s: int(s["n"]))
            shown.append([str(s["chunk_id"]) for s in chunks])
    return shown


def stored_history(earlier: list[MessageInfo]) -> list[ChatMessage]:
    """The stored turns worth showing the model: whole, complete user and assistant messages."""
    return [
        ChatMessage(m.role, m.content)
        for m in earlier
        if m.role in ("user", "assistant") and m.status == "complete" and m.content
    ]
