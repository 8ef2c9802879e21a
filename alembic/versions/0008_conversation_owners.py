"""An owner on every conversation: the principal subject that created it.

A ``user`` reads and continues only the conversations it owns; the tenant's admins
see all of them. Conversations created before this revision keep a NULL owner and
so become visible to the tenant's admins only: no one can be shown to own them,
and guessing would hand one person's history to another.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=300), nullable=True))
    op.create_index(
        "ix_conversations_tenant_owner_updated",
        "conversations",
        ["tenant_id", "owner", "updated_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_tenant_owner_updated", table_name="conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("owner")
