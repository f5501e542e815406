"""An engine tick looks only at the tasks that are due: an open task whose timers and hold are
far off is not even loaded, and on SQLite no query of a tick scans the tasks table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import funded

from taskhold.store.repo import Tx

DAY_S = 86_400


async def _far_and_near(stack: Stack) -> tuple[str, str]:
    """Two funded tasks: one whose deadline passes within the hour, one two days away."""
    employer = stack.client()
    near = await funded(stack, employer, deadline_at=int(time.time()) + 3600)
    far = await funded(stack, employer, deadline_at=int(time.time()) + 2 * DAY_S)
    return str(near["task_id"]), str(far["task_id"])


async def test_a_tick_loads_the_due_task_and_not_the_open_one(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    near, far = await _far_and_near(stack)
    stack.services.engine.ctx.clock = lambda: time.time() + 2 * 3600
    loaded: list[str] = []
    load_task = Tx.load_task

    async def counting(self: Tx, task_id: str, **kwargs: Any) -> Any:
        loaded.append(task_id)
        return await load_task(self, task_id, **kwargs)

    monkeypatch.setattr(Tx, "load_task", counting)
    await stack.run_pass()

    assert far not in loaded
    assert near in loaded
    client = stack.client()
    assert (await client.get_task(near))["state"] == "REFUNDED"
    assert (await client.get_task(far))["state"] == "FUNDED"


async def test_no_query_of_a_tick_scans_the_tasks_table(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'taskhold.sqlite3'}"
    stack = await open_stack(stack_settings(tmp_path, url))
    try:
        await _far_and_near(stack)
        statements: list[tuple[str, Any]] = []

        def seen(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
            if sql.lstrip().upper().startswith("SELECT") and " tasks" in sql:
                statements.append((sql, params))

        sync_engine = stack.services.store.engine.sync_engine
        event.listen(sync_engine, "before_cursor_execute", seen)
        try:
            await stack.run_pass()
        finally:
            event.remove(sync_engine, "before_cursor_execute", seen)

        assert statements
        scans = []
        async with stack.services.store.engine.connect() as conn:
            for sql, params in statements:
                plan = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
                details = [str(row[-1]) for row in plan]
                scans += [(sql, d) for d in details if d.startswith("SCAN tasks")]
        assert scans == []
    finally:
        await close_stack(stack)
