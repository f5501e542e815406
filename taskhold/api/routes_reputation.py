"""Reputation routes: a pubkey's score and metrics, a task's review receipts and reviews."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from sqlalchemy import select

from taskhold.errors import Invalid, NotFound, RefusalCode
from taskhold.reputation.receipts import receipt_view
from taskhold.reputation.reviews import review_view
from taskhold.reputation.score import SCORE_VERSION
from taskhold.store.models import ReceiptRow, ReviewRow

from .deps import services_of
from .schemas import READ_PROBLEMS, Receipts, Reputation, Reviews

if TYPE_CHECKING:
    from taskhold.services import Services

__all__ = ["reputation_info", "router"]

router = APIRouter(prefix="/v1", tags=["reputation"])

_HEX64 = re.compile(r"[0-9a-f]{64}")


@router.get(
    "/reputation/{pubkey}",
    summary="A pubkey's score and metrics from the public log",
    response_model=None,
    responses={200: {"model": Reputation}, **READ_PROBLEMS},
)
async def get_reputation(request: Request, pubkey: str) -> dict[str, Any]:
    """Metrics per role, the score (0-1000) and its version, the log range they cover
    (``gseq_from``..``gseq_to`` of the log, review records up to ``rseq_to``), the newest
    published assertion, and what the policies make of the score."""
    if _HEX64.fullmatch(pubkey) is None:
        raise Invalid(
            "pubkey must be 64 lower-case hex characters", code=RefusalCode.INVALID_PUBKEY
        )
    services = services_of(request)
    service, writes = services.reputation, services.writes.reputation
    if service is None or writes is None:
        raise NotFound(
            "this taskhold runs no reputation indexer", code=RefusalCode.REPUTATION_DISABLED
        )
    await service.sync()
    card = service.card_now(pubkey)
    default = services.settings.default_review_window_s
    return {
        **card.to_json(),
        "has_record": service.indexer.has_record(pubkey),
        "published": await service.published(pubkey),
        "policy": {
            "pow_bits": writes.policy.pow_bits_for(card.score),
            "review_window_s": writes.policy.review_window_for(card.score, None, default),
        },
    }


@router.get(
    "/tasks/{task_id}/receipts",
    summary="The operator's review receipts for a task",
    response_model=None,
    responses={200: {"model": Receipts}, **READ_PROBLEMS},
)
async def get_receipts(request: Request, task_id: str) -> dict[str, Any]:
    """One signed receipt (kind 3913) per party once the task is PAID or REFUNDED; a review
    must carry its author's."""
    async with services_of(request).store.transaction() as tx:
        if await tx.load_task(task_id) is None:
            raise NotFound(f"no task {task_id}")
        stmt = select(ReceiptRow).where(ReceiptRow.task_id == task_id).order_by(ReceiptRow.role)
        rows = list((await tx.session.execute(stmt)).scalars())
    return {"task_id": task_id, "receipts": [receipt_view(row) for row in rows]}


@router.get(
    "/tasks/{task_id}/reviews",
    summary="The accepted reviews of a task",
    response_model=None,
    responses={200: {"model": Reviews}, **READ_PROBLEMS},
)
async def get_reviews(request: Request, task_id: str) -> dict[str, Any]:
    async with services_of(request).store.transaction() as tx:
        if await tx.load_task(task_id) is None:
            raise NotFound(f"no task {task_id}")
        stmt = select(ReviewRow).where(ReviewRow.task_id == task_id).order_by(ReviewRow.rseq)
        rows = list((await tx.session.execute(stmt)).scalars())
    return {"task_id": task_id, "reviews": [review_view(row) for row in rows]}


def reputation_info(services: Services) -> dict[str, Any] | None:
    """The reputation rules as ``GET /v1/info`` states them."""
    settings = services.settings
    writes, service = services.writes.reputation, services.reputation
    if writes is None or service is None:
        return None
    return {
        "score_version": SCORE_VERSION,
        "reputation_pubkey": None if service.publisher is None else service.publisher.pubkey,
        "assertion_kind": settings.kind_reputation,
        "receipt_kind": settings.kind_receipt,
        "review_record_kind": settings.kind_review_record,
        "policy": writes.policy.to_json(),
        "rate_limits": None if services.limits is None else services.limits.to_json(),
        "deposits": {
            "instead_of": "proof of work, on one task",
            "pct_of_amount_at_score_0": writes.policy.deposit_pct,
            "min_msat": writes.policy.deposit_min_msat,
            "max_msat": writes.policy.deposit_max_msat,
            "ops": {"lock": "deposit", "claim_forfeit": "deposit-payout"},
            "forfeited_when": [
                "a worker claimed and never sent a proof (a refused one counts) before the task"
                " was refunded: to the employer",
                "an employer let the review window run out: to the worker",
            ],
            "otherwise": "returned (the hold invoice is cancelled) when the task ends",
        },
    }
