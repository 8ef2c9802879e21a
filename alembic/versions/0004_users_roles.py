"""Users, and a role plus an optional rate-limit override on every API key.

Existing keys become ``user`` keys with no override (the server default), so an
upgrade changes nothing a caller sees. ``users`` records the people of a tenant
known by their JWT ``sub``: a role an admin set and whether they are disabled.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLES = "role IN ('user', 'labeler', 'admin')"
# NOTE: IS NOT NULL is spelled out because a CHECK whose value is NULL passes:
# "burst > 0 AND rate > 0" alone would let a half override (rate NULL) in.
_RATE_LIMIT = (
    "(rate_limit_burst IS NULL AND rate_limit_per_s IS NULL) OR "
    "(rate_limit_burst IS NOT NULL AND rate_limit_per_s IS NOT NULL "
    "AND rate_limit_burst > 0 AND rate_limit_per_s > 0)"
)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("role", sa.String(length=16), nullable=False, server_default="user")
        )
        batch.add_column(sa.Column("rate_limit_burst", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rate_limit_per_s", sa.Float(), nullable=True))
        batch.create_check_constraint("ck_api_keys_role", _ROLES)
        batch.create_check_constraint("ck_api_keys_rate_limit", _RATE_LIMIT)

    op.create_table(
        "users",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_ROLES, name="ck_users_role"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_users_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        # Also the index of "this tenant's users": tenant_id leads.
        sa.UniqueConstraint("tenant_id", "subject", name="uq_users_tenant_subject"),
    )


def downgrade() -> None:
    op.drop_table("users")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint("ck_api_keys_rate_limit", type_="check")
        batch.drop_constraint("ck_api_keys_role", type_="check")
        batch.drop_column("rate_limit_per_s")
        batch.drop_column("rate_limit_burst")
        batch.drop_column("role")
