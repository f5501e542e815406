"""Accepting a review: the receipt is checked, the review numbered and published.

A party of a PAID or REFUNDED task signs a request (kind 3912, ``op`` ``review``) whose content
is ``{"rating": 1-5, "comment": "...", "receipt": <its kind-3913 receipt>}``. It is accepted once
per task and reviewer, and only with a receipt that verifies, names this task, this reviewer, the
role the reviewer had, the counterparty and the task's final entry, and is signed by the key that
signed that entry (``review_rules``): after a key rotation, receipts issued under the old key
still work. The accepted review gets the next ``rseq`` (gap-free) and a kind-3914 record signed by
the operator's current key:

    tags: ["task", id] ["p", subject] ["role", subject's role] ["rseq", n]
          ["e", review request id, "", reviewer]
    content: the reviewer's signed request, whole (canonical JSON), receipt inside

so the record verifies on its own, and reputation assertions can name exactly which reviews they
counted (``rseq_to``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from taskhold.envelope import SignedRequest
from taskhold.errors import Conflict, Forbidden, RefusalCode
from taskhold.keys.signer import EventSigner
from taskhold.nostr import verify_event
from taskhold.nostr.entries import canonical_json
from taskhold.publiclog.writer import sign_and_queue
from taskhold.store.models import LogEntryRow, ReviewRow
from taskhold.tasks import Task

from .receipts import REVIEWABLE_STATES
from .review_rules import FINAL_OPS, ClosedTask, receipt_problems, str_tag

__all__ = ["ReviewContent", "ReviewDesk", "review_view"]


class ReviewContent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: StrictInt = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=2000)
    receipt: dict[str, Any] = Field(
        description="the operator's kind-3913 receipt for this task and reviewer, as served by "
        "GET /v1/tasks/{id}/receipts"
    )


class ReviewDesk:
    def __init__(
        self,
        signer: EventSigner,
        *,
        receipt_kind: int,
        record_kind: int,
        clock: Callable[[], float],
    ) -> None:
        self.signer = signer
        self.receipt_kind = receipt_kind
        self.record_kind = record_kind
        self._clock = clock

    async def accept(
        self, session: AsyncSession, task: Task, request: SignedRequest, body: ReviewContent
    ) -> ReviewRow:
        """Record the review in the caller's transaction, or raise a Refusal."""
        if task.state not in REVIEWABLE_STATES:
            raise Conflict(
                f"the task is {task.state}; reviews open once it is PAID or REFUNDED",
                code=RefusalCode.TASK_NOT_CLOSED,
            )
        reviewer = request.pubkey
        _role, subject, subject_role = self._parties(task, reviewer)
        closed = await _closed(session, task)
        self._check_receipt(body.receipt, task.task_id, reviewer, closed)
        if await session.get(ReviewRow, (task.task_id, reviewer)) is not None:
            raise Conflict(
                "you already reviewed this task; a review counts once",
                code=RefusalCode.ALREADY_REVIEWED,
            )
        last = (await session.execute(select(func.max(ReviewRow.rseq)))).scalar_one_or_none()
        rseq = 0 if last is None else int(last) + 1
        now = int(self._clock())
        record = sign_and_queue(
            session,
            self.signer,
            self.record_kind,
            canonical_json(request.raw),
            [
                ["task", task.task_id],
                ["p", subject],
                ["role", subject_role],
                ["rseq", str(rseq)],
                ["e", request.event_id, "", reviewer],
            ],
            now,
            queued_at=now,
        )
        row = ReviewRow(
            task_id=task.task_id,
            reviewer=reviewer,
            rseq=rseq,
            subject=subject,
            rating=body.rating,
            comment=body.comment,
            request_id=request.event_id,
            record_id=record["id"],
            record=record,
            created_at=now,
        )
        session.add(row)
        await session.flush()
        return row

    @staticmethod
    def _parties(task: Task, reviewer: str) -> tuple[str, str, str]:
        """(reviewer's role, subject, subject's role)."""
        if task.worker_pubkey is None:
            raise Conflict(
                "the task had no worker; there is nobody to review", code=RefusalCode.NO_WORKER
            )
        if reviewer == task.employer_pubkey:
            return "employer", task.worker_pubkey, "worker"
        if reviewer == task.worker_pubkey:
            return "worker", task.employer_pubkey, "employer"
        raise Forbidden(
            "only the task's employer and worker may review it", code=RefusalCode.NOT_A_PARTY
        )

    def _check_receipt(
        self, receipt: dict[str, Any], task_id: str, reviewer: str, closed: ClosedTask
    ) -> None:
        problems = receipt_problems(
            receipt, task_id, reviewer, closed, receipt_kind=self.receipt_kind
        )
        if not verify_event(receipt):
            problems.insert(0, "its id or signature does not verify")
        if problems:
            raise Forbidden(
                "the review's receipt is not valid: "
                + "; ".join(problems)
                + ". Use your receipt from GET /v1/tasks/{id}/receipts",
                code=RefusalCode.INVALID_RECEIPT,
            )


async def _closed(session: AsyncSession, task: Task) -> ClosedTask:
    """What the task's final entry says: the reference its receipts are checked against."""
    stmt = (
        select(LogEntryRow.raw)
        .where(LogEntryRow.task_id == task.task_id)
        .order_by(LogEntryRow.seq.desc())
    )
    for raw in (await session.execute(stmt)).scalars():
        if str_tag(raw, "op") in FINAL_OPS and task.worker_pubkey is not None:
            return ClosedTask(
                task.employer_pubkey,
                task.worker_pubkey,
                int(raw["created_at"]),
                task.amount_msat,
                str(raw["id"]),
                str(raw["pubkey"]),
            )
    raise Conflict("the task has no final log entry yet", code=RefusalCode.TASK_NOT_CLOSED)


def review_view(row: ReviewRow) -> dict[str, Any]:
    return {
        "task_id": row.task_id,
        "reviewer": row.reviewer,
        "subject": row.subject,
        "rating": row.rating,
        "comment": row.comment,
        "rseq": row.rseq,
        "request_id": row.request_id,
        "record": row.record,
        "created_at": row.created_at,
    }
