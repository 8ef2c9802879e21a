"""What conversation's services return: frozen values, never ORM rows.

Every timestamp is UTC-aware (``kernel.orm.UtcDateTime`` normalises what
SQLite returns).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Role = Literal["user", "assistant", "system"]
"""Who wrote a message."""
PrincipalRole = Literal["user", "labeler", "admin"]
"""What a caller (an API key or a user) may do; the API layer gives each its meaning."""
PRINCIPAL_ROLES: tuple[PrincipalRole, ...] = ("user", "labeler", "admin")
MessageStatus = Literal["complete", "cancelled", "failed", "refused", "streaming", "interrupted"]


@dataclass(frozen=True, slots=True)
class TenantInfo:
    """A tenant: the owner of every other row."""

    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket of a key's own: ``burst`` tokens, refilled at ``rate_per_s``."""

    burst: int
    rate_per_s: float


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """An API key as it may be shown: its prefix, never its secret.

    ``rate_limit`` is None when the key uses the configured default bucket.
    """

    id: str
    tenant_id: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    role: PrincipalRole
    rate_limit: RateLimit | None
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
class UserInfo:
    """A person of a tenant, known by their identity provider's ``sub``."""

    id: str
    tenant_id: str
    subject: str
    name: str | None
    role: PrincipalRole
    created_at: datetime
    disabled_at: datetime | None

    @property
    def disabled(self) -> bool:
        """Whether an admin disabled the user."""
        return self.disabled_at is not None


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    """A conversation's header (its messages come from ``ConversationService.messages``)."""

    id: str
    tenant_id: str
    title: str | None
    created_at: datetime
    updated_at: datetime
    owner: str | None = None
    """Who may read and continue it besides the tenant's admins (the creator's
    principal subject); ``None`` for conversations older than owners: admins only."""


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
    error_code: str | None = None
    """Why a ``failed`` answer failed (``generation_failed``...); ``error`` is a
    sentence about it safe to show anyone."""


@dataclass(frozen=True, slots=True)
class MessagePage:
    """One page of a conversation's messages, oldest first.

    The first page holds the newest messages; ``next_cursor`` (None on the page with
    the oldest) asks for the ones just before this page's first.
    """

    items: list[MessageInfo]
    next_cursor: str | None


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


@dataclass(frozen=True, slots=True)
class LabelingTask:
    """A message waiting for (or done with) a labeler's review.

    ``source`` says who asked: ``user_feedback`` (a thumbs-down) or ``safety`` (a
    filter flagged or refused the answer); ``status`` is ``open`` or ``done``.
    """

    id: str
    tenant_id: str
    message_id: str
    conversation_id: str | None
    source: str
    reason: str
    category: str
    status: str
    created_at: datetime
