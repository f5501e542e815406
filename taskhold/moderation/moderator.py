"""Block, unblock, delist, relist: each one transaction holding the change, its journal entry
(``AuditLog.append``) and the newly signed moderation list, so none happens without the others."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskhold.errors import Invalid, NotFound, RefusalCode
from taskhold.journal.chain import AuditLog
from taskhold.keys.signer import EventSigner
from taskhold.nostr.entries import canonical_json
from taskhold.nostr.verify import verify_event
from taskhold.publiclog.writer import sign_and_queue
from taskhold.store import Store, Tx
from taskhold.store.models import BlockedKeyRow, DelistedTaskRow, ModerationHeadRow

__all__ = [
    "EXIT_OPS",
    "MODERATION_D",
    "MODERATION_RULE",
    "Moderator",
    "moderation_document",
    "newest_list",
    "restore_list",
]

MODERATION_D = "taskhold-moderation"
"""The ``d`` tag of the signed moderation list (kind ``kind_checkpoint``)."""

EXIT_OPS = frozenset({"payout-invoice", "refund-invoice", "deposit-payout", "cancel"})
"""Writes a blocked key may still send: each only pays it what a task already owes it (the
task rules still decide whether it may)."""

MODERATION_RULE = (
    "a blocked key's signed writes are refused (403 blocked_key) except payout-invoice,"
    " refund-invoice, deposit-payout and cancel, so its funded tasks are released or refunded"
    " by the task rules as for anyone; a delisted task leaves the public board and its escrow"
    " continues unchanged"
)

MAX_REASON_CHARS = 500


@dataclass
class Moderator:
    """The operator's moderation over ``store`` (whose log writer re-signs listings), signed
    by ``signer`` and journaled in ``audit``."""

    store: Store
    signer: EventSigner
    audit: AuditLog
    kind: int
    """``kind_checkpoint``: the moderation list is a replaceable event beside the info event."""
    clock: Callable[[], float] = time.time

    async def block(self, pubkey: str, reason: str, *, actor: str) -> dict[str, Any]:
        _check_pubkey(pubkey)
        reason = _reason(reason)
        async with self.store.transaction() as tx:
            row = await tx.session.get(BlockedKeyRow, pubkey)
            if row is None:
                row = BlockedKeyRow(pubkey=pubkey, reason="", blocked_at=0)
                tx.session.add(row)
            row.reason, row.blocked_at = reason, int(self.clock())
            return await self._changed(tx, actor, "moderation.block", pubkey, reason)

    async def unblock(self, pubkey: str, *, actor: str) -> dict[str, Any]:
        _check_pubkey(pubkey)
        async with self.store.transaction() as tx:
            row = await tx.session.get(BlockedKeyRow, pubkey)
            if row is None:
                raise NotFound(f"key {pubkey} is not blocked")
            await tx.session.delete(row)
            return await self._changed(tx, actor, "moderation.unblock", pubkey, None)

    async def delist(self, task_id: str, reason: str, *, actor: str) -> dict[str, Any]:
        reason = _reason(reason)
        async with self.store.transaction() as tx:
            task = await tx.load_task(task_id, for_update=True)  # no listing signed meanwhile
            if task is None:
                raise NotFound(f"no task {task_id}")
            row = await tx.session.get(DelistedTaskRow, task_id)
            if row is None:
                row = DelistedTaskRow(task_id=task_id, reason="", delisted_at=0)
                tx.session.add(row)
            row.reason, row.delisted_at = reason, int(self.clock())
            await tx.session.flush()
            if self.store.log is not None:
                await self.store.log.record_listing(tx.session, task)
            return await self._changed(tx, actor, "moderation.delist", task_id, reason)

    async def relist(self, task_id: str, *, actor: str) -> dict[str, Any]:
        async with self.store.transaction() as tx:
            task = await tx.load_task(task_id, for_update=True)
            row = await tx.session.get(DelistedTaskRow, task_id)
            if task is None or row is None:
                raise NotFound(f"task {task_id} is not delisted")
            await tx.session.delete(row)
            await tx.session.flush()
            if self.store.log is not None:
                await self.store.log.record_listing(tx.session, task)
            return await self._changed(tx, actor, "moderation.relist", task_id, None)

    async def _changed(
        self, tx: Tx, actor: str, action: str, subject: str, reason: str | None
    ) -> dict[str, Any]:
        """Journal the change and sign the whole list as it now stands; returns the event."""
        details = {} if reason is None else {"reason": reason}
        await self.audit.append(tx, actor, action, subject, details)
        session = tx.session
        await session.flush()
        head = await _locked_head(session, lock=self.store.dialect == "postgresql")
        now = int(self.clock())
        created_at = now if head is None else max(now, head.created_at + 1)
        document = await moderation_document(session)
        signed = sign_and_queue(
            session,
            self.signer,
            self.kind,
            canonical_json(document),
            [["d", MODERATION_D]],
            created_at,
            queued_at=now,
        )
        if head is None:
            session.add(ModerationHeadRow(id=1, event_id=signed["id"], created_at=created_at))
        else:
            head.event_id, head.created_at = signed["id"], created_at
        return signed


async def _locked_head(session: AsyncSession, *, lock: bool) -> ModerationHeadRow | None:
    stmt = select(ModerationHeadRow).where(ModerationHeadRow.id == 1)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def moderation_document(session: AsyncSession) -> dict[str, Any]:
    """Every blocked key and delisted task with its reason and time, and the rule."""
    keys = (await session.execute(select(BlockedKeyRow).order_by(BlockedKeyRow.pubkey))).scalars()
    tasks = (
        await session.execute(select(DelistedTaskRow).order_by(DelistedTaskRow.task_id))
    ).scalars()
    return {
        "blocked_keys": [
            {"pubkey": row.pubkey, "reason": row.reason, "since": row.blocked_at} for row in keys
        ],
        "delisted_tasks": [
            {"task_id": row.task_id, "reason": row.reason, "since": row.delisted_at}
            for row in tasks
        ],
        "rule": MODERATION_RULE,
    }


def _check_pubkey(pubkey: str) -> None:
    if len(pubkey) != 64 or any(c not in "0123456789abcdef" for c in pubkey):
        raise Invalid(
            f"{pubkey!r} is not a public key (64 lower-case hex characters)",
            code=RefusalCode.INVALID_PUBKEY,
        )


def _reason(reason: str) -> str:
    text = reason.strip()
    if not text or len(text) > MAX_REASON_CHARS or not text.isprintable():
        raise Invalid(
            f"a moderation reason is 1 to {MAX_REASON_CHARS} printable characters",
            code=RefusalCode.REASON_REQUIRED,
        )
    return text


def newest_list(
    events: list[dict[str, Any]], operator_keys: list[str], *, kind: int
) -> dict[str, Any] | None:
    """The newest moderation list among ``events`` signed by one of ``operator_keys`` (a
    rebuild reads it from the relays: the tables are not in the log entries)."""
    lists = [
        event
        for event in events
        if event.get("kind") == kind
        and event.get("pubkey") in operator_keys
        and ["d", MODERATION_D] in event.get("tags", [])
        and verify_event(event)
    ]
    return max(lists, key=lambda event: (event["created_at"], event["id"]), default=None)


async def restore_list(session: AsyncSession, signed: dict[str, Any]) -> tuple[int, int]:
    """Write a moderation list's blocked keys and delisted tasks into an empty database;
    returns how many of each."""
    document = json.loads(signed["content"])
    keys = [
        BlockedKeyRow(pubkey=str(k["pubkey"]), reason=str(k["reason"]), blocked_at=int(k["since"]))
        for k in document["blocked_keys"]
    ]
    tasks = [
        DelistedTaskRow(
            task_id=str(t["task_id"]), reason=str(t["reason"]), delisted_at=int(t["since"])
        )
        for t in document["delisted_tasks"]
    ]
    session.add_all([*keys, *tasks])
    session.add(ModerationHeadRow(id=1, event_id=signed["id"], created_at=signed["created_at"]))
    return len(keys), len(tasks)
