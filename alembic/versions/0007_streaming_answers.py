"""Answers survive crashes: ``streaming``/``interrupted`` messages, idempotency keys
and counted ingestion deliveries.

An assistant message is inserted as ``streaming`` when generation starts, so the
id the client was told exists at once; the process writing it refreshes
``heartbeat_at`` (and the partial text) while it streams. A row whose heartbeat
went stale belonged to a dead process and becomes ``interrupted``.
``idempotency_keys`` remembers a retried request's first result per tenant and
route. ``document_uploads.attempts`` counts deliveries to an ingestion worker, so
a document that kills its worker fails after the configured attempts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "status IN ('complete', 'cancelled', 'failed', 'refused')"
_NEW = "status IN ('complete', 'cancelled', 'failed', 'refused', 'streaming', 'interrupted')"


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint("ck_messages_status", type_="check")
        batch.create_check_constraint("ck_messages_status", _NEW)
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_messages_status", "messages", ["status"])
    with op.batch_alter_table("document_uploads") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "route", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("document_uploads") as batch:
        batch.drop_column("attempts")
    op.drop_index("ix_messages_status", table_name="messages")
    op.execute("UPDATE messages SET status = 'failed' WHERE status IN ('streaming', 'interrupted')")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_constraint("ck_messages_status", type_="check")
        batch.create_check_constraint("ck_messages_status", _OLD)
