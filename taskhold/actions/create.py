"""create: an employer posts a task. The task id is the id of the signed create request."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from taskhold.envelope import SignedRequest
from taskhold.errors import Invalid, RefusalCode
from taskhold.escrow.sizing import needs_renewal
from taskhold.store import Tx
from taskhold.tasks import Task
from taskhold.tasks import commands as c
from taskhold.verification import parse_spec

from .content import PUBKEY_PATTERN, parse_content
from .intake import check_intake
from .milestones import create_milestones
from .pipeline import Outcome, WriteContext, apply_command
from .private import HASH_PATTERN, Recipient, SealedText, check_private_details
from .terms import check_amount, claim_timeout_for, fee_for, windows

__all__ = ["CreateContent", "create"]


class CreateContent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    amount_msat: int = Field(gt=0)
    deadline_at: int = Field(gt=0, description="unix seconds by which the proof must be in")
    acceptance: dict[str, Any] | None = None
    review_window_s: int | None = Field(default=None, ge=0)
    """Left out, taskhold picks it: the default, shortened at claim for parties with a record."""
    dispute_window_s: int | None = Field(default=None, ge=0)
    deposit: bool = False
    """Lock a deposit (op ``deposit``, before funding) instead of proof of work on requests."""
    claim_mode: Literal["open", "apply", "direct"] = "open"
    """Who may become the worker: the first claim, an applicant the employer assigns, or only
    ``direct_worker``."""
    direct_worker: str | None = Field(default=None, pattern=PUBKEY_PATTERN)
    claim_timeout_s: int | None = Field(default=None, gt=0)
    """Time from a claim to its first proof; left out, ``default_claim_timeout_s`` capped at
    half the time to the deadline."""
    visibility: Literal["public", "private"] = "public"
    """``private``: no clear description; the details are sealed (see ``.private``)."""
    details_hash: str | None = Field(default=None, pattern=HASH_PATTERN)
    details_sealed: dict[Recipient, SealedText] | None = Field(default=None, max_length=32)
    """Recipient pubkey -> the details payload NIP-44 v2 encrypted by the employer to them."""


async def create(ctx: WriteContext, tx: Tx, request: SignedRequest, task: Task | None) -> Outcome:
    await check_intake(ctx, tx)
    if "milestones" in request.content:  # a series: one task per milestone (see .milestones)
        return await create_milestones(ctx, tx, request)
    body = parse_content(CreateContent, request.content)
    settings = ctx.escrow.settings
    check_amount(settings, body.amount_msat)
    spec = parse_spec(body.acceptance)
    review, dispute, by_policy = windows(settings, body.review_window_s, body.dispute_window_s)
    now = ctx.escrow.now()
    renewal_needed = needs_renewal(
        now=now,
        deadline_at=body.deadline_at,
        review_window_s=review,
        dispute_window_s=dispute,
        settings=settings,
    )
    if await tx.load_task(request.event_id) is not None:
        raise Invalid("a task with this id already exists", code=RefusalCode.TASK_EXISTS)
    sealed = check_private_details(
        ctx,
        employer=request.pubkey,
        visibility=body.visibility,
        description=body.description,
        details_hash=body.details_hash,
        details_sealed=body.details_sealed,
        direct_worker=body.direct_worker,
    )
    command = c.CreateTask(
        actor=request.pubkey,
        at=now,
        task_id=request.event_id,
        title=body.title,
        description=body.description,
        acceptance=spec.model_dump(exclude_defaults=True),
        amount_msat=body.amount_msat,
        fee_msat=fee_for(settings, body.amount_msat),
        deadline_at=body.deadline_at,
        review_window_s=review,
        dispute_window_s=dispute,
        deadline_policy=settings.deadline_policy,
        review_window_by_policy=by_policy,
        deposit_pledged=body.deposit,
        claim_mode=body.claim_mode,
        direct_worker=body.direct_worker,
        claim_timeout_s=claim_timeout_for(settings, body.claim_timeout_s, body.deadline_at, now),
        rejection_policy=settings.rejection_policy,
        renewal_needed=renewal_needed,
        visibility=body.visibility,
        details_hash=body.details_hash,
        details_sealed=sealed,
    )
    created = await apply_command(ctx, tx, request, None, command)
    return Outcome(created, status=201)
