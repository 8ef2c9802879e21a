"""REST: conversations, their messages, and chat turns (JSON or server-sent events).

Every route needs the ``chat`` scope. A conversation belongs to the principal that
created it: a user or labeler lists, reads, continues and deletes its own only
(someone else's is a 404), an admin all of its tenant's (``app/auth/ownership.py``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.params import Parameter
from litestar.response import ServerSentEvent
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from app.auth.guards import chat_guard
from app.auth.ownership import owned_conversation, owner_filter
from app.auth.principal import Principal
from app.chat.events import EventKind, TurnEvent, error_payload, final_message, to_wire
from app.chat.pipeline import TurnPipeline
from app.core.errors import classify
from app.entrypoints.rest.conversations.schemas import (
    CURSOR_PATTERN,
    ChatRequest,
    ChatResponse,
    ConversationCreate,
    ConversationDetail,
    ConversationOut,
    ConversationPageOut,
    MessageOut,
)
from app.idempotency import IdempotencyStore, idempotency_key, request_hash
from conversation import MAX_MESSAGE_PAGE_SIZE, ConversationService
from kernel.cursor import MAX_CURSOR_CHARS

_CHAT_ROUTE = "conversations.messages"


async def _sse(first: TurnEvent, events: AsyncIterator[TurnEvent]) -> AsyncIterator[dict[str, Any]]:
    """The turn as SSE messages; an error after the stream started is an ``error`` event."""
    async with aclosing(events):  # type: ignore[type-var]
        kind, payload = to_wire(first)
        yield {"event": kind, "data": _json(payload)}
        try:
            async for event in events:
                kind, payload = to_wire(event)
                message: dict[str, Any] = {"event": kind, "data": _json(payload)}
                if kind is EventKind.TOKEN:
                    message["id"] = str(payload["index"])
                yield message
        except Exception as exc:
            yield {"event": EventKind.ERROR, "data": _json(error_payload(classify(exc)))}


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), default=str)


class ConversationController(Controller):
    path = "/v1/conversations"
    tags = ["conversations"]
    guards = [chat_guard]

    @post("/", status_code=HTTP_201_CREATED)
    async def create(
        self,
        conversations: ConversationService,
        principal: Principal,
        data: ConversationCreate | None = None,
    ) -> ConversationOut:
        """Start an empty conversation, owned by the caller."""
        title = data.title if data else None
        info = await conversations.create(principal.tenant_id, title, owner=principal.subject)
        return ConversationOut.of(info)

    @get("/")
    async def list_conversations(
        self,
        conversations: ConversationService,
        principal: Principal,
        limit: int = Parameter(default=20, ge=1, le=100),
        cursor: str | None = Parameter(
            default=None, min_length=1, max_length=MAX_CURSOR_CHARS, pattern=CURSOR_PATTERN
        ),
    ) -> ConversationPageOut:
        """The caller's conversations (an admin: all of the tenant's), most recently
        active first, a page at a time."""
        page = await conversations.list(
            principal.tenant_id, limit=limit, cursor=cursor, owner=owner_filter(principal)
        )
        return ConversationPageOut(
            data=[ConversationOut.of(c) for c in page.items], next_cursor=page.next_cursor
        )

    @get("/{conversation_id:str}")
    async def read(
        self,
        conversations: ConversationService,
        principal: Principal,
        conversation_id: str,
        limit: int = Parameter(default=50, ge=1, le=MAX_MESSAGE_PAGE_SIZE),
        cursor: str | None = Parameter(
            default=None, min_length=1, max_length=MAX_CURSOR_CHARS, pattern=CURSOR_PATTERN
        ),
    ) -> ConversationDetail:
        """A conversation with a page of its messages, oldest first within the page.

        The first page is the newest ``limit`` messages; ``next_cursor``, passed back
        as ``cursor``, gives the ones before them (``null`` once the oldest is shown).
        """
        info = await owned_conversation(conversations, principal, conversation_id)
        page = await conversations.message_page(
            principal.tenant_id, conversation_id, limit=limit, cursor=cursor
        )
        return ConversationDetail(
            **ConversationOut.of(info).model_dump(),
            messages=[MessageOut.of(m) for m in page.items],
            next_cursor=page.next_cursor,
        )

    @delete("/{conversation_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def remove(
        self, conversations: ConversationService, principal: Principal, conversation_id: str
    ) -> None:
        """Delete a conversation, its messages and their feedback."""
        await owned_conversation(conversations, principal, conversation_id)
        await conversations.delete(principal.tenant_id, conversation_id)

    @post("/{conversation_id:str}/messages", status_code=HTTP_200_OK)
    async def chat(
        self,
        request: Request[Any, Any, Any],
        pipeline: TurnPipeline,
        conversations: ConversationService,
        principal: Principal,
        conversation_id: str,
        data: ChatRequest,
        idempotency: IdempotencyStore,
    ) -> Response[Any]:
        """Ask a question: JSON when it is answered, or SSE with ``Accept: text/event-stream``.

        With an ``Idempotency-Key`` header, a retry of the same request answers
        (JSON) with the first one's message as stored now, instead of a second turn.
        """
        await owned_conversation(conversations, principal, conversation_id)
        tenant, key = principal.tenant_id, idempotency_key(request)
        if key is not None:
            fingerprint = request_hash(conversation_id, await request.body())
            claim = await idempotency.claim(tenant, _CHAT_ROUTE, key, fingerprint)
            if claim.replay and claim.response is not None:
                stored = await conversations.get_message(tenant, claim.response["message_id"])
                return Response(
                    ChatResponse(conversation_id=conversation_id, message=MessageOut.of(stored))
                )
        turn = data.to_turn_request(tenant, conversation_id, principal.subject)
        events = pipeline.run(turn)
        # Prime the turn so that "not found", "overloaded" and bad input are plain
        # HTTP errors rather than a stream that fails at once.
        try:
            first = await anext(events)
        except BaseException:
            if key is not None:
                await idempotency.release(tenant, _CHAT_ROUTE, key)
            raise
        if key is not None:
            await idempotency.complete(
                tenant, _CHAT_ROUTE, key, HTTP_200_OK, {"message_id": turn.message_id}
            )
        if "text/event-stream" in request.headers.get("accept", ""):
            return ServerSentEvent(_sse(first, events))
        message = await final_message(events)
        return Response(
            ChatResponse(
                conversation_id=message.conversation_id,
                message=MessageOut.of(message),
            )
        )
