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

from .content import parse_content
from .pipeline import Handler, Outcome, WriteContext, apply_command

__all__ = [
    "accept_agreement",
    "approve",
    "cancel",
    "claim",
    "open_dispute",
    "propose_agreement",
    "reject",
    "resolve_dispute",
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

    winner: str = Field(pattern="^(worker|employer)$")
    note: str = Field(min_length=1, max_length=2000)


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
    window = None
    if task.review_window_by_policy and ctx.reputation is not None:
        fixed = ctx.reputation.review_window(
            task.employer_pubkey, request.pubkey, task.review_window_s
        )
        window = fixed if fixed != task.review_window_s else None
    command = c.Claim(actor=request.pubkey, at=ctx.escrow.now(), review_window_s=window)
    return Outcome(await apply_command(ctx, tx, request, task, command))


approve = _action(Empty, lambda b, actor, at: c.Approve(actor=actor, at=at))
reject = _action(Reason, lambda b, actor, at: c.Reject(actor=actor, at=at, reason=b.reason))
open_dispute = _action(
    Reason, lambda b, actor, at: c.OpenDispute(actor=actor, at=at, reason=b.reason)
)
resolve_dispute = _action(
    Resolution,
    lambda b, actor, at: c.ResolveDispute(actor=actor, at=at, winner=b.winner, note=b.note),
)
cancel = _action(OptionalReason, lambda b, actor, at: c.Cancel(actor=actor, at=at, reason=b.reason))
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
