"""Tenants' own safety policies, set by their admins in the console and read by
every node; each replaces the policy file's entry for its tenant (issue 12).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 12:20:00
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_safety_policies",
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(300), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_tenant_safety_policies"),
    )


def downgrade() -> None:
    op.drop_table("tenant_safety_policies")
