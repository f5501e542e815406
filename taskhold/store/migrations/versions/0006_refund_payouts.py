"""refund payouts

Revision ID: 0006
Revises: 0005

``refund_payouts`` records the payment of a split's employer share before it is sent, as
``payouts`` does for the worker's (one row per task and funding round).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refund_payouts",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("funding_round", sa.Integer(), nullable=False),
        sa.Column("payment_request", sa.Text(), nullable=False),
        sa.Column("payment_hash_hex", sa.String(length=64), nullable=False),
        sa.Column("amount_msat", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("fee_msat", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "funding_round"),
    )
    op.create_index("ix_refund_payouts_payment_hash_hex", "refund_payouts", ["payment_hash_hex"])


def downgrade() -> None:
    op.drop_index("ix_refund_payouts_payment_hash_hex", table_name="refund_payouts")
    op.drop_table("refund_payouts")
