"""Safety's tables: stored verdicts (safety_verdicts) and the labeling queue
(labeling_tasks).

Valid on SQLite and PostgreSQL. No foreign keys to conversation's tables: the
packages link rows by id only.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "safety_verdicts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("filter", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "stage IN ('input', 'output', 'retrieval')", name="ck_safety_verdicts_stage"
        ),
        sa.CheckConstraint(
            "action IN ('allow', 'flag', 'redact', 'refuse')", name="ck_safety_verdicts_action"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_safety_verdicts"),
    )
    op.create_index("ix_safety_verdicts_message_id", "safety_verdicts", ["message_id"])
    op.create_index(
        "ix_safety_verdicts_tenant_created", "safety_verdicts", ["tenant_id", "created_at"]
    )

    op.create_table(
        "labeling_tasks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "source IN ('user_feedback', 'safety')", name="ck_labeling_tasks_source"
        ),
        sa.CheckConstraint("status IN ('open', 'done')", name="ck_labeling_tasks_status"),
        sa.PrimaryKeyConstraint("id", name="pk_labeling_tasks"),
    )
    op.create_index("ix_labeling_tasks_message_id", "labeling_tasks", ["message_id"])
    op.create_index(
        "ix_labeling_tasks_tenant_status_created",
        "labeling_tasks",
        ["tenant_id", "status", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_labeling_tasks_tenant_status_created", table_name="labeling_tasks")
    op.drop_index("ix_labeling_tasks_message_id", table_name="labeling_tasks")
    op.drop_table("labeling_tasks")
    op.drop_index("ix_safety_verdicts_tenant_created", table_name="safety_verdicts")
    op.drop_index("ix_safety_verdicts_message_id", table_name="safety_verdicts")
    op.drop_table("safety_verdicts")
