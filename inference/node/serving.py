"""Chat completions from the engine: one answer, or its ``chat.completion.chunk`` events."""

from __future__ import annotations

import json
import time
from contextlib import aclosing
from typing import TYPE_CHECKING

import structlog

from inference.node.errors import NodeError, classify, model_not_found
from inference.node.protocol import (
    SSE_DONE,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    ModelCard,
    ModelList,
    Usage,
    openai_finish,
    same_model,
)
from inference.types import FinishEvent, FinishReason, TokenEvent

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable

    from inference.engine import Engine
    from inference.types import GenerationEvent

logger = structlog.get_logger(__name__)


class NodeServing:
    """Serves one engine under one model id.

    Args:
        engine: The engine; started and stopped by the app's lifespan.
        model_id: The id clients name, or a function giving it once the engine has
            started (a local engine knows its model's name only after loading it).
        default_max_tokens: ``max_tokens`` of a request that sets none.
        max_tokens_limit: The largest ``max_tokens`` a request may ask for.
    """

    def __init__(
        self,
        engine: Engine,
        model_id: str | Callable[[], str],
        *,
        default_max_tokens: int,
        max_tokens_limit: int,
    ) -> None:
        self.engine = engine
        self._model_id = model_id
        self._default_max_tokens = default_max_tokens
        self._max_tokens_limit = max_tokens_limit

    @property
    def model_id(self) -> str:
        return self._model_id if isinstance(self._model_id, str) else self._model_id()

    def models(self) -> ModelList:
        return ModelList(data=[ModelCard(id=self.model_id)])

    async def chat(self, body: bytes) -> ChatCompletion | AsyncIterator[bytes]:
        """Answer the request in ``body``: the whole answer, or its events when streaming.

        The first event is awaited here, so a full queue, an unservable request or a
        stopped engine is an HTTP error, not a stream that fails at once.

        Raises:
            NodeError: Bad input (400), another model (404).
            InferenceError: The engine refused the request (mapped to 400, 429, 503).
        """
        request = ChatCompletionRequest.parse(body)
        model = self.model_id
        if not same_model(request.model, model):
            raise model_not_found(request.model)
        generation = request.to_generation_request(
            default_max_tokens=self._default_max_tokens, max_tokens_limit=self._max_tokens_limit
        )
        events = self.engine.generate(generation)
        first = await anext(events)
        cid = generation.request_id
        if request.stream:
            return _stream(cid, model, first, events, include_usage=request.include_usage)
        async with aclosing(events):
            text, event = [], first
            while isinstance(event, TokenEvent):
                text.append(event.text)
                event = await anext(events)
        if event.reason in (FinishReason.ERROR, FinishReason.CANCELLED):
            raise _failure(event)
        return ChatCompletion(
            id=cid,
            model=model,
            choices=[
                Choice(
                    message=AssistantMessage(content="".join(text)),
                    finish_reason=openai_finish(event.reason),
                )
            ],
            usage=Usage.of(event.prompt_tokens, event.completion_tokens),
        )


async def _stream(
    cid: str,
    model: str,
    first: GenerationEvent,
    events: AsyncGenerator[GenerationEvent, None],
    *,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """The answer as ``chat.completion.chunk`` events, then ``[DONE]``.

    Closing this generator (Litestar does when the client goes away) closes
    ``events``, which aborts the engine request and frees its slot at once.
    """
    created = int(time.time())

    def chunk(
        delta: dict[str, str], finish: str | None = None, usage: Usage | None = None
    ) -> bytes:
        choices = [] if usage else [ChunkChoice(delta=delta, finish_reason=finish)]
        return ChatCompletionChunk(
            id=cid, created=created, model=model, choices=choices, usage=usage
        ).to_sse()

    async with aclosing(events):
        try:
            yield chunk({"role": "assistant", "content": ""})
            event = first
            while isinstance(event, TokenEvent):
                yield chunk({"content": event.text})
                event = await anext(events)
            if event.reason in (FinishReason.ERROR, FinishReason.CANCELLED):
                yield _error_event(_failure(event))
            else:
                yield chunk({}, openai_finish(event.reason))
                if include_usage:
                    yield chunk({}, usage=Usage.of(event.prompt_tokens, event.completion_tokens))
        except Exception as exc:
            logger.exception("stream_failed", request_id=cid)
            yield _error_event(classify(exc))
    yield SSE_DONE


def _failure(event: FinishEvent) -> NodeError:
    """The error of a generation that ended without an answer."""
    if event.reason is FinishReason.CANCELLED:
        return NodeError(
            503, "The generation was cancelled (the engine is stopping).", code="cancelled"
        )
    return NodeError(
        500, f"The generation failed: {event.error or 'unknown error'}", code="generation_failed"
    )


def _error_event(error: NodeError) -> bytes:
    """An error after the stream started, as OpenAI sends it (the SDKs raise it)."""
    return b"data: " + json.dumps({"error": error.to_openai()}).encode() + b"\n\n"
