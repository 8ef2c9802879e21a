"""The labeler's queue (issue 12): tasks get a priority, a lease, an overlap (labels
wanted and done), the answer's model version and collection, and three more
sources (user reports, withheld chunks, low retrieval scores); labelers' labels
and skips get tables of their own.

Tasks opened before this revision get the priority of their source, one label
wanted, and no model version or collection (their answers may be gone).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from collections.abc import Sequence

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_SOURCES = "source IN ('user_feedback', 'safety')"
_NEW_SOURCES = "source IN ('user_feedback', 'user_report', 'safety', 'withheld', 'low_retrieval')"
_LABELS = "labels_wanted >= 1 AND labels_done >= 0 AND labels_done <= labels_wanted"
_OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    with op.batch_alter_table("labeling_tasks") as table:
        table.drop_constraint("ck_labeling_tasks_source", type_="check")
        table.create_check_constraint("ck_labeling_tasks_source", _NEW_SOURCES)
        table.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("lease_owner", sa.String(300), nullable=True))
        table.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        table.add_column(
            sa.Column("labels_wanted", sa.Integer(), nullable=False, server_default="1")
        )
        table.add_column(sa.Column("labels_done", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("model_version", sa.String(128), nullable=True))
        table.add_column(sa.Column("collection", sa.String(128), nullable=True))
        table.create_check_constraint("ck_labeling_tasks_labels", _LABELS)
        table.drop_index("ix_labeling_tasks_tenant_status_created")
        table.create_index(
            "ix_labeling_tasks_next", ["tenant_id", "status", "priority", "created_at"]
        )
        table.create_index("ix_labeling_tasks_lease_owner", ["tenant_id", "lease_owner"])
    op.execute("UPDATE labeling_tasks SET priority = 90 WHERE source = 'safety'")
    op.execute("UPDATE labeling_tasks SET priority = 70 WHERE source = 'user_feedback'")
    # NOTE: tasks opened before this revision could repeat a (message, source); all
    # but the oldest open one of each are closed, so the unique index below holds.
    op.execute(
        "UPDATE labeling_tasks SET status = 'done' WHERE status = 'open' AND EXISTS ("
        "SELECT 1 FROM labeling_tasks AS older WHERE older.status = 'open'"
        " AND older.message_id = labeling_tasks.message_id"
        " AND older.source = labeling_tasks.source"
        " AND (older.created_at < labeling_tasks.created_at"
        " OR (older.created_at = labeling_tasks.created_at AND older.id < labeling_tasks.id)))"
    )
    op.create_index(
        "uq_labeling_tasks_open_message_source",
        "labeling_tasks",
        ["message_id", "source"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )
    op.create_table(
        "labels",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("labeler", sa.String(300), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("source_ratings", sa.JSON(), nullable=False),
        sa.Column("corrected_answer", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["labeling_tasks.id"],
            name="fk_labels_task_id_labeling_tasks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_labels"),
        sa.UniqueConstraint("task_id", "labeler", name="uq_labels_task_labeler"),
    )
    op.create_index("ix_labels_tenant_created", "labels", ["tenant_id", "created_at", "id"])
    op.create_table(
        "label_skips",
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("labeler", sa.String(300), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["labeling_tasks.id"],
            name="fk_label_skips_task_id_labeling_tasks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "labeler", name="pk_label_skips"),
    )


def downgrade() -> None:
    op.drop_table("label_skips")
    op.drop_index("ix_labels_tenant_created", table_name="labels")
    op.drop_table("labels")
    op.drop_index("uq_labeling_tasks_open_message_source", table_name="labeling_tasks")
    # The sources 0002 did not know have no place in its CHECK: their tasks go.
    op.execute("DELETE FROM labeling_tasks WHERE source NOT IN ('user_feedback', 'safety')")
    with op.batch_alter_table("labeling_tasks") as table:
        table.drop_index("ix_labeling_tasks_lease_owner")
        table.drop_index("ix_labeling_tasks_next")
        table.create_index(
            "ix_labeling_tasks_tenant_status_created", ["tenant_id", "status", "created_at"]
        )
        table.drop_constraint("ck_labeling_tasks_labels", type_="check")
        table.drop_column("collection")
        table.drop_column("model_version")
        table.drop_column("labels_done")
        table.drop_column("labels_wanted")
        table.drop_column("lease_until")
        table.drop_column("lease_owner")
        table.drop_column("priority")
        table.drop_constraint("ck_labeling_tasks_source", type_="check")
        table.create_check_constraint("ck_labeling_tasks_source", _OLD_SOURCES)
