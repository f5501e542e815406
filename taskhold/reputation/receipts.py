"""Review receipts: the operator's signed word that a pubkey took part in a closed task.

RoboSats' trick (see ``shared/reference/peers.md`` 1.5): a review counts only if it carries a
receipt the coordinator signed for that order and that reviewer, so nobody can review a task
they were not part of. Here the receipt is a kind-3913 event signed by the operator key in the
same transaction as the task's final log entry (``ReleaseCompleted`` → PAID, or
``RefundCompleted`` → REFUNDED), one per party, queued in the outbox like every other event:

    tags: ["task", id] ["p", reviewer] ["role", employer|worker] ["subject", counterparty]
          ["e", final entry id] ["gseq", g]
    content: ""   created_at: the final entry's

A task that closes without a worker (cancelled, expired, refunded unclaimed) has no
counterparty to review and gets no receipts. Only the closing entry gets them: an entry written
for the task after it closed (a deposit's, say) leaves the state PAID or REFUNDED but must not
sign a second pair. The receipt is signed by the key that signs the entry, and that is the rule
it is checked against after a key rotation (``review_rules``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from taskhold.keys.signer import EventSigner
from taskhold.publiclog.writer import sign_and_queue
from taskhold.store.models import ReceiptRow
from taskhold.tasks import Task, TaskState

from .review_rules import FINAL_OPS, str_tag

__all__ = ["REVIEWABLE_STATES", "ReceiptIssuer", "receipt_view"]

REVIEWABLE_STATES = frozenset({TaskState.PAID, TaskState.REFUNDED})


class ReceiptIssuer:
    """A ``LogWriter`` hook: signs both parties' receipts with the task's final entry."""

    def __init__(self, signer: EventSigner, *, kind: int, clock: Callable[[], float]) -> None:
        self.signer = signer
        self.kind = kind
        self._clock = clock

    async def __call__(self, session: AsyncSession, task: Task, entry: dict[str, Any]) -> None:
        if task.state not in REVIEWABLE_STATES or task.worker_pubkey is None:
            return
        if str_tag(entry, "op") not in FINAL_OPS:
            return
        gseq = str_tag(entry, "gseq") or ""
        parties = (
            (task.employer_pubkey, "employer", task.worker_pubkey),
            (task.worker_pubkey, "worker", task.employer_pubkey),
        )
        for reviewer, role, subject in parties:
            tags = [
                ["task", task.task_id],
                ["p", reviewer],
                ["role", role],
                ["subject", subject],
                ["e", str(entry["id"])],
                ["gseq", str(gseq)],
            ]
            signed = sign_and_queue(
                session,
                self.signer,
                self.kind,
                "",
                tags,
                int(entry["created_at"]),
                queued_at=int(self._clock()),
            )
            session.add(
                ReceiptRow(
                    task_id=task.task_id,
                    reviewer=reviewer,
                    role=role,
                    event_id=signed["id"],
                    raw=signed,
                    created_at=int(entry["created_at"]),
                )
            )


def receipt_view(row: ReceiptRow) -> dict[str, Any]:
    return {"reviewer": row.reviewer, "role": row.role, "receipt": row.raw}
