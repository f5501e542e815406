"""deposits

Revision ID: 0005
Revises: 0004

Deposits live in the task's own ``data`` (they are task events); ``tasks.deposit_action`` lets
the escrow engine find the tasks whose deposits it owes a step, and ``deposit_payouts`` records
a forfeited deposit's payment before it is sent, like ``payouts`` does for rewards.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("deposit_action", sa.String(length=16), nullable=True))
    op.create_index("ix_tasks_deposit_action", "tasks", ["deposit_action"])
    op.create_table(
        "deposit_payouts",
        sa.Column("deposit_hash_hex", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("payment_request", sa.Text(), nullable=False),
        sa.Column("payment_hash_hex", sa.String(length=64), nullable=False),
        sa.Column("amount_msat", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("fee_msat", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("deposit_hash_hex"),
    )
    op.create_index("ix_deposit_payouts_task_id", "deposit_payouts", ["task_id"])
    op.create_index("ix_deposit_payouts_payment_hash_hex", "deposit_payouts", ["payment_hash_hex"])


def downgrade() -> None:
    op.drop_table("deposit_payouts")
    op.drop_index("ix_tasks_deposit_action", table_name="tasks")
    op.drop_column("tasks", "deposit_action")
