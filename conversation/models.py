"""SQL rows owned by conversation. ORM rows never leave the package: services
return the frozen dataclasses of ``conversation.types``.

Ids are uuid4 strings (``kernel.ids``), so rows can be named before they are
inserted (the assistant message's id is told to the client before generation
starts). Every ``Mapped[datetime]`` is a UTC-aware ``kernel.orm.UtcDateTime``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from conversation.types import (
    LABELING_SOURCES,
    ApiKeyInfo,
    ConversationInfo,
    FeedbackInfo,
    Label,
    LabelCategory,
    LabelingSource,
    LabelingTask,
    MessageInfo,
    MessageStatus,
    PrincipalRole,
    RateLimit,
    Role,
    TaskStatus,
    TenantInfo,
    UserInfo,
)
from kernel.ids import new_id
from kernel.orm import Base, utcnow


class TenantRow(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_info(self) -> TenantInfo:
        return TenantInfo(id=self.id, name=self.name, created_at=self.created_at)


_PRINCIPAL_ROLES = "role IN ('user', 'labeler', 'admin')"


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(_PRINCIPAL_ROLES, name="role"),
        # Either no override, or both halves of one, both positive.
        CheckConstraint(
            "(rate_limit_burst IS NULL AND rate_limit_per_s IS NULL) OR "
            "(rate_limit_burst IS NOT NULL AND rate_limit_per_s IS NOT NULL "
            "AND rate_limit_burst > 0 AND rate_limit_per_s > 0)",
            name="rate_limit",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    # The first characters of the secret, so a console can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    # sha256 hex of the secret; the secret itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    role: Mapped[str] = mapped_column(String(16), default="user", server_default="user")
    rate_limit_burst: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rate_limit_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)

    def to_info(self) -> ApiKeyInfo:
        rate_limit = None
        if self.rate_limit_burst is not None and self.rate_limit_per_s is not None:
            rate_limit = RateLimit(burst=self.rate_limit_burst, rate_per_s=self.rate_limit_per_s)
        return ApiKeyInfo(
            id=self.id,
            tenant_id=self.tenant_id,
            name=self.name,
            prefix=self.prefix,
            scopes=tuple(self.scopes),
            role=cast("PrincipalRole", self.role),
            rate_limit=rate_limit,
            created_at=self.created_at,
            last_used_at=self.last_used_at,
            revoked_at=self.revoked_at,
        )


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_PRINCIPAL_ROLES, name="role"),
        # NOTE: tenant_id leads, so this is also the index of "this tenant's users".
        UniqueConstraint("tenant_id", "subject", name="uq_users_tenant_subject"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"))
    # The identity provider's ``sub`` for this person.
    subject: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(nullable=True)

    def to_info(self) -> UserInfo:
        return UserInfo(
            id=self.id,
            tenant_id=self.tenant_id,
            subject=self.subject,
            name=self.name,
            role=cast("PrincipalRole", self.role),
            created_at=self.created_at,
            disabled_at=self.disabled_at,
        )


class ConversationRow(Base):
    __tablename__ = "conversations"
    # NOTE: the composite index serves both "this tenant's conversations" and the
    # newest-first keyset pagination; it makes a tenant_id-only index redundant.
    # NOTE: the owner index leads with (tenant_id, owner) for "this user's
    # conversations", newest first, keyset-paginated like the tenant-wide list.
    __table_args__ = (
        Index("ix_conversations_tenant_updated", "tenant_id", "updated_at", "id"),
        Index("ix_conversations_tenant_owner_updated", "tenant_id", "owner", "updated_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"))
    title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The creator's principal subject (``key:<id>`` or ``user:<sub>``); NULL for
    # conversations created before owners existed, which only admins see.
    owner: Mapped[str | None] = mapped_column(String(300), nullable=True)

    def to_info(self) -> ConversationInfo:
        return ConversationInfo(
            id=self.id,
            tenant_id=self.tenant_id,
            title=self.title,
            created_at=self.created_at,
            updated_at=self.updated_at,
            owner=self.owner,
        )


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        CheckConstraint("role IN ('user', 'assistant', 'system')", name="role"),
        CheckConstraint(
            "status IN ('complete', 'cancelled', 'failed', 'refused', 'streaming', 'interrupted')",
            name="status",
        ),
        # The crash sweep looks for ``streaming`` rows only.
        Index("ix_messages_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("conversations.id", ondelete="CASCADE")
    )
    # Denormalised from the conversation so every query can filter by tenant alone.
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # NULL on user and system messages, which no model produced.
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    usage: Mapped[dict[str, int]] = mapped_column(JSON)
    timings: Mapped[dict[str, float]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Refreshed by the process writing a ``streaming`` row; a stale one marks a
    # dead writer (``conversation.conversations.interrupt_stale_streams``).
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)

    def to_info(self) -> MessageInfo:
        # NOTE: the CHECK constraints guarantee role and status hold one of the
        # literal values, so the casts below cannot lie.
        return MessageInfo(
            id=self.id,
            conversation_id=self.conversation_id,
            tenant_id=self.tenant_id,
            role=cast("Role", self.role),
            content=self.content,
            status=cast("MessageStatus", self.status),
            finish_reason=self.finish_reason,
            model=self.model,
            model_version=self.model_version,
            sources=list(self.sources),
            citations=list(self.citations),
            usage=dict(self.usage),
            timings=dict(self.timings),
            error=self.error,
            created_at=self.created_at,
            error_code=self.error_code,
        )


class FeedbackRow(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        # The labeling queue reads a tenant's newest feedback first.
        Index("ix_feedback_tenant_created", "tenant_id", "created_at"),
        CheckConstraint("rating IN (1, -1)", name="rating"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    message_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[str] = mapped_column(String(36))
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_info(self) -> FeedbackInfo:
        return FeedbackInfo(
            id=self.id,
            message_id=self.message_id,
            tenant_id=self.tenant_id,
            rating=self.rating,
            comment=self.comment,
            created_at=self.created_at,
        )


_LABELING_SOURCES = ", ".join(f"'{source}'" for source in LABELING_SOURCES)


class LabelingTaskRow(Base):
    """A message queued for a labeler: flagged by a user, a safety filter or the turn.

    NOTE: ``message_id`` and ``conversation_id`` carry no foreign key: the table
    was created when the queue lived in ``safety`` (see migration 0002), and a
    task outlives the conversation it names, for the audit trail.
    """

    __tablename__ = "labeling_tasks"
    __table_args__ = (
        CheckConstraint(f"source IN ({_LABELING_SOURCES})", name="source"),
        CheckConstraint("status IN ('open', 'done')", name="status"),
        # NOTE: the database itself refuses a label past the overlap, whatever a
        # service does; ``conversation.labels`` never gets there (its UPDATE is
        # conditional), so this is the second line of defence.
        CheckConstraint(
            "labels_wanted >= 1 AND labels_done >= 0 AND labels_done <= labels_wanted",
            name="labels",
        ),
        # "Next task": a tenant's open tasks, highest priority first, oldest first.
        Index("ix_labeling_tasks_next", "tenant_id", "status", "priority", "created_at"),
        # "The task this labeler holds" (one lease at a time).
        Index("ix_labeling_tasks_lease_owner", "tenant_id", "lease_owner"),
        # NOTE: one open task per message and source, even when two flags race:
        # enqueue inserts and, on this index's conflict, returns the open task.
        Index(
            "uq_labeling_tasks_open_message_source",
            "message_id",
            "source",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36))
    message_id: Mapped[str] = mapped_column(String(36), index=True)
    conversation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(8), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Who holds the task and until when; a lease past ``lease_until`` is free to take
    # (the owner stays recorded, so its holder may still renew it if nobody did).
    lease_owner: Mapped[str | None] = mapped_column(String(300), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    labels_wanted: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    labels_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    model_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    collection: Mapped[str | None] = mapped_column(String(128), nullable=True)

    def to_task(self) -> LabelingTask:
        return LabelingTask(
            id=self.id,
            tenant_id=self.tenant_id,
            message_id=self.message_id,
            conversation_id=self.conversation_id,
            source=cast("LabelingSource", self.source),
            reason=self.reason,
            category=self.category,
            status=cast("TaskStatus", self.status),
            created_at=self.created_at,
            priority=self.priority,
            labels_wanted=self.labels_wanted,
            labels_done=self.labels_done,
            lease_owner=self.lease_owner,
            lease_until=self.lease_until,
            model_version=self.model_version,
            collection=self.collection,
        )


class LabelRow(Base):
    """One labeler's verdict on a task; a task takes ``labels_wanted`` of them."""

    __tablename__ = "labels"
    __table_args__ = (
        # NOTE: task_id leads, so this is also the index of "this task's labels".
        UniqueConstraint("task_id", "labeler", name="uq_labels_task_labeler"),
        # The export pages through a tenant's labels in this order.
        Index("ix_labels_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36))
    task_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("labeling_tasks.id", ondelete="CASCADE")
    )
    # ``console:<user id>`` or an API principal's subject (``key:<id>``, ``user:<sub>``).
    labeler: Mapped[str] = mapped_column(String(300))
    categories: Mapped[list[str]] = mapped_column(JSON)
    # Source number (as a JSON key, a string) to relevance 0..2.
    source_ratings: Mapped[dict[str, int]] = mapped_column(JSON)
    corrected_answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_label(self) -> Label:
        return Label(
            id=self.id,
            tenant_id=self.tenant_id,
            task_id=self.task_id,
            labeler=self.labeler,
            categories=tuple(cast("list[LabelCategory]", self.categories)),
            source_ratings={int(n): int(r) for n, r in self.source_ratings.items()},
            corrected_answer=self.corrected_answer,
            note=self.note,
            created_at=self.created_at,
        )


class LabelSkipRow(Base):
    """A labeler passed on a task: "next task" does not hand it to them again.

    NOTE: a table of its own rather than a kind of label: a skip is not a label (it
    counts nothing toward the overlap, carries no categories, is never exported),
    and a labeler who skipped may still label the task later (``claim`` it by id).
    """

    __tablename__ = "label_skips"

    task_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("labeling_tasks.id", ondelete="CASCADE"), primary_key=True
    )
    labeler: Mapped[str] = mapped_column(String(300), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
