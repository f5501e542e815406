"""``taskhold rebuild``: a fresh database from the operator's public log.

The log is the source of truth and the database its projection. Each entry is verified (its
signature, the operator key current at its place as author, both hash chains, the embedded
request), then replayed through the same pure reducer the writer used; the reducer's state must
hash to the entry's ``state`` tag, or the rebuild stops. Preimages are never read from the log
early: an in-flight escrow is released later by re-deriving its preimage in the key store.

The log starts with the operator key the caller names; a ``KeyRotated`` entry (no task, not
replayed) signed by the current key hands the log to the key it names, from the next ``gseq``.

Review receipts (kind 3913) and review records (kind 3914) are restored too, in the same
transaction, so reputation after a rebuild is the one before it and issued receipts still work
for a review. Each must verify, be signed by a key of the chain and hold to the rules the indexer
applies (``reputation.review_rules``): a receipt is exactly the one taskhold issues with its
task's final entry, signed by that entry's key; a record holds a valid review of a task the log
closed PAID or REFUNDED, and is signed by the final entry's key or a later one. Events that fail
are listed in the report and not written. Records must then run ``rseq`` 0, 1, … without a hole
and with one record per number: a hole would stall the indexer at it and let the next review
take a number the relays already hold, so the rebuild stops instead, as for a log gap.

What the log does not hold and a rebuild cannot restore: idempotency answers (a client retrying
a write across a rebuild gets a replay refusal instead of its first answer), payout attempt
counters (the engine asks the node about the payout's hash again before paying), receipts no
relay kept (they are reported; a review record that embeds one restores it) and the record of
which reputation assertions were published (the first sync after a rebuild publishes the same
scores again, superseding the old assertions on the relays).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from taskhold.errors import Refusal
from taskhold.nostr import verify_event
from taskhold.nostr.entries import state_hash, tag_value
from taskhold.reputation.receipts import REVIEWABLE_STATES
from taskhold.reputation.review_rules import (
    FINAL_OPS,
    BadReview,
    ClosedTask,
    check_review,
    receipt_problems,
)
from taskhold.store import Store
from taskhold.store.codec import task_to_data
from taskhold.store.log import KEY_ROTATED
from taskhold.store.models import (
    InvoiceRow,
    LogEntryRow,
    LogHeadRow,
    ReceiptRow,
    RequestEventRow,
    ReviewRow,
    TaskRow,
    TransitionRow,
)
from taskhold.store.repo import projection_values
from taskhold.tasks.events import event_from_dict
from taskhold.tasks.machine import evolve
from taskhold.tasks.model import Task

__all__ = ["LogRejected", "RebuildReport", "RejectedEvent", "rebuild_from_entries"]


class LogRejected(Refusal):
    """The log failed a check; nothing was written."""

    status = 422
    code = "log_rejected"


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """A receipt or review record the rebuild did not write, and why."""

    kind: int
    event_id: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "event_id": self.event_id, "reason": self.reason}


@dataclass
class RebuildReport:
    entries: int = 0
    tasks: int = 0
    states: dict[str, int] = field(default_factory=dict)
    head_gseq: int = -1
    operator_pubkey: str = ""
    """The operator key current at the head of the log (after any rotation)."""
    operator_keys: list[str] = field(default_factory=list)
    """Every operator key of the log, in the order it was handed on."""
    receipts: int = 0
    reviews: int = 0
    head_rseq: int = -1
    missing_receipts: list[tuple[str, str]] = field(default_factory=list)
    """(task id, role) of parties of closed tasks whose receipt no relay returned."""
    rejected: list[RejectedEvent] = field(default_factory=list)
    """Receipts and records that failed a check: not written."""


def _rotation_target(event: dict[str, Any], current: str) -> str:
    """The key a ``KeyRotated`` entry signed by ``current`` hands the log to."""
    new_key = tag_value(event, "new_key") or ""
    try:
        content = json.loads(event["content"])
        body = content["event"]
    except (ValueError, KeyError, TypeError):
        raise LogRejected(f"rotation {event['id']}: content is not a rotation") from None
    if (
        len(new_key) != 64
        or any(c not in "0123456789abcdef" for c in new_key)
        or new_key == current
        or tag_value(event, "old_key") != current
        or content.get("request") is not None
        or body.get("type") != KEY_ROTATED
        or body.get("new_key") != new_key
        or body.get("old_key") != current
        or any(tag_value(event, name) is not None for name in ("task", "seq", "state", "a"))
    ):
        raise LogRejected(f"rotation {event['id']} is ill-formed")
    return new_key


def _ordered(
    entries: Iterable[dict[str, Any]], operator: str, kind: int
) -> tuple[list[dict[str, Any]], str]:
    """The entries in ``gseq`` order, each signed by the operator key current at its place:
    ``operator`` first, then the key each ``KeyRotated`` entry names. Returns the entries and
    the key current after the last one."""
    by_gseq: dict[int, dict[str, dict[str, Any]]] = {}
    for event in entries:
        if event.get("kind") != kind:
            continue
        if not verify_event(event):
            raise LogRejected(f"entry {event.get('id')} does not verify")
        gseq_text = tag_value(event, "gseq")
        if gseq_text is None or not gseq_text.isdigit():
            raise LogRejected(f"entry {event['id']} has no gseq")
        by_gseq.setdefault(int(gseq_text), {})[event["id"]] = event
    ordered: list[dict[str, Any]] = []
    current = operator
    for expected, gseq in enumerate(sorted(by_gseq)):
        if gseq != expected:
            raise LogRejected(f"gap in the log: gseq {expected} is missing")
        group = list(by_gseq[gseq].values())
        for event in group:
            if event["pubkey"] != current:
                raise LogRejected(
                    f"entry {event['id']} at gseq {gseq} is signed by {event['pubkey']}, not by "
                    f"the operator key {current}"
                )
        if len(group) > 1:
            ids = " and ".join(sorted(event["id"] for event in group))
            raise LogRejected(f"equivocation at gseq {gseq}: {ids}")
        event = group[0]
        if gseq > 0 and tag_value(event, "gprev") != ordered[-1]["id"]:
            raise LogRejected(f"gseq {gseq} does not chain to gseq {gseq - 1}")
        if tag_value(event, "op") == KEY_ROTATED:
            current = _rotation_target(event, current)
        ordered.append(event)
    return ordered, current


@dataclass(frozen=True, slots=True)
class _Closing:
    """A task the log closed PAID or REFUNDED with a worker: what its receipts must name."""

    task: ClosedTask
    gseq: int


async def rebuild_from_entries(
    store: Store,
    entries: Iterable[dict[str, Any]],
    *,
    operator_pubkey: str,
    kind: int = 3910,
    receipts: Iterable[dict[str, Any]] = (),
    review_records: Iterable[dict[str, Any]] = (),
    receipt_kind: int = 3913,
    record_kind: int = 3914,
) -> RebuildReport:
    """Verify and replay the log into ``store``, which must hold no tasks yet, with the
    ``receipts`` (kind 3913) and ``review_records`` (kind 3914) that pass their checks.

    ``operator_pubkey`` is the key the log starts with; ``report.operator_pubkey`` is the one
    it ends with (they differ after a ``KeyRotated`` entry)."""
    tasks: dict[str, Task] = {}
    last_entry: dict[str, str] = {}
    closings: dict[str, _Closing] = {}
    requests_seen: set[str] = set()
    report = RebuildReport()
    ordered, report.operator_pubkey = _ordered(entries, operator_pubkey, kind)
    chain = [operator_pubkey]
    async with store.transaction() as tx:
        session = tx.session
        if (await session.execute(select(func.count()).select_from(TaskRow))).scalar_one():
            raise LogRejected("the database already holds tasks; rebuild into an empty one")
        for event in ordered:
            if tag_value(event, "op") == KEY_ROTATED:  # no task: stored, not replayed
                chain.append(tag_value(event, "new_key") or "")
                gseq = int(tag_value(event, "gseq") or 0)
                session.add(
                    LogEntryRow(
                        gseq=gseq,
                        event_id=event["id"],
                        task_id="",
                        seq=gseq,
                        created_at=int(event["created_at"]),
                        raw=event,
                    )
                )
                continue
            content = json.loads(event["content"])
            task_id = tag_value(event, "task") or ""
            seq = int(tag_value(event, "seq") or 0)
            before = tasks.get(task_id)
            if seq != (before.version + 1 if before else 1):
                raise LogRejected(f"task {task_id}: entry seq {seq} out of order")
            if seq > 1 and tag_value(event, "prev") != last_entry.get(task_id):
                raise LogRejected(f"task {task_id}: seq {seq} does not chain to seq {seq - 1}")
            request = content.get("request")
            if request is not None and not verify_event(request):
                raise LogRejected(f"entry {event['id']}: embedded request does not verify")
            transition = event_from_dict(content["event"])
            after = evolve(before, transition)
            if state_hash(task_to_data(after)) != tag_value(event, "state"):
                raise LogRejected(f"entry {event['id']}: replayed state does not match its hash")
            tasks[task_id] = after
            last_entry[task_id] = event["id"]
            if (
                content["event"]["type"] in FINAL_OPS
                and after.state in REVIEWABLE_STATES
                and after.worker_pubkey is not None
            ):
                closed = ClosedTask(
                    after.employer_pubkey,
                    after.worker_pubkey,
                    int(event["created_at"]),
                    after.amount_msat,
                    event["id"],
                    event["pubkey"],
                    len(chain) - 1,
                )
                closings[task_id] = _Closing(closed, int(tag_value(event, "gseq") or 0))
            session.add(
                TransitionRow(
                    task_id=task_id,
                    version=after.version,
                    event_type=type(transition).__name__,
                    actor=transition.actor,
                    at=transition.at,
                    state_after=after.state.value,
                    event=content["event"],
                    request=request,
                )
            )
            session.add(
                LogEntryRow(
                    gseq=int(tag_value(event, "gseq") or 0),
                    event_id=event["id"],
                    task_id=task_id,
                    seq=seq,
                    created_at=int(event["created_at"]),
                    raw=event,
                )
            )
            if request is not None:
                requests_seen.add(request["id"])
                session.add(
                    RequestEventRow(
                        event_id=request["id"],
                        pubkey=request["pubkey"],
                        op=tag_value(request, "op") or "",
                        task_id=task_id,
                        received_at=int(request["created_at"]),
                    )
                )
            if content["event"]["type"] == "FundingRequested":
                session.add(_invoice_row(after, content["event"]))
        for task in tasks.values():
            session.add(_task_row(task))
        if ordered:
            last = ordered[-1]
            session.add(
                LogHeadRow(
                    id=1,
                    gseq=len(ordered) - 1,
                    event_id=last["id"],
                    created_at=int(last["created_at"]),
                )
            )
        checks = _ReviewChecks(tasks, closings, chain, receipt_kind, record_kind)
        review_rows, embedded = checks.reviews(review_records)
        receipt_rows = checks.receipts([*receipts, *embedded])
        for row in review_rows:
            session.add(row)
            if row.request_id not in requests_seen:
                session.add(
                    RequestEventRow(
                        event_id=row.request_id,
                        pubkey=row.reviewer,
                        op="review",
                        task_id=row.task_id,
                        received_at=row.created_at,
                    )
                )
        session.add_all(receipt_rows)
    issued = {(row.task_id, row.reviewer) for row in receipt_rows}
    report.missing_receipts = [
        (task_id, role)
        for task_id, closing in closings.items()
        for role, party in (("employer", closing.task.employer), ("worker", closing.task.worker))
        if (task_id, party) not in issued
    ]
    report.receipts, report.reviews = len(receipt_rows), len(review_rows)
    report.head_rseq = len(review_rows) - 1
    report.rejected = checks.rejected
    report.operator_keys = chain
    report.entries = len(ordered)
    report.tasks = len(tasks)
    report.head_gseq = len(ordered) - 1
    for task in tasks.values():
        report.states[task.state.value] = report.states.get(task.state.value, 0) + 1
    return report


class _ReviewChecks:
    """Sorts fetched receipts and review records into rows to write and rejections."""

    def __init__(
        self,
        tasks: dict[str, Task],
        closings: dict[str, _Closing],
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

    def _closing(self, event: object, kind: int, what: str) -> _Closing:
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
        for event in _distinct(events):
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
        """The valid records as rows numbered 0, 1, … (else LogRejected), and the receipts
        their reviews carry (a receipt no relay kept is restored from them)."""
        by_rseq: dict[int, dict[str, tuple[ReviewRow, dict[str, Any]]]] = {}
        refused: dict[int, list[str]] = {}
        for event in _distinct(events):
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
                raise LogRejected(f"equivocation at rseq {rseq}: {' and '.join(sorted(group))}")
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
                raise LogRejected(
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


def _distinct(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
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


def _invoice_row(task: Task, event: dict[str, Any]) -> InvoiceRow:
    return InvoiceRow(
        payment_hash_hex=event["payment_hash_hex"],
        task_id=task.task_id,
        funding_round=event["funding_round"],
        payment_request=event["payment_request"],
        amount_msat=task.amount_msat,
        cltv_expiry_delta=event["cltv_expiry_delta"],
        node_state="UNKNOWN",
        accepted_htlc_expiry_height=None,
        updated_at=event["at"],
    )


def _task_row(task: Task) -> TaskRow:
    return TaskRow(task_id=task.task_id, **projection_values(task))
