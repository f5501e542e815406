"""due-time columns of the tasks projection

Revision ID: 0010
Revises: 0009

The escrow engine's tick selects the tasks whose timer ran out or whose hold nears its expiry
height by these indexed columns (``taskhold.tasks.due``) instead of loading every open task.
Open tasks written before them are filled in here from their stored data.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TERMINAL = ("PAID", "REFUNDED", "CANCELLED", "EXPIRED")


def upgrade() -> None:
    op.add_column("tasks", sa.Column("timer_due_at", sa.BigInteger(), nullable=True))
    op.add_column("tasks", sa.Column("hold_margin", sa.String(length=8), nullable=True))
    op.add_column("tasks", sa.Column("hold_expiry_height", sa.BigInteger(), nullable=True))
    op.add_column("tasks", sa.Column("deposit_expiry_height", sa.BigInteger(), nullable=True))
    op.create_index("ix_tasks_timer_due_at", "tasks", ["timer_due_at"])
    op.create_index("ix_tasks_hold_due", "tasks", ["hold_margin", "hold_expiry_height"])
    op.create_index("ix_tasks_deposit_expiry_height", "tasks", ["deposit_expiry_height"])
    _fill_open_tasks()


def _fill_open_tasks() -> None:
    from taskhold.store.codec import task_from_data
    from taskhold.store.repo import due_values

    tasks = sa.table(
        "tasks",
        sa.column("task_id", sa.String()),
        sa.column("state", sa.String()),
        sa.column("data", sa.JSON()),
        sa.column("timer_due_at", sa.BigInteger()),
        sa.column("hold_margin", sa.String()),
        sa.column("hold_expiry_height", sa.BigInteger()),
        sa.column("deposit_expiry_height", sa.BigInteger()),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(tasks.c.task_id, tasks.c.data).where(tasks.c.state.not_in(_TERMINAL))
    ).all()
    for task_id, data in rows:
        values = due_values(task_from_data(data))
        bind.execute(tasks.update().where(tasks.c.task_id == task_id).values(**values))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.drop_index("ix_tasks_deposit_expiry_height")
        batch_op.drop_index("ix_tasks_hold_due")
        batch_op.drop_index("ix_tasks_timer_due_at")
        for name in ("deposit_expiry_height", "hold_expiry_height", "hold_margin", "timer_due_at"):
            batch_op.drop_column(name)
