"""Signed checkpoints (kind 30078) of the public log's head and of the audit log's head.

A chain proves only what it holds: an operator could withhold the newest entries. The log
checkpoint (``d`` = ``taskhold-log-head``) names the head entry, so an auditor who finds fewer
entries reports the missing tail; the audit-log checkpoint (``d`` = ``taskhold-audit-head``)
pins the audit chain outside the database, so a superuser cannot rewrite it unnoticed.
Checkpoints go out through the outbox like every other event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskhold.journal.chain import read_head
from taskhold.journal.checkpoints import checkpoint_payload
from taskhold.keys.signer import EventSigner
from taskhold.store import Store
from taskhold.store.models import AuditRow, LogHeadRow

from .writer import sign_and_queue

__all__ = ["LOG_CHECKPOINT_D", "Checkpointer"]

LOG_CHECKPOINT_D = "taskhold-log-head"

log = structlog.get_logger("taskhold.checkpoints")


class Checkpointer:
    """Publishes a checkpoint of each head that moved since the last one, at an interval."""

    def __init__(
        self,
        store: Store,
        signer: EventSigner,
        *,
        kind: int = 30078,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._signer = signer
        self._kind = kind
        self._interval_s = interval_s
        self._clock = clock
        self._last: dict[str, tuple[object, int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._audited_seq: int | None = None
        self._own_ids: set[str] = set()

    def _created_at(self, d: str) -> int:
        """Strictly growing per ``d``, so relays always keep the newest checkpoint."""
        previous = self._last.get(d)
        now = int(self._clock())
        return now if previous is None else max(now, previous[1] + 1)

    async def run_once(self) -> list[str]:
        """Sign and queue a checkpoint for every head that moved; returns their event ids."""
        published: list[str] = []
        async with self._store.transaction() as tx:
            head = await tx.session.get(LogHeadRow, 1)
            if head is not None and head.event_id is not None:
                position = (head.gseq, head.event_id)
                if self._last.get(LOG_CHECKPOINT_D, (None, 0))[0] != position:
                    tags = [
                        ["d", LOG_CHECKPOINT_D],
                        ["gseq", str(head.gseq)],
                        ["head", head.event_id],
                        ["count", str(head.gseq + 1)],
                        ["alt", "taskhold public log checkpoint"],
                    ]
                    created_at = self._created_at(LOG_CHECKPOINT_D)
                    event = sign_and_queue(
                        tx.session,
                        self._signer,
                        self._kind,
                        "",
                        tags,
                        created_at,
                        queued_at=created_at,
                    )
                    self._last[LOG_CHECKPOINT_D] = (position, created_at)
                    published.append(event["id"])
            audit_head = await read_head(tx.session)
            if audit_head is not None and await self._audit_moved(tx.session, audit_head.seq):
                position_audit = (audit_head.seq, audit_head.hash)
                d = "taskhold-audit-head"
                if self._last.get(d, (None, 0))[0] != position_audit:
                    content, tags = checkpoint_payload(audit_head)
                    created_at = self._created_at(d)
                    event = sign_and_queue(
                        tx.session,
                        self._signer,
                        self._kind,
                        content,
                        tags,
                        created_at,
                        queued_at=created_at,
                    )
                    self._last[d] = (position_audit, created_at)
                    self._audited_seq = audit_head.seq
                    published.append(event["id"])
        self._own_ids.update(published)
        return published

    async def _audit_moved(self, session: AsyncSession, head_seq: int) -> bool:
        """Whether the audit log grew by more than the records of our own checkpoint
        signatures; otherwise every checkpoint would itself call for the next one."""
        if self._audited_seq is None:
            return True
        rows = (
            await session.execute(
                select(AuditRow.action, AuditRow.subject).where(AuditRow.seq > self._audited_seq)
            )
        ).all()
        return any(action != "key.sign" or subject not in self._own_ids for action, subject in rows)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="taskhold-checkpoints")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # a failed round is retried at the next interval
                log.warning("checkpoint_failed", error=type(exc).__name__)
            await asyncio.sleep(self._interval_s)
