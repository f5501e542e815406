"""When a review record counts: the rules the indexer applies to each kind-3914 record.

Pure standard library (the auditor recomputes scores through ``metrics``). Signatures are checked
only through the ``verify`` callable the caller passes; everything else is structure: the record
holds the reviewer's signed ``review`` request for its task, the request carries the operator's
receipt (kind 3913) for that task, that reviewer and the role the log shows the reviewer had,
the rating is 1 to 5, and the record names the other party as its subject.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

__all__ = ["BadReview", "ClosedTask", "ReviewFacts", "check_review", "str_tag"]


class ClosedTask(NamedTuple):
    """A PAID or REFUNDED task with a worker, as its log entries show it."""

    employer: str
    worker: str
    at: int
    amount_msat: int


class ReviewFacts(NamedTuple):
    task_id: str
    reviewer: str
    subject: str
    subject_role: str
    rating: int


class BadReview(Exception):
    """The record does not count; the message says why."""


def check_review(
    record: Mapping[str, Any],
    task_id: str,
    closed: ClosedTask,
    *,
    receipt_kind: int,
    operator_pubkey: str | None,
    verify: Callable[[Mapping[str, Any]], bool] | None,
) -> ReviewFacts:
    """The facts of a record about ``closed``, or BadReview."""
    if verify is not None and not verify(record):
        raise BadReview("the review record does not verify")
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
    if operator_pubkey is not None and receipt.get("pubkey") != operator_pubkey:
        raise BadReview("the receipt is not signed by the operator")
    if str_tag(receipt, "task") != task_id or str_tag(receipt, "p") != reviewer:
        raise BadReview("the receipt is for another task or reviewer")
    if reviewer == closed.employer:
        reviewer_role, subject, subject_role = "employer", closed.worker, "worker"
    elif reviewer == closed.worker:
        reviewer_role, subject, subject_role = "worker", closed.employer, "employer"
    else:
        raise BadReview("the reviewer took no part in the task")
    if str_tag(receipt, "role") != reviewer_role:
        raise BadReview("the receipt names another role")
    if str_tag(record, "p") != subject:
        raise BadReview("the record names another subject")
    return ReviewFacts(task_id, reviewer, subject, subject_role, rating)


def str_tag(event: Mapping[str, Any], name: str) -> str | None:
    """The first value of the event's first ``name`` tag."""
    for tag in event.get("tags", ()):
        if len(tag) > 1 and tag[0] == name:
            return str(tag[1])
    return None
