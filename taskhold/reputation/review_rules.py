"""When a receipt and a review record count: the rules the indexer, the review desk and the
rebuild apply to kinds 3913 and 3914.

Pure standard library (the auditor recomputes scores through ``metrics``). Signatures are checked
only through the ``verify`` callable the caller passes; everything else is structure.

The operator key can rotate (a ``KeyRotated`` log entry hands the log to a new key), so "signed by
the operator" is not one key. The rules, strictest that the log can decide:

* a **receipt** must be signed by the key that signed the task's final entry (``ReleaseCompleted``
  or ``RefundCompleted``) and name that entry in its ``e`` tag: the receipt is signed in the same
  transaction as that entry, so no other key can have made it, and a receipt cannot be moved to
  another task or another closing;
* a **record** must be signed by the key current at the final entry or by a later key of the
  chain: it is signed when the review is accepted, after the task closed, so a key retired before
  the close cannot have made it (a leaked old key cannot add reviews of later tasks).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from typing import Any, NamedTuple

__all__ = [
    "FINAL_OPS",
    "BadReview",
    "ClosedTask",
    "ReviewFacts",
    "check_review",
    "receipt_problems",
    "str_tag",
]

FINAL_OPS = frozenset({"ReleaseCompleted", "SplitCompleted", "RefundCompleted"})
"""The entries that close a task PAID or REFUNDED; receipts are signed with them."""


class ClosedTask(NamedTuple):
    """A PAID or REFUNDED task with a worker, as its final log entry shows it."""

    employer: str
    worker: str
    at: int
    amount_msat: int
    entry_id: str
    """The final entry's id: the ``e`` tag of both receipts."""
    signer: str
    """The operator key that signed the final entry, and so the receipts."""
    era: int = 0
    """How many key rotations the log had before the final entry."""


class ReviewFacts(NamedTuple):
    task_id: str
    reviewer: str
    subject: str
    subject_role: str
    rating: int


class BadReview(Exception):
    """The record does not count; the message says why."""


def receipt_problems(
    receipt: object, task_id: str, reviewer: str, closed: ClosedTask, *, receipt_kind: int
) -> list[str]:
    """Why ``receipt`` is not the operator's receipt for ``reviewer`` on ``closed`` (empty
    when it is). The signature is the caller's to check."""
    if not isinstance(receipt, Mapping):
        return ["it is not an event"]
    problems = []
    if receipt.get("kind") != receipt_kind:
        problems.append(f"it is not a kind-{receipt_kind} receipt")
    if receipt.get("pubkey") != closed.signer:
        problems.append(
            f"it is not signed by the operator key that signed the task's final entry"
            f" ({closed.signer})"
        )
    if str_tag(receipt, "task") != task_id:
        problems.append("it is for another task")
    if str_tag(receipt, "p") != reviewer:
        problems.append("it was issued to another pubkey")
    if reviewer == closed.employer:
        role, subject = "employer", closed.worker
    elif reviewer == closed.worker:
        role, subject = "worker", closed.employer
    else:
        return [*problems, "the reviewer took no part in the task"]
    if str_tag(receipt, "role") != role:
        problems.append(f"it does not name the reviewer's role ({role})")
    if str_tag(receipt, "subject") != subject:
        problems.append("it names another counterparty")
    if str_tag(receipt, "e") != closed.entry_id:
        problems.append(f"it does not name the task's final entry ({closed.entry_id})")
    return problems


def check_review(
    record: Mapping[str, Any],
    task_id: str,
    closed: ClosedTask,
    *,
    receipt_kind: int,
    record_signers: Collection[str] | None,
    verify: Callable[[Mapping[str, Any]], bool] | None,
) -> ReviewFacts:
    """The facts of a record about ``closed``, or BadReview.

    ``record_signers``: the operator keys that may have signed the record (the key of the
    task's final entry and every later one); None when the caller vouches for the author."""
    if verify is not None and not verify(record):
        raise BadReview("the review record does not verify")
    if record_signers is not None and record.get("pubkey") not in record_signers:
        raise BadReview(
            "the record is not signed by the operator key of the task's final entry"
            " nor by a key the log was handed to after it"
        )
    try:
        review = json.loads(record["content"])
        body = json.loads(review["content"])
        receipt, rating, reviewer = body["receipt"], body["rating"], str(review["pubkey"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadReview("the record does not hold a review with a receipt") from exc
    if verify is not None and not (verify(review) and verify(receipt)):
        raise BadReview("the review or its receipt does not verify")
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        raise BadReview("the rating is not a whole number from 1 to 5")
    if str_tag(review, "op") != "review" or str_tag(review, "task") != task_id:
        raise BadReview("the review is not signed for this task")
    if not isinstance(receipt, Mapping) or receipt.get("kind") != receipt_kind:
        raise BadReview("the review carries no receipt")
    problems = receipt_problems(receipt, task_id, reviewer, closed, receipt_kind=receipt_kind)
    if problems:
        raise BadReview("the receipt is not valid: " + "; ".join(problems))
    if reviewer == closed.employer:
        subject, subject_role = closed.worker, "worker"
    else:
        subject, subject_role = closed.employer, "employer"
    if str_tag(record, "p") != subject:
        raise BadReview("the record names another subject")
    return ReviewFacts(task_id, reviewer, subject, subject_role, rating)


def str_tag(event: Mapping[str, Any], name: str) -> str | None:
    """The first value of the event's first ``name`` tag; safe on unverified events."""
    tags = event.get("tags")
    for tag in tags if isinstance(tags, list | tuple) else ():
        if isinstance(tag, list | tuple) and len(tag) > 1 and tag[0] == name:
            return str(tag[1])
    return None
