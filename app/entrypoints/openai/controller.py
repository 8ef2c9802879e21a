"""The OpenAI-compatible routes: thin handlers over ``OpenAIServing``.

Every route needs the ``chat`` scope; a ``conversation_id`` must name one of the
caller's own conversations (any of the tenant's for an admin), a 404 otherwise.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from app.auth.guards import chat_guard
from app.auth.ownership import owned_conversation
from app.auth.principal import Principal
from app.entrypoints.openai.embeddings import (
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
    ModelList,
)
from app.entrypoints.openai.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
)
from app.entrypoints.openai.serving import OpenAIServing
from conversation import ConversationService

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class OpenAIController(Controller):
    path = "/v1"
    tags = ["openai"]
    guards = [chat_guard]

    @get("/models")
    async def list_models(self, openai: OpenAIServing, principal: Principal) -> ModelList:
        """The models the caller's tenant may use, as OpenAI's ``GET /v1/models``."""
        return openai.models(principal.tenant_id)

    @get("/models/{model:str}")
    async def retrieve_model(
        self, openai: OpenAIServing, principal: Principal, model: str
    ) -> ModelCard:
        """One served model; 404 ``model_not_found`` otherwise."""
        return openai.model(model, principal.tenant_id)

    @post("/chat/completions", status_code=HTTP_200_OK)
    async def chat_completions(
        self,
        openai: OpenAIServing,
        conversations: ConversationService,
        principal: Principal,
        data: ChatCompletionRequest,
    ) -> Response[Any]:
        """A RAG answer as OpenAI's ``chat.completion``, or ``chat.completion.chunk`` events."""
        if data.conversation_id is not None:
            await owned_conversation(conversations, principal, data.conversation_id)
        result = await openai.chat(data, principal)
        if isinstance(result, ChatCompletion):
            return Response(result)
        return Stream(result, media_type="text/event-stream", headers=_SSE_HEADERS)

    @post("/embeddings", status_code=HTTP_200_OK)
    async def embeddings(self, openai: OpenAIServing, data: EmbeddingRequest) -> EmbeddingResponse:
        """Embeddings of one text or a batch, as floats or base64."""
        return await openai.embeddings(data)
