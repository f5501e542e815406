"""NIP-17 notifications: whoever a task waits on hears it from the operator key, once.

A ``LogWriter`` hook (like the review receipts): with every entry, inside its transaction, the
task's waits (:func:`taskhold.tasks.next_actions.next_actions`) are compared with the
``notices`` already sent. Each new one becomes a gift wrap to its recipient, queued in the
outbox in the same commit as the entry: a crash loses no notification and a retried transition
sends none twice (``notice_id`` is the wait's key, hashed). The outbox publisher sends the wrap
to the relays like any other event; the recipient reads it with their key, nobody else can.

The message names the task id, the action and its deadline: never the task's content, a proof,
an invoice or a preimage.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from taskhold.keys.signer import PrivateMessenger
from taskhold.publiclog.writer import queue_signed
from taskhold.store.models import NoticeRow
from taskhold.tasks import Task
from taskhold.tasks.next_actions import Due, next_actions

__all__ = ["Notifier", "notice_tags", "notice_text"]

log = structlog.get_logger("taskhold.notify")


def notice_text(due: Due) -> str:
    """The message a person reads in any NIP-17 client."""
    text = f"taskhold task {due.task_id}: {due.text}."
    if due.deadline_at is not None:
        when = datetime.datetime.fromtimestamp(due.deadline_at, datetime.UTC)
        text += f" Deadline: {when:%Y-%m-%d %H:%M} UTC."
    return text


def notice_tags(due: Due) -> list[list[str]]:
    """What a program reads: ``task``, ``action`` and, if any, ``deadline`` (unix seconds)."""
    tags = [["task", due.task_id], ["action", due.action]]
    if due.deadline_at is not None:
        tags.append(["deadline", str(due.deadline_at)])
    return tags


class Notifier:
    """A ``LogWriter`` hook: one private message per new wait on a participant."""

    def __init__(
        self,
        messenger: PrivateMessenger,
        *,
        arbiters: frozenset[str],
        clock: Callable[[], float],
        withheld: frozenset[str] = frozenset(),
    ) -> None:
        self.messenger = messenger
        self.arbiters = arbiters
        self._clock = clock
        self.withheld = withheld
        """Actions of ``next_actions`` this taskhold does not send: an offer it does not make
        (the on-chain payout, without a swap API), decided by the wiring."""

    async def __call__(self, session: AsyncSession, task: Task, entry: dict[str, Any]) -> None:
        for due in next_actions(task, self.arbiters):
            if due.action in self.withheld:
                continue
            notice_id = hashlib.sha256(due.key.encode()).hexdigest()
            if await session.get(NoticeRow, notice_id) is not None:
                continue
            try:
                wrap = self.messenger.private_message(
                    due.recipient, notice_text(due), notice_tags(due)
                )
            except ValueError as exc:  # a recipient that is no key: never stop the transition
                log.warning(
                    "notice_not_sent", task_id=task.task_id, action=due.action, error=str(exc)
                )
                continue
            now = int(self._clock())
            queue_signed(session, wrap, queued_at=now)
            session.add(
                NoticeRow(
                    notice_id=notice_id,
                    task_id=task.task_id,
                    recipient=due.recipient,
                    action=due.action,
                    deadline_at=due.deadline_at,
                    event_id=wrap["id"],
                    created_at=now,
                )
            )
