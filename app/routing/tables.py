"""SQL rows of the control plane: the model registry, shadow answers and usage.

Registry rows become ``app.routing.specs`` values in ``registry.py``; nothing else
reads them. A version's endpoints, sampling defaults and a rollout's pins and
shadows are small JSON documents: they are read whole and written whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
)
from sqlalchemy.orm import Mapped, mapped_column

from kernel.ids import new_id
from kernel.orm import Base, utcnow


class RegisteredModelRow(Base):
    """A public model name and who may use it."""

    __tablename__ = "registered_models"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # NULL: every tenant; otherwise a list of tenant ids.
    tenants: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersionRow(Base):
    """One servable version of a model: where it runs, its limits and its price."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        CheckConstraint("backend IN ('embedded', 'remote')", name="backend"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    model_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("registered_models.id", ondelete="CASCADE")
    )
    version: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(16))
    # [{"url": ..., "weight": ...}]
    endpoints: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    upstream_model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    api_key_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sampling: Mapped[dict[str, Any]] = mapped_column(JSON)
    price_prompt_per_1k: Mapped[float] = mapped_column(Float, default=0.0)
    price_completion_per_1k: Mapped[float] = mapped_column(Float, default=0.0)
    price_per_compute_second: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RolloutRow(Base):
    """A model's traffic split; one row per model, written whole by every change."""

    __tablename__ = "model_rollouts"
    __table_args__ = (
        CheckConstraint("canary_percent >= 0 AND canary_percent <= 100", name="percent"),
    )

    model_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    stable: Mapped[str] = mapped_column(String(64))
    canary: Mapped[str | None] = mapped_column(String(64), nullable=True)
    canary_percent: Mapped[float] = mapped_column(Float, default=0.0)
    # The stable version before the last promote, for a one-call rollback.
    previous_stable: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # {"tenant id": "version"}
    tenant_pins: Mapped[dict[str, str]] = mapped_column(JSON)
    # [{"version": ..., "sample_rate": ...}]
    shadows: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ShadowAnswerRow(Base):
    """A shadow version's answer to a live turn, stored beside the primary's, never shown."""

    __tablename__ = "shadow_answers"
    __table_args__ = (Index("ix_shadow_answers_version_created", "model", "version", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36))
    conversation_id: Mapped[str] = mapped_column(String(36))
    # The primary answer's message id (the message table of conversation/).
    message_id: Mapped[str] = mapped_column(String(36), index=True)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    primary_version: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    finish_reason: Mapped[str] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    similarity: Mapped[float | None] = mapped_column(Float, nullable=True)
    citation_overlap: Mapped[float | None] = mapped_column(Float, nullable=True)
    length: Mapped[int] = mapped_column(Integer)
    primary_length: Mapped[int] = mapped_column(Integer)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    primary_ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    primary_latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageRow(Base):
    """What one answer used and cost; the usage endpoint sums these."""

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_tenant_created", "tenant_id", "created_at"),)

    # The answer's message id: recording twice is a no-op.
    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    compute_seconds: Mapped[float] = mapped_column(Float)
    cost: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
