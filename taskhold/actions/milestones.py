"""create with ``milestones``: an employer posts an ordered series, one task per milestone.

All milestones are created in the one transaction of the create request (all or none), in
order, each with the signed request embedded in its ``TaskCreated``. The first milestone's task
id is the request's id and is the series id; the others derive from it
(``tasks.milestones.milestone_task_id``). Funding opens here for every milestone (``upfront``)
or for the first (``sequential``); the escrow engine opens the rest (``escrow.series``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from taskhold.envelope import SignedRequest
from taskhold.errors import Invalid, RefusalCode
from taskhold.escrow.series import open_milestone_funding
from taskhold.escrow.sizing import blocks_needed, needs_renewal
from taskhold.store import Tx
from taskhold.tasks import Task
from taskhold.tasks import commands as c
from taskhold.tasks.milestones import SERIES_CLAIM_MODE, milestone_task_id, milestone_view
from taskhold.verification import parse_spec

from .content import PUBKEY_PATTERN, parse_content
from .open_invoices import check_open_invoices
from .pipeline import Outcome, WriteContext, apply_command
from .terms import check_amount, claim_timeout_for, fee_for, windows

__all__ = ["MilestonesContent", "create_milestones"]


class MilestoneContent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    amount_msat: int = Field(gt=0)
    deadline_at: int = Field(gt=0, description="unix seconds by which its proof must be in")
    acceptance: dict[str, Any] | None = None


class MilestonesContent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    milestones: list[MilestoneContent]
    funding_mode: Literal["upfront", "sequential"]
    """``upfront``: every hold invoice now; ``sequential``: the next once one is PAID."""
    review_window_s: int | None = Field(default=None, ge=0)
    dispute_window_s: int | None = Field(default=None, ge=0)
    claim_mode: Literal["open", "apply", "direct"] = "open"
    """How the first milestone gets its worker (as for a task on its own)."""
    direct_worker: str | None = Field(default=None, pattern=PUBKEY_PATTERN)
    claim_timeout_s: int | None = Field(default=None, gt=0)
    same_worker: bool = True
    """Later milestones go to the first milestone's worker (claim mode ``series``); false gives
    each the series' claim mode."""


async def create_milestones(ctx: WriteContext, tx: Tx, request: SignedRequest) -> Outcome:
    body = parse_content(MilestonesContent, request.content)
    settings = ctx.escrow.settings
    count = len(body.milestones)
    if not 1 <= count <= settings.milestones_max:
        raise Invalid(
            f"a series has 1 to {settings.milestones_max} milestones, not {count}",
            code=RefusalCode.BAD_MILESTONES,
        )
    review, dispute, by_policy = windows(settings, body.review_window_s, body.dispute_window_s)
    now = ctx.escrow.now()
    renewals = _check_schedule(ctx, body, review, dispute, now)
    specs = [parse_spec(milestone.acceptance) for milestone in body.milestones]
    if await tx.load_task(request.event_id) is not None:
        raise Invalid("a task with this id already exists", code=RefusalCode.TASK_EXISTS)
    later_mode: str = body.claim_mode
    if body.same_worker and body.claim_mode != "direct":
        later_mode = SERIES_CLAIM_MODE
    created: list[Task] = []
    for index, (milestone, spec, renewal_needed) in enumerate(
        zip(body.milestones, specs, renewals, strict=True)
    ):
        claim_mode: str = body.claim_mode if index == 0 else later_mode
        command = c.CreateTask(
            actor=request.pubkey,
            at=now,
            task_id=milestone_task_id(request.event_id, index),
            title=milestone.title,
            description=milestone.description,
            acceptance=spec.model_dump(exclude_defaults=True),
            amount_msat=milestone.amount_msat,
            fee_msat=fee_for(settings, milestone.amount_msat),
            deadline_at=milestone.deadline_at,
            review_window_s=review,
            dispute_window_s=dispute,
            deadline_policy=settings.deadline_policy,
            review_window_by_policy=by_policy,
            claim_mode=claim_mode,
            direct_worker=body.direct_worker if claim_mode == "direct" else None,
            claim_timeout_s=claim_timeout_for(
                settings, body.claim_timeout_s, milestone.deadline_at, now
            ),
            rejection_policy=settings.rejection_policy,
            series_id=request.event_id,
            milestone_index=index,
            milestone_count=count,
            funding_mode=body.funding_mode,
            renewal_needed=renewal_needed,
        )
        created.append(await apply_command(ctx, tx, request, None, command))
    await check_open_invoices(
        tx, request.pubkey, request.event_id, settings.max_open_invoices_per_key
    )
    opening = created if body.funding_mode == "upfront" else created[:1]
    for index, task in enumerate(opening):
        created[index] = await open_milestone_funding(ctx.escrow, tx, task)
    extra = {"milestones": [milestone_view(task) for task in created]}
    return Outcome(created[0], status=201, extra=extra, also=tuple(created[1:]))


def _check_schedule(
    ctx: WriteContext, body: MilestonesContent, review: int, dispute: int, now: int
) -> list[bool]:
    """Amounts within the per-task bounds, deadlines strictly increasing, and each milestone
    within ``max_task_duration_s`` from when its hold can open: now (upfront, and the first
    milestone), else from the previous milestone's deadline on (the engine waits until it fits
    when holds are not renewed). Returns, per milestone, whether it outlasts one hold and so is
    renewed (``renewal_needed``), as a task on its own: counted from now, since a sequential one
    opens as soon as the one before it is PAID, which may be well before that deadline."""
    settings = ctx.escrow.settings
    previous: int | None = None
    renewals: list[bool] = []
    for index, milestone in enumerate(body.milestones):
        check_amount(settings, milestone.amount_msat)
        if previous is not None and milestone.deadline_at <= previous:
            raise Invalid(
                f"milestone {index + 1}'s deadline must come after milestone {index}'s",
                code=RefusalCode.BAD_MILESTONES,
            )
        opens_at = now if body.funding_mode == "upfront" or previous is None else previous
        needs_renewal(
            now=max(now, opens_at),
            deadline_at=milestone.deadline_at,
            review_window_s=review,
            dispute_window_s=dispute,
            settings=settings,
        )
        renewals.append(
            bool(settings.max_task_duration_s)
            and blocks_needed(
                now=now,
                deadline_at=milestone.deadline_at,
                review_window_s=review,
                dispute_window_s=dispute,
                settings=settings,
            )
            > settings.max_cltv_expiry_delta
        )
        previous = milestone.deadline_at
    return renewals
