"""placements of hold invoices and payments on the nodes of an escrow pool

Revision ID: 0009
Revises: 0008

``placements`` names the escrow node that holds each hold invoice, or made each payment, when
taskhold runs a pool of nodes (``taskhold.lightning.pool``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "placements",
        sa.Column("payment_hash_hex", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("payment_hash_hex"),
    )
    op.create_index("ix_placements_node", "placements", ["node"])


def downgrade() -> None:
    op.drop_index("ix_placements_node", table_name="placements")
    op.drop_table("placements")
