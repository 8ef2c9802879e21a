"""A code on a failed answer's error, as documents have one (0009).

``messages.error_code`` names why an answer failed (``generation_failed`` when the
model failed mid-answer, else the code of the error that ended the turn), next to
``error``, a sentence safe to show a client; the engine's own text goes to the log.
Failed answers stored before this revision held the engine's text (an upstream's
address, an exception) in ``error``: they get the code and the fixed sentence, so
no client is shown it again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 03:00:00
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SAFE = "The model failed while generating the answer; retry the turn."


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("error_code", sa.String(length=64), nullable=True))
    messages = sa.table(
        "messages",
        sa.column("status", sa.String),
        sa.column("error", sa.Text),
        sa.column("error_code", sa.String),
    )
    op.execute(
        messages.update()
        .where(messages.c.status == "failed")
        .values(error_code="generation_failed", error=_SAFE)
    )


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("error_code")
