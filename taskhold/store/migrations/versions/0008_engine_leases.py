"""engine leases

Revision ID: 0008
Revises: 0007

``engine_leases`` lets several ``serve`` replicas share one PostgreSQL database: a payment job,
or a guard or refund step, holds its task's key here while it works (``taskhold.escrow.leases``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "engine_leases",
        sa.Column("lease_key", sa.String(length=160), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("lease_key"),
    )


def downgrade() -> None:
    op.drop_table("engine_leases")
