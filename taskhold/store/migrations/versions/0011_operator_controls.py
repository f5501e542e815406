"""operator controls

Revision ID: 0011
Revises: 0010

``operator_controls`` holds the switches of ``taskhold admin``: whether intake is paused, and
the engine pass the operator last asked for (``taskhold.store.controls``). Every replica reads
them from here, and they survive a restart.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operator_controls",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.Column("changed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("operator_controls")
