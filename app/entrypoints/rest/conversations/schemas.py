"""Wire schemas of conversations, messages and chat turns."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from app.chat.turn import TurnOptions, TurnRequest
from app.entrypoints.schemas import LABEL_PATTERN, NOT_BLANK, Schema

if TYPE_CHECKING:
    from conversation import ConversationInfo, MessageInfo

CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
"""A page cursor is unpadded base64url (``kernel.cursor``); only a ``next_cursor``
the server gave is valid, any other is a 400 ``invalid cursor``."""


class ConversationCreate(Schema):
    title: str | None = Field(default=None, max_length=200)


class ConversationOut(Schema):
    id: str
    title: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, info: ConversationInfo) -> ConversationOut:
        return cls(
            id=info.id, title=info.title, created_at=info.created_at, updated_at=info.updated_at
        )


class ConversationPageOut(Schema):
    data: list[ConversationOut]
    next_cursor: str | None


class MessageOut(Schema):
    id: str
    conversation_id: str
    role: str
    content: str
    status: str
    finish_reason: str | None
    model: str | None
    model_version: str | None
    sources: list[dict[str, Any]]
    citations: list[dict[str, Any]]
    usage: dict[str, Any]
    timings: dict[str, Any]
    error: str | None
    """For a ``failed`` answer, a sentence about what went wrong, safe to show."""
    error_code: str | None
    """Its code: ``generation_failed`` when the model failed mid-answer."""
    created_at: datetime

    @classmethod
    def of(cls, info: MessageInfo) -> MessageOut:
        return cls(
            id=info.id,
            conversation_id=info.conversation_id,
            role=info.role,
            content=info.content,
            status=info.status,
            finish_reason=info.finish_reason,
            model=info.model,
            model_version=info.model_version,
            sources=list(info.sources or []),
            citations=list(info.citations or []),
            usage=dict(info.usage or {}),
            timings=dict(info.timings or {}),
            error=info.error,
            error_code=info.error_code,
            created_at=info.created_at,
        )


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]
    """A page of the messages, oldest first: the newest ones, or those before ``cursor``."""
    next_cursor: str | None
    """The ``cursor`` of the messages before this page; ``null`` when it holds the oldest."""


class ChatOptions(Schema):
    """Per-turn knobs; every field is optional and bounded."""

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    stop: list[Annotated[str, Field(min_length=1, max_length=32)]] | None = Field(
        default=None, max_length=4
    )
    repetition_penalty: float | None = Field(default=None, ge=1.0, le=2.0)
    retrieval_k: int | None = Field(default=None, ge=0, le=20)
    collection: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=LABEL_PATTERN
    )


class ChatRequest(Schema):
    content: str = Field(min_length=1, pattern=NOT_BLANK)
    """The question: not only spaces (the server's ``max_message_chars`` bounds it)."""
    options: ChatOptions | None = None
    model: str | None = Field(default=None, min_length=1, max_length=128)
    """The public model name (``GET /v1/models``); unset takes the default model."""

    def to_turn_request(
        self, tenant_id: str, conversation_id: str | None, subject: str | None = None
    ) -> TurnRequest:
        opts = self.options or ChatOptions()
        return TurnRequest(
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            content=self.content,
            subject=subject,
            model=self.model,
            options=TurnOptions(
                max_tokens=opts.max_tokens,
                temperature=opts.temperature,
                top_p=opts.top_p,
                seed=opts.seed,
                stop=tuple(opts.stop or ()),
                repetition_penalty=opts.repetition_penalty,
                retrieval_k=opts.retrieval_k,
                collection=opts.collection,
            ),
        )


class ChatResponse(Schema):
    conversation_id: str
    message: MessageOut
