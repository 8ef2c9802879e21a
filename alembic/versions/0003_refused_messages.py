"""Messages may be stored as ``refused``: a turn the safety filters refused.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "status IN ('complete', 'cancelled', 'failed')"
_NEW = "status IN ('complete', 'cancelled', 'failed', 'refused')"


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint("ck_messages_status", type_="check")
        batch.create_check_constraint("ck_messages_status", _NEW)


def downgrade() -> None:
    op.execute("UPDATE messages SET status = 'failed' WHERE status = 'refused'")
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint("ck_messages_status", type_="check")
        batch.create_check_constraint("ck_messages_status", _OLD)
