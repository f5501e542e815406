"""An audit entry recorded while the database is away is not lost: what it records (a settle, a
cancel on the node) has already happened, and the step that retries finds it done and does not
record it again. So the entry stays queued and the next flush writes it. On a PostgreSQL
cluster of the test's own, crashed with ``pg_ctl stop -m immediate``."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from support.private_postgres import PrivatePostgres, private_postgres
from support.stacks import close_stack, open_stack, stack_settings

from taskhold.store.models import AuditRow

__all__ = ["private_postgres"]  # the fixture


async def test_an_entry_recorded_while_the_database_is_down_is_written_once_it_is_back(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    stack = await open_stack(stack_settings(tmp_path, private_postgres.url))
    try:
        audit = stack.services.audit
        assert audit is not None
        await audit.record("system", "escrow.payout", "task-1", {"n": 1})

        private_postgres.stop("immediate")
        with pytest.raises((DBAPIError, OSError)):
            await audit.record("system", "escrow.settle", "task-1", {"n": 2})
        assert audit.pending == 1

        private_postgres.start()
        await audit.flush()
        async with stack.services.store.transaction() as tx:
            query = select(AuditRow.action).where(AuditRow.subject == "task-1")
            actions = [
                action for (action,) in await tx.session.execute(query.order_by(AuditRow.seq))
            ]
        assert actions == ["escrow.payout", "escrow.settle"]
        assert audit.pending == 0
    finally:
        await close_stack(stack)
