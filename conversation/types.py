"""What conversation's services take and return: frozen values, never ORM rows.

Every timestamp is UTC-aware (``kernel.orm.UtcDateTime`` normalises what
SQLite returns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

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


LabelingSource = Literal["user_feedback", "user_report", "safety", "withheld", "low_retrieval"]
"""Who asked for a review: a thumbs-down, a user's report, a safety filter, a turn
whose sources had chunks withheld, a turn whose retrieval scored low."""
LABELING_SOURCES: tuple[LabelingSource, ...] = get_args(LabelingSource)
TaskStatus = Literal["open", "done"]
"""``open`` until the task has all the labels it wants (or is closed by hand)."""
LabelCategory = Literal[
    "good",
    "hallucination",
    "wrong_citation",
    "irrelevant_source",
    "unsafe",
    "pii_leak",
    "over_refusal",
]
"""What a labeler found: a good answer, or one or more problems (``over_refusal``: a
refusal that should have answered)."""
LABEL_CATEGORIES: tuple[LabelCategory, ...] = get_args(LabelCategory)


@dataclass(frozen=True, slots=True)
class LabelingTask:
    """A message waiting for (or done with) labelers' reviews.

    ``priority`` orders the queue (higher first); ``labels_wanted`` labels by
    different labelers close it (the overlap). ``lease_owner`` holds it until
    ``lease_until``; a lease in the past is free to take. ``model_version`` and
    ``collection`` are the answer's, for filters and the export.
    """

    id: str
    tenant_id: str
    message_id: str
    conversation_id: str | None
    source: LabelingSource
    reason: str
    category: str
    status: TaskStatus
    created_at: datetime
    priority: int = 0
    labels_wanted: int = 1
    labels_done: int = 0
    lease_owner: str | None = None
    lease_until: datetime | None = None
    model_version: str | None = None
    collection: str | None = None

    def leased_to(self, labeler: str, now: datetime) -> bool:
        """Whether ``labeler`` holds a live lease on the task at ``now``."""
        return (
            self.lease_owner == labeler and self.lease_until is not None and self.lease_until >= now
        )


@dataclass(frozen=True, slots=True)
class TaskFilters:
    """Which tasks a listing, "next task" or an export looks at; ``None`` is any.

    ``since`` and ``until`` bound the task's ``created_at`` (the label's in an
    export), ``since`` included and ``until`` excluded.
    """

    source: str | None = None
    collection: str | None = None
    model_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: TaskStatus | None = "open"


@dataclass(frozen=True, slots=True)
class LabelInput:
    """What a labeler submits for a task (checked by ``LabelingQueue.submit``).

    ``source_ratings`` maps a source's number (its 1-based place in the answer's
    ``sources``: the model's ``[n]`` for those it was given, the withheld ones
    after them; an int or its digits, as a form or JSON sends it) to its
    relevance: 0 (irrelevant), 1 (partly), 2 (relevant).
    """

    categories: Sequence[str]
    source_ratings: Mapping[int, int] | Mapping[str, int] = field(default_factory=dict)
    corrected_answer: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Label:
    """One labeler's stored verdict on a task."""

    id: str
    tenant_id: str
    task_id: str
    labeler: str
    categories: tuple[LabelCategory, ...]
    source_ratings: dict[int, int]
    corrected_answer: str | None
    note: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a labeler reviews: the task, its conversation up to and including the
    answer (oldest first), and the answer itself.

    ``answer`` is ``None`` (and ``messages`` empty) once the conversation was
    deleted: the task outlives it.
    """

    task: LabelingTask
    messages: list[MessageInfo]
    answer: MessageInfo | None
