"""operator moderation: blocked keys, delisted tasks

Revision ID: 0012
Revises: 0011

``blocked_keys`` and ``delisted_tasks`` hold the operator's moderation (``taskhold moderate``)
in the database, so every replica refuses the same keys and hides the same tasks;
``moderation_head`` is the newest signed moderation list published.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blocked_keys",
        sa.Column("pubkey", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("blocked_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pubkey"),
    )
    op.create_table(
        "delisted_tasks",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("delisted_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("task_id"),
    )
    op.create_table(
        "moderation_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("moderation_head")
    op.drop_table("delisted_tasks")
    op.drop_table("blocked_keys")
