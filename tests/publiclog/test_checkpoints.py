"""Checkpoints of the log head and the audit-log head: published when a head moves, and what
lets the independent auditor see a withheld tail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from support.stacks import Stack
from support.task_flows import funded

from taskhold.audit import audit_log
from taskhold.audit.findings import FindingKind
from taskhold.nostr import verify_event
from taskhold.store.models import LogEntryRow, OutboxRow


async def _checkpoints(stack: Stack) -> list[dict[str, Any]]:
    async with stack.services.store.transaction() as tx:
        rows = (
            await tx.session.execute(
                select(OutboxRow.raw).where(OutboxRow.kind == 30078).order_by(OutboxRow.created_at)
            )
        ).scalars()
        # queued in one second, two checkpoints share the outbox's created_at: order by their own
        return sorted((dict(r) for r in rows), key=lambda event: int(event["created_at"]))


def _d(event: dict[str, Any]) -> str:
    return next(t[1] for t in event["tags"] if t[0] == "d")


async def test_a_checkpoint_per_moved_head_and_none_when_nothing_moved(stack: Stack) -> None:
    checkpointer = stack.services.checkpointer
    assert checkpointer is not None
    await funded(stack, stack.client())
    first = await checkpointer.run_once()
    assert len(first) == 2  # the log head and the audit-log head
    assert await checkpointer.run_once() == []
    await funded(stack, stack.client())
    assert len(await checkpointer.run_once()) >= 1
    events = await _checkpoints(stack)
    assert {_d(e) for e in events} == {"taskhold-log-head", "taskhold-audit-head"}
    operator = stack.services.signer.get_public_key()
    assert all(verify_event(e) and e["pubkey"] == operator for e in events)
    log_heads = [e for e in events if _d(e) == "taskhold-log-head"]
    assert log_heads[-1]["created_at"] > log_heads[0]["created_at"]


async def test_the_auditor_uses_the_checkpoint_to_find_a_withheld_tail(stack: Stack) -> None:
    await funded(stack, stack.client())
    assert stack.services.checkpointer is not None
    await stack.services.checkpointer.run_once()
    async with stack.services.store.transaction() as tx:
        entries = [
            dict(r)
            for r in (
                await tx.session.execute(select(LogEntryRow.raw).order_by(LogEntryRow.gseq))
            ).scalars()
        ]
    checkpoints = await _checkpoints(stack)
    operator = stack.services.signer.get_public_key()
    assert audit_log(entries, operator, checkpoints=checkpoints).clean
    withheld = audit_log(entries[:-1], operator, checkpoints=checkpoints)
    assert FindingKind.GAP in {f.kind for f in withheld.findings}
