"""Which fetched review receipts (3913) and review records (3914) a rebuild may restore.

Each must verify, be signed by a key of the log's chain and hold to the rules the indexer
applies (``reputation.review_rules``): a receipt is exactly the one taskhold issues with its
task's closing entry, signed by that entry's key; a record holds a valid review of a task the
log closed PAID or REFUNDED, signed by the closing entry's key or a later one. Records must run
``rseq`` 0, 1, … with one record per number, else the whole rebuild is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from taskhold.nostr import verify_event
from taskhold.nostr.entries import tag_value
from taskhold.store.models import ReceiptRow, ReviewRow
from taskhold.tasks.model import Task

from .review_rules import BadReview, ClosedTask, check_review, receipt_problems

__all__ = ["BrokenRecordChain", "Closing", "RejectedEvent", "ReviewChecks", "distinct_events"]


class BrokenRecordChain(Exception):
    """The valid records leave an ``rseq`` hole or hold two records for one number."""


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """A receipt or review record the rebuild did not write, and why."""

    kind: int
    event_id: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "event_id": self.event_id, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Closing:
    """A task the log closed PAID or REFUNDED with a worker: what its receipts must name."""

    task: ClosedTask
    gseq: int


class ReviewChecks:
    """Sorts fetched receipts and review records into rows to write and rejections."""

    def __init__(
        self,
        tasks: dict[str, Task],
        closings: dict[str, Closing],
        chain: list[str],
        receipt_kind: int,
        record_kind: int,
    ) -> None:
        self.tasks = tasks
        self.closings = closings
        self.chain = chain
        self.receipt_kind = receipt_kind
        self.record_kind = record_kind
        self.rejected: list[RejectedEvent] = []

    def _reject(self, event: object, kind: int, reason: str) -> None:
        event_id = event.get("id") if isinstance(event, dict) else None
        self.rejected.append(RejectedEvent(kind, str(event_id), reason))

    def _closing(self, event: object, kind: int, what: str) -> Closing:
        """The closing of the task an authentic operator-signed ``what`` names."""
        if not isinstance(event, dict) or event.get("kind") != kind:
            raise BadReview(f"not a kind-{kind} {what}")
        if not verify_event(event):
            raise BadReview(f"the {what} does not verify")
        if event["pubkey"] not in self.chain:
            raise BadReview(f"signed by {event['pubkey']}, which is no operator key of this log")
        task_id = tag_value(event, "task") or ""
        closing = self.closings.get(task_id)
        if closing is None:
            if task_id not in self.tasks:
                raise BadReview("it names a task the log does not hold")
            raise BadReview("it names a task the log did not close PAID or REFUNDED with a worker")
        return closing

    def receipts(self, events: Iterable[dict[str, Any]]) -> list[ReceiptRow]:
        """The receipts that are exactly what taskhold issued with their task's final entry."""
        rows: dict[tuple[str, str], ReceiptRow] = {}
        for event in distinct_events(events):
            try:
                row = self._receipt_row(event)
                seen = rows.get((row.task_id, row.reviewer))
                if seen is not None and seen.event_id != row.event_id:
                    raise BadReview(f"a second receipt for this party (first: {seen.event_id})")
            except BadReview as exc:
                self._reject(event, self.receipt_kind, str(exc))
                continue
            rows[(row.task_id, row.reviewer)] = row
        return list(rows.values())

    def _receipt_row(self, event: dict[str, Any]) -> ReceiptRow:
        closing = self._closing(event, self.receipt_kind, "receipt")
        closed = closing.task
        task_id, reviewer = tag_value(event, "task") or "", tag_value(event, "p") or ""
        problems = receipt_problems(
            event, task_id, reviewer, closed, receipt_kind=self.receipt_kind
        )
        if problems:
            raise BadReview("; ".join(problems))
        if reviewer == closed.employer:
            role, subject = "employer", closed.worker
        else:
            role, subject = "worker", closed.employer
        issued = [
            ["task", task_id],
            ["p", reviewer],
            ["role", role],
            ["subject", subject],
            ["e", closed.entry_id],
            ["gseq", str(closing.gseq)],
        ]
        if event["tags"] != issued or event["content"] != "" or event["created_at"] != closed.at:
            raise BadReview("its tags, content or created_at differ from the receipt issued")
        return ReceiptRow(
            task_id=task_id,
            reviewer=reviewer,
            role=role,
            event_id=event["id"],
            raw=event,
            created_at=int(event["created_at"]),
        )

    def reviews(
        self, events: Iterable[dict[str, Any]]
    ) -> tuple[list[ReviewRow], list[dict[str, Any]]]:
        """The valid records as rows numbered 0, 1, … (else BrokenRecordChain), and the receipts
        their reviews carry (a receipt no relay kept is restored from them)."""
        by_rseq: dict[int, dict[str, tuple[ReviewRow, dict[str, Any]]]] = {}
        refused: dict[int, list[str]] = {}
        for event in distinct_events(events):
            try:
                row, receipt = self._review_row(event)
            except BadReview as exc:
                self._reject(event, self.record_kind, str(exc))
                claimed = tag_value(event, "rseq") if isinstance(event, dict) else None
                if claimed is not None and claimed.isdigit():
                    refused.setdefault(int(claimed), []).append(str(exc))
                continue
            by_rseq.setdefault(row.rseq, {})[row.record_id] = (row, receipt)
        rows: list[ReviewRow] = []
        receipts: list[dict[str, Any]] = []
        reviewed: set[tuple[str, str]] = set()
        for rseq in sorted(by_rseq):
            group = by_rseq[rseq]
            if len(group) > 1:
                raise BrokenRecordChain(
                    f"equivocation at rseq {rseq}: {' and '.join(sorted(group))}"
                )
            ((row, receipt),) = group.values()
            if (row.task_id, row.reviewer) in reviewed:
                reason = "a second review of this task by the same reviewer"
                self._reject(row.record, self.record_kind, reason)
                refused.setdefault(rseq, []).append(reason)
                continue
            reviewed.add((row.task_id, row.reviewer))
            rows.append(row)
            receipts.append(receipt)
        for expected, row in enumerate(rows):
            if row.rseq != expected:
                why = "; ".join(refused.get(expected, [])) or "no relay returned it"
                raise BrokenRecordChain(
                    f"review record rseq {expected} is missing ({why}): the records after it"
                    " cannot be placed"
                )
        return rows, receipts

    def _review_row(self, event: dict[str, Any]) -> tuple[ReviewRow, dict[str, Any]]:
        """The row of a valid record and the receipt it carries, or BadReview."""
        closing = self._closing(event, self.record_kind, "review record")
        rseq, task_id = tag_value(event, "rseq") or "", tag_value(event, "task") or ""
        if not rseq.isdigit():
            raise BadReview("the record has no rseq")
        facts = check_review(
            event,
            task_id,
            closing.task,
            receipt_kind=self.receipt_kind,
            record_signers=self.chain[closing.task.era :],
            verify=verify_event,
        )
        review = json.loads(event["content"])  # check_review read and verified it
        body = json.loads(review["content"])
        named: list[Any] = next((t for t in event["tags"] if t[:1] == ["e"]), [])
        if named[1:2] != [review["id"]] or named[3:4] != [facts.reviewer]:
            raise BadReview("its e tag does not name the review it holds and its author")
        if tag_value(event, "role") != facts.subject_role:
            raise BadReview("its role tag is not the subject's role")
        comment = body.get("comment", "")
        if not isinstance(comment, str):
            raise BadReview("the comment is not text")
        row = ReviewRow(
            task_id=task_id,
            reviewer=facts.reviewer,
            rseq=int(rseq),
            subject=facts.subject,
            rating=facts.rating,
            comment=comment,
            request_id=review["id"],
            record_id=event["id"],
            record=event,
            created_at=int(event["created_at"]),
        )
        return row, body["receipt"]


def distinct_events(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each event once, by its whole body: a copy altered under the same id is kept (it fails
    its own check) instead of hiding the genuine one, and a relay's echo is not counted twice."""
    seen: dict[str, dict[str, Any]] = {}
    for event in events:
        try:
            key = json.dumps(event, sort_keys=True)
        except (TypeError, ValueError):
            key = repr(event)
        seen.setdefault(key, event)
    return list(seen.values())
