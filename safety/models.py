"""SQL rows owned by safety: stored verdicts.

Ids are uuid4 strings (``kernel.ids``). ``message_id`` names a row of
conversation's tables without a foreign key: domain packages never import each
other, so the link is by id only (deleting a conversation leaves its verdicts for
the audit trail).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Float, Index, String, Text
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
