"""What conversation's services return: frozen values, never ORM rows.

Every timestamp is UTC-aware (``conversation.models.UtcDateTime`` normalises what
SQLite returns).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Role = Literal["user", "assistant", "system"]
MessageStatus = Literal["complete", "cancelled", "failed", "refused"]


@dataclass(frozen=True, slots=True)
class TenantInfo:
    """A tenant: the owner of every other row."""

    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """An API key as it may be shown: its prefix, never its secret."""

    id: str
    tenant_id: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        """Whether the key was revoked."""
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    """A new key and its secret; the secret is shown this once and never stored."""

    info: ApiKeyInfo
    secret: str


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    """A conversation's header (its messages come from ``ConversationService.messages``)."""

    id: str
    tenant_id: str
    title: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """One message of a conversation, with everything recorded about its turn.

    ``sources``, ``citations``, ``usage`` and ``timings`` are empty for user messages.
    ``usage`` holds ``prompt_tokens`` and ``completion_tokens``; ``timings`` maps a
    pipeline stage to milliseconds.
    """

    id: str
    conversation_id: str
    tenant_id: str
    role: Role
    content: str
    status: MessageStatus
    finish_reason: str | None
    model: str | None
    model_version: str | None
    sources: list[dict[str, Any]]
    citations: list[dict[str, Any]]
    usage: dict[str, int]
    timings: dict[str, float]
    error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """One page of conversations, newest updated first.

    ``next_cursor`` is None on the last page; pass it back to get the next one.
    """

    items: list[ConversationInfo]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class FeedbackInfo:
    """A user's rating (+1 or -1) of an assistant message."""

    id: str
    message_id: str
    tenant_id: str
    rating: int
    comment: str | None
    created_at: datetime
