"""Migration 0010 fills in the due-time columns of the open tasks written before it, or their
timers and guards would never run again; closed tasks keep none."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection
from support.task_builders import task_in

from taskhold.store import create_engine, migrate
from taskhold.store.db import _alembic_config
from taskhold.store.models import TaskRow
from taskhold.store.repo import due_values, projection_values
from taskhold.tasks import Task, TaskState

DUE_COLUMNS = ("timer_due_at", "hold_margin", "hold_expiry_height", "deposit_expiry_height")


def _to_0009(connection: Connection) -> None:
    cfg = _alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "0009")


def _row(task: Task, task_id: str) -> dict[str, object]:
    values = {k: v for k, v in projection_values(task).items() if k not in DUE_COLUMNS}
    return {"task_id": task_id, **values, "payment_hash_hex": None}


async def test_the_migration_fills_in_open_tasks(database_url: str) -> None:
    funded, submitted, paid = (
        task_in(s) for s in (TaskState.FUNDED, TaskState.SUBMITTED, TaskState.PAID)
    )
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_to_0009)
        columns = [c for c in TaskRow.__table__.columns if c.name not in DUE_COLUMNS]
        tasks = sa.table("tasks", *(sa.column(c.name, c.type) for c in columns))
        async with engine.begin() as conn:
            for task_id, task in (("funded", funded), ("submitted", submitted), ("paid", paid)):
                row = _row(task, task_id)
                await conn.execute(sa.insert(tasks).values(**row))
        await migrate(engine)
        async with engine.connect() as conn:
            stored = {
                task_id: dict(zip(DUE_COLUMNS, rest, strict=True))
                for task_id, *rest in await conn.execute(
                    sa.text(f"SELECT task_id, {', '.join(DUE_COLUMNS)} FROM tasks")
                )
            }
    finally:
        await engine.dispose()
    assert stored["funded"] == due_values(funded)
    assert stored["funded"]["timer_due_at"] == funded.deadline_at + 1
    assert stored["submitted"] == due_values(submitted)
    assert stored["submitted"]["hold_margin"] == "reserve"
    assert stored["paid"] == dict.fromkeys(DUE_COLUMNS)
