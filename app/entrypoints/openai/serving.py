"""The work behind the OpenAI-compatible routes: models, embeddings and chat turns.

A chat completion is an ordinary ragserve turn (``TurnPipeline``): the caller's
tenant's documents are retrieved, the answer is filtered, cited and stored in a
conversation whose id comes back in the ``conversation_id`` extension field.
"""

from __future__ import annotations

import base64
import json
import time
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.chat.events import (
    SourcesFound,
    TurnEvent,
    TurnFinished,
    TurnStarted,
    final_message,
    generation_failed,
)
from app.core.errors import ApiError, BadRequestError, InternalError, ModelNotFoundError, classify
from app.entrypoints.openai.embeddings import (
    EmbeddingData,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    ModelCard,
    ModelList,
)
from app.entrypoints.openai.protocol import (
    SSE_DONE,
    CacheInfo,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    Delta,
    Usage,
    completion_id,
    to_openai_finish,
)
from app.routing.specs import served_id
from inference import Priority, TokenEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from app.auth.principal import Principal
    from app.chat.pipeline import TurnPipeline
    from app.core.settings import Settings
    from app.routing.catalog import ModelCatalog
    from retrieval import RetrievalService

PACKAGED_EMBEDDING_ID = "all-minilm-l6-v2"


class OpenAIServing:
    """Answers the OpenAI-compatible routes from the chat model, pipeline and retrieval."""

    def __init__(
        self,
        catalog: ModelCatalog,
        pipeline: TurnPipeline | None,
        retrieval: RetrievalService,
        settings: Settings,
    ) -> None:
        self._catalog = catalog
        self._pipeline = pipeline
        self._retrieval = retrieval
        self._settings = settings

    @property
    def embedding_model_id(self) -> str:
        path = self._settings.embedding.model_path
        return served_id(Path(path).name) if path else PACKAGED_EMBEDDING_ID

    def models(self, tenant_id: str) -> ModelList:
        """The models ``tenant_id`` may use here: the chat models of the registry (and
        the node's own) and the embedder."""
        created = int(time.time())
        ids = [m.name for m in self._catalog.visible_to(tenant_id)] + [self.embedding_model_id]
        return ModelList(data=[ModelCard(id=i, created=created) for i in ids])

    def model(self, model: str, tenant_id: str) -> ModelCard:
        """One served model; raises ``ModelNotFoundError``."""
        for card in self.models(tenant_id).data:
            if card.id == served_id(model):
                return card
        raise ModelNotFoundError(model)

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embed the request's texts with the retrieval embedder (unit vectors)."""
        if served_id(request.model) != self.embedding_model_id:
            raise ModelNotFoundError(request.model)
        vectors, token_counts = await self._retrieval.embed(request.texts)
        dimension = len(vectors[0])
        # NOTE: checked after embedding because only the embedder knows its
        # dimension; a wrong ``dimensions`` is rare and costs one forward pass.
        if request.dimensions is not None and request.dimensions != dimension:
            raise BadRequestError(
                f"This model's embeddings have {dimension} dimensions; shortening them "
                "is not supported.",
                param="dimensions",
            )
        tokens = sum(token_counts)
        return EmbeddingResponse(
            data=[
                EmbeddingData(
                    index=i,
                    embedding=_base64(vector) if request.encoding_format == "base64" else vector,
                )
                for i, vector in enumerate(vectors)
            ],
            model=self.embedding_model_id,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )

    async def chat(
        self,
        request: ChatCompletionRequest,
        principal: Principal,
        *,
        priority: Priority = Priority.ONLINE,
    ) -> ChatCompletion | AsyncIterator[bytes]:
        """Run one turn: the stored answer, or its server-sent events when streaming.

        ``priority`` is the engine's traffic class (batch lines run as ``batch``).

        Errors before the user message is stored (bad input, unknown model or
        conversation, overload) raise; once streaming, an error is an ``error`` event.
        """
        model = self._catalog.require(request.model, principal.tenant_id).name
        if self._pipeline is None:
            raise InternalError("A node with a chat model has no turn pipeline.")
        pipeline = self._pipeline
        settings = self._settings
        turn = request.to_turn_request(
            principal.tenant_id,
            principal.subject,
            max_tokens_limit=settings.generation.max_tokens_limit,
            max_message_chars=settings.server.max_message_chars,
        )
        events = pipeline.run(replace(turn, priority=priority))
        # Prime the turn so that "not found", "overloaded" and bad input are plain
        # HTTP errors rather than a stream that fails at once.
        first = await anext(events)
        if not isinstance(first, TurnStarted):
            await events.aclose()  # type: ignore[attr-defined]
            raise InternalError("The turn did not start.")
        if request.stream:
            return _stream(first, events, model, include_usage=request.include_usage)
        return await _complete(events, model)


async def _complete(events: AsyncIterator[TurnEvent], model: str) -> ChatCompletion:
    created = int(time.time())
    return ChatCompletion.of(await final_message(events), model, created)


async def _stream(
    started: TurnStarted,
    events: AsyncIterator[TurnEvent],
    model: str,
    *,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """The turn as ``chat.completion.chunk`` events, then ``[DONE]``.

    Closing this generator (the client went away) closes the turn, which is then
    stored as cancelled.
    """
    created = int(time.time())

    def chunk(choices: list[ChunkChoice], **extra: object) -> bytes:
        return ChatCompletionChunk.model_validate(
            {
                "id": completion_id(started.message_id),
                "created": created,
                "model": model,
                "choices": choices,
                "conversation_id": started.conversation_id,
                "message_id": started.message_id,
                **extra,
            }
        ).to_sse()

    async with aclosing(events):  # type: ignore[type-var]
        try:
            async for event in events:
                if isinstance(event, SourcesFound):
                    role = ChunkChoice(delta=Delta(role="assistant", content=""))
                    yield chunk([role], sources=[s.to_dict() for s in event.sources])
                elif isinstance(event, TokenEvent):
                    yield chunk([ChunkChoice(delta=Delta(content=event.text))])
                elif isinstance(event, TurnFinished):
                    message = event.message
                    if message.status == "failed":
                        yield _error_event(generation_failed(message))
                        break
                    reason = to_openai_finish(message.finish_reason)
                    done = ChunkChoice(delta=Delta(), finish_reason=reason)
                    cached = CacheInfo.of(message.usage)
                    extra = {} if cached is None else {"cached": cached}
                    yield chunk(
                        [done],
                        citations=list(message.citations),
                        citations_dropped=int(message.usage.get("citations_dropped", 0)),
                        **extra,
                    )
                    if include_usage:
                        yield chunk([], usage=Usage.of(message.usage))
        except Exception as exc:
            yield _error_event(classify(exc))
    yield SSE_DONE


def _error_event(error: ApiError) -> bytes:
    """An error after the stream started, as OpenAI sends it (the SDKs raise it)."""
    payload = json.dumps({"error": error.to_openai_payload()}, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


def _base64(vector: list[float]) -> str:
    """Little-endian float32 bytes in base64, as the OpenAI SDKs decode them."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
