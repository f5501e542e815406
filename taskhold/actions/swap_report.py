"""op ``swap``: a party reports the facts of the Boltz swap it runs for the task.

The employer's client runs the funding (submarine) swap that pays the hold invoice, the
worker's client the payout (reverse) swap whose invoice is the payout invoice; neither swap's
keys nor its preimage pass through taskhold. The report is signed like any write and its
entry carries the request, so the public log shows who said which txid. The rules (who
reports which swap, when, how often, and that a txid never changes) are
``taskhold.tasks.swap_reports``; a report that adds nothing records no entry and answers the
task as it is.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from taskhold.envelope import SignedRequest
from taskhold.store import Tx
from taskhold.tasks import Task
from taskhold.tasks import commands as c

from .content import parse_content
from .pipeline import Outcome, WriteContext, apply_command

__all__ = ["SwapReport", "report_swap"]

_TXID = "^[0-9a-f]{64}$"


class SwapReport(BaseModel):
    """The content of a ``swap`` request. Shapes only: the rules check the values again."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(pattern="^(funding|payout)$")
    swap_id: str = Field(pattern="^[A-Za-z0-9_-]{1,64}$")
    swap_api: str = Field(min_length=1, max_length=200)
    lockup_txid: str | None = Field(default=None, pattern=_TXID)
    claim_txid: str | None = Field(default=None, pattern=_TXID)
    refund_txid: str | None = Field(default=None, pattern=_TXID)


async def report_swap(
    ctx: WriteContext, tx: Tx, request: SignedRequest, task: Task | None
) -> Outcome:
    assert task is not None
    body = parse_content(SwapReport, request.content)
    command = c.ReportSwap(
        actor=request.pubkey,
        at=ctx.escrow.now(),
        role=body.role,
        swap_id=body.swap_id,
        swap_api=body.swap_api,
        lockup_txid=body.lockup_txid,
        claim_txid=body.claim_txid,
        refund_txid=body.refund_txid,
    )
    return Outcome(await apply_command(ctx, tx, request, task, command))
