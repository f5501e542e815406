"""The actions whose content is a reason or nothing: claim, approve, reject, dispute, resolve,
cancel. Each maps its content to one command; the state machine decides the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from taskhold.envelope import SignedRequest
from taskhold.store import Tx
from taskhold.tasks import Task
from taskhold.tasks import commands as c

from .content import PUBKEY_PATTERN, parse_content
from .pipeline import Handler, Outcome, WriteContext, apply_command
from .private import details_for_worker

__all__ = [
    "accept_agreement",
    "apply",
    "approve",
    "assign",
    "cancel",
    "claim",
    "open_dispute",
    "propose_agreement",
    "reject",
    "resolve_dispute",
    "revoke",
    "unclaim",
    "withdraw_agreement",
]

M = TypeVar("M", bound=BaseModel)


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class OptionalReason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    winner: str = Field(pattern="^(worker|employer|split)$")
    note: str = Field(min_length=1, max_length=2000)
    worker_msat: int | None = Field(default=None, ge=0, le=2**63 - 1)
    """The worker's share when ``winner`` is ``split``; the employer gets the rest minus the
    fee."""


class Proposal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker_msat: int = Field(ge=0, le=2**63 - 1)
    note: str = Field(default="", max_length=2000)


class Acceptance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker_msat: int = Field(ge=0, le=2**63 - 1)
    """Repeats the standing proposal's amount: a proposal changed meanwhile is not accepted."""


def _action(model: type[M], build: Callable[[M, str, int], c.Command]) -> Handler:
    async def handle(
        ctx: WriteContext, tx: Tx, request: SignedRequest, task: Task | None
    ) -> Outcome:
        body = parse_content(model, request.content)
        command = build(body, request.pubkey, ctx.escrow.now())
        return Outcome(await apply_command(ctx, tx, request, task, command))

    return handle


async def claim(ctx: WriteContext, tx: Tx, request: SignedRequest, task: Task | None) -> Outcome:
    """Claim a funded task. A window taskhold picked is fixed now from both parties' records
    (shorter for good ones); the employer's own choice stands."""
    assert task is not None
    parse_content(Empty, request.content)
    window = _review_window_for(ctx, task, request.pubkey)
    command = c.Claim(
        actor=request.pubkey,
        at=ctx.escrow.now(),
        review_window_s=window,
        details_sealed=details_for_worker(ctx, task, request.pubkey),
    )
    return Outcome(await apply_command(ctx, tx, request, task, command))


def _review_window_for(ctx: WriteContext, task: Task, worker_pubkey: str) -> int | None:
    """The review window fixed when ``worker_pubkey`` becomes the worker; None keeps it."""
    if not task.review_window_by_policy or ctx.reputation is None:
        return None
    fixed = ctx.reputation.review_window(task.employer_pubkey, worker_pubkey, task.review_window_s)
    return fixed if fixed != task.review_window_s else None


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=500)


class Assignee(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker_pubkey: str = Field(pattern=PUBKEY_PATTERN)


async def apply(ctx: WriteContext, tx: Tx, request: SignedRequest, task: Task | None) -> Outcome:
    """Apply to a task in claim mode apply. The applicant signs this request, so it passes the
    same proof-of-work gate (or deposit) as a claim would: an assignment needs no more."""
    assert task is not None
    body = parse_content(Note, request.content)
    command = c.Apply(
        actor=request.pubkey,
        at=ctx.escrow.now(),
        note=body.note,
        max_applications=ctx.escrow.settings.applications_max_per_task,
    )
    return Outcome(await apply_command(ctx, tx, request, task, command))


async def assign(ctx: WriteContext, tx: Tx, request: SignedRequest, task: Task | None) -> Outcome:
    """The employer makes one applicant the worker; the review window is fixed as for a claim."""
    assert task is not None
    body = parse_content(Assignee, request.content)
    command = c.Assign(
        actor=request.pubkey,
        at=ctx.escrow.now(),
        worker_pubkey=body.worker_pubkey,
        review_window_s=_review_window_for(ctx, task, body.worker_pubkey),
        details_sealed=details_for_worker(ctx, task, body.worker_pubkey),
    )
    return Outcome(await apply_command(ctx, tx, request, task, command))


approve = _action(Empty, lambda b, actor, at: c.Approve(actor=actor, at=at))
reject = _action(Reason, lambda b, actor, at: c.Reject(actor=actor, at=at, reason=b.reason))
open_dispute = _action(
    Reason, lambda b, actor, at: c.OpenDispute(actor=actor, at=at, reason=b.reason)
)
resolve_dispute = _action(
    Resolution,
    lambda b, actor, at: c.ResolveDispute(
        actor=actor, at=at, winner=b.winner, note=b.note, worker_msat=b.worker_msat
    ),
)
cancel = _action(OptionalReason, lambda b, actor, at: c.Cancel(actor=actor, at=at, reason=b.reason))
unclaim = _action(Empty, lambda b, actor, at: c.Unclaim(actor=actor, at=at))
revoke = _action(
    OptionalReason, lambda b, actor, at: c.RevokeClaim(actor=actor, at=at, reason=b.reason)
)
propose_agreement = _action(
    Proposal,
    lambda b, actor, at: c.ProposeAgreement(
        actor=actor, at=at, worker_msat=b.worker_msat, note=b.note
    ),
)
accept_agreement = _action(
    Acceptance,
    lambda b, actor, at: c.AcceptAgreement(actor=actor, at=at, worker_msat=b.worker_msat),
)
withdraw_agreement = _action(Empty, lambda b, actor, at: c.WithdrawAgreement(actor=actor, at=at))
