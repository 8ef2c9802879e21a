"""SQL rows owned by safety: stored verdicts, and tenants' own policies.

Ids are uuid4 strings (``kernel.ids``). ``message_id`` names a row of
conversation's tables without a foreign key: domain packages never import each
other, so the link is by id only (deleting a conversation leaves its verdicts for
the audit trail).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kernel.ids import new_id
from kernel.orm import Base, utcnow


class SafetyVerdictRow(Base):
    __tablename__ = "safety_verdicts"
    __table_args__ = (
        CheckConstraint("stage IN ('input', 'output', 'retrieval')", name="stage"),
        CheckConstraint("action IN ('allow', 'flag', 'redact', 'refuse')", name="action"),
        Index("ix_safety_verdicts_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36))
    message_id: Mapped[str | None] = mapped_column(String(36), index=True, nullable=True)
    stage: Mapped[str] = mapped_column(String(16))
    filter: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TenantPolicyRow(Base):
    """A tenant's safety policy set by its admin, replacing the policy file's entry."""

    __tablename__ = "tenant_safety_policies"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # A ``Policy.to_mapping`` document, checked by ``Policy.from_mapping`` on write.
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
