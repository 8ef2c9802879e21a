"""The control plane: ``registered_models``, ``model_versions``, ``model_rollouts``,
``shadow_answers`` and ``usage_records``.

A model is the public name clients send; its versions say where they run and what
they cost; its rollout splits traffic between a stable version, a canary and shadow
versions. Shadow answers are stored beside the primary's, never shown. Every answer
leaves one usage record (tokens, compute seconds, cost) for the usage endpoint.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tenants", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registered_models"),
        sa.UniqueConstraint("name", name="uq_registered_models_name"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("model_id", sa.String(36), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("backend", sa.String(16), nullable=False),
        sa.Column("endpoints", sa.JSON(), nullable=False),
        sa.Column("upstream_model", sa.String(256), nullable=True),
        sa.Column("api_key_name", sa.String(128), nullable=True),
        sa.Column("sampling", sa.JSON(), nullable=False),
        sa.Column("price_prompt_per_1k", sa.Float(), nullable=False),
        sa.Column("price_completion_per_1k", sa.Float(), nullable=False),
        sa.Column("price_per_compute_second", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("backend IN ('embedded', 'remote')", name="ck_model_versions_backend"),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name="fk_model_versions_model_id_registered_models",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_id"),
    )
    op.create_table(
        "model_rollouts",
        sa.Column("model_id", sa.String(36), nullable=False),
        sa.Column("stable", sa.String(64), nullable=False),
        sa.Column("canary", sa.String(64), nullable=True),
        sa.Column("canary_percent", sa.Float(), nullable=False),
        sa.Column("previous_stable", sa.String(64), nullable=True),
        sa.Column("tenant_pins", sa.JSON(), nullable=False),
        sa.Column("shadows", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "canary_percent >= 0 AND canary_percent <= 100", name="ck_model_rollouts_percent"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name="fk_model_rollouts_model_id_registered_models",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", name="pk_model_rollouts"),
    )
    op.create_table(
        "shadow_answers",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("conversation_id", sa.String(36), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("primary_version", sa.String(64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("finish_reason", sa.String(32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("similarity", sa.Float(), nullable=True),
        sa.Column("citation_overlap", sa.Float(), nullable=True),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("primary_length", sa.Integer(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("primary_ttft_ms", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("primary_latency_ms", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_shadow_answers"),
    )
    op.create_index(
        "ix_shadow_answers_version_created",
        "shadow_answers",
        ["model", "version", "created_at"],
    )
    op.create_index("ix_shadow_answers_message_id", "shadow_answers", ["message_id"])
    op.create_table(
        "usage_records",
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("compute_seconds", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name="pk_usage_records"),
    )
    op.create_index("ix_usage_records_tenant_created", "usage_records", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_records_tenant_created", table_name="usage_records")
    op.drop_table("usage_records")
    op.drop_index("ix_shadow_answers_message_id", table_name="shadow_answers")
    op.drop_index("ix_shadow_answers_version_created", table_name="shadow_answers")
    op.drop_table("shadow_answers")
    op.drop_table("model_rollouts")
    op.drop_table("model_versions")
    op.drop_table("registered_models")
