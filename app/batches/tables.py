"""SQL rows of batch jobs: files, batches and one row per answered line.

A file's bytes live in its row (``content``, loaded only when asked for); an
output or error file is written once, when its batch is finalised. A line's result
row is the idempotency record of the at-least-once runner: the pair (batch,
``custom_id``) is unique, so a line answered twice (its worker died before the
batch's lease was renewed) is stored once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column

from kernel.orm import Base, utcnow

BATCH_STATUSES = (
    "validating",
    "failed",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
)


class BatchFileRow(Base):
    """A file of the Files API: a batch's input, output or errors."""

    __tablename__ = "batch_files"
    __table_args__ = (
        CheckConstraint(
            "purpose IN ('batch', 'batch_output')",
            name="purpose",
        ),
        Index("ix_batch_files_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    owner: Mapped[str] = mapped_column(String(256))
    """The principal subject that uploaded it (its batch's, for results)."""
    purpose: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(256))
    size: Mapped[int] = mapped_column("bytes", Integer)
    lines: Mapped[int] = mapped_column(Integer, default=0)
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    """An uploaded file's bytes; empty for a batch's output or error file, whose
    lines are the results of ``source_batch_id`` (successful ones when
    ``source_ok``), written out as the file is read."""
    source_batch_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_ok: Mapped[bool | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class BatchRow(Base):
    """One batch: its input, its state and the counts the API reports."""

    __tablename__ = "batches"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in BATCH_STATUSES) + ")",
            name="status",
        ),
        Index("ix_batches_tenant_created", "tenant_id", "created_at"),
        Index("ix_batches_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    owner: Mapped[str] = mapped_column(String(256))
    """The principal subject that created it; users reach their own, admins all."""
    # Who created it, as the lines run: subject, role, scopes, key id.
    principal: Mapped[dict[str, Any]] = mapped_column(JSON)
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="validating")
    meta: Mapped[dict[str, str] | None] = mapped_column(
        "metadata", JSON(none_as_null=True), nullable=True
    )
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    total: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    queued_tokens: Mapped[int] = mapped_column(Integer, default=0)
    """The tokens the quota counts for this batch while it is unfinished."""
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    in_progress_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finalizing_at: Mapped[datetime | None] = mapped_column(nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cancelling_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    """When a worker last showed it runs the batch; ``None`` while none does."""


class BatchResultRow(Base):
    """The answer to one line of a batch (a response, or an error)."""

    __tablename__ = "batch_results"
    __table_args__ = (UniqueConstraint("batch_id", "custom_id"),)

    batch_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    custom_id: Mapped[str] = mapped_column(String(512))
    request_id: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
