"""Batches say when their worker last showed it was running them, so a waiting
tenant's batch can be told from one that runs on another node (issue 13's fair
share); a batch's output and error files name the batch whose results are their
lines instead of holding a second copy of them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 08:40:00
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as table:
        table.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("batch_files") as table:
        table.add_column(sa.Column("source_batch_id", sa.String(64), nullable=True))
        table.add_column(sa.Column("source_ok", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_files") as table:
        table.drop_column("source_ok")
        table.drop_column("source_batch_id")
    with op.batch_alter_table("batches") as table:
        table.drop_column("heartbeat_at")
