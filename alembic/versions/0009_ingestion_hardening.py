"""Ingestion hardening: a code on a document's error, and per-tenant ingestion quotas.

``documents.error_code`` names why a document failed (``too_many_pages``,
``extraction_timeout``, ``too_many_attempts``...), next to ``error``, which now
holds a sentence safe to show a client (the exception text goes to the log).
``ingestion_quotas`` overrides, for one tenant, the configured default of stored
bytes and documents; a tenant without a row gets the defaults. It has no foreign
key to ``tenants``: that table belongs to another package (as for ``documents``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 02:00:00
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("error_code", sa.String(length=64), nullable=True))
    op.create_table(
        "ingestion_quotas",
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("max_bytes", sa.BigInteger(), nullable=True),
        sa.Column("max_documents", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_ingestion_quotas"),
    )


def downgrade() -> None:
    op.drop_table("ingestion_quotas")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("error_code")
