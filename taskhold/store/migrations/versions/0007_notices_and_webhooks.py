"""notices and webhooks

Revision ID: 0007
Revises: 0006

``notices`` records each NIP-17 notification sent (once per wait on a participant);
``webhooks`` holds the operator's registered webhook URLs with their delivery cursor.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("notice_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("deadline_at", sa.BigInteger(), nullable=True),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("notice_id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_notices_task_id", "notices", ["task_id"])
    op.create_index("ix_notices_recipient", "notices", ["recipient"])
    op.create_table(
        "webhooks",
        sa.Column("webhook_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("delivered_gseq", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("webhook_id"),
        sa.UniqueConstraint("url"),
    )


def downgrade() -> None:
    op.drop_table("webhooks")
    op.drop_index("ix_notices_recipient", table_name="notices")
    op.drop_index("ix_notices_task_id", table_name="notices")
    op.drop_table("notices")
