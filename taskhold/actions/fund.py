"""fund: the employer asks for the task's hold invoice.

Admission control (:mod:`taskhold.escrow.admission`) runs first: no invoice is issued that the
escrow node could not carry. The node call happens while the task row is locked, so two
concurrent requests cannot make two invoices; a retry after a crash reuses the invoice the node
already has for the derived hash.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from taskhold.envelope import SignedRequest
from taskhold.escrow.admission import admit, placing
from taskhold.escrow.funding import ensure_hold_invoice, invoice_row
from taskhold.store import Tx
from taskhold.tasks import Task, decide
from taskhold.tasks import commands as c

from .content import parse_content
from .intake import check_intake
from .open_invoices import check_open_invoices
from .pipeline import Outcome, WriteContext, apply_command

__all__ = ["fund"]


class FundContent(BaseModel):
    model_config = ConfigDict(extra="forbid")


async def fund(ctx: WriteContext, tx: Tx, request: SignedRequest, task: Task | None) -> Outcome:
    assert task is not None
    await check_intake(ctx, tx)
    parse_content(FundContent, request.content)
    now = ctx.escrow.now()
    funding_round = task.funding_round + 1

    def command(payment_hash_hex: str, payment_request: str, cltv: int) -> c.RequestFunding:
        return c.RequestFunding(
            actor=request.pubkey,
            at=now,
            funding_round=funding_round,
            payment_hash_hex=payment_hash_hex,
            payment_request=payment_request,
            cltv_expiry_delta=cltv,
            invoice_expires_at=now + ctx.escrow.settings.invoice_expiry_s,
        )

    decide(task, command("", "", 0), ctx.arbiters)  # role and state first: no node call if refused
    await check_open_invoices(
        tx, request.pubkey, task.task_id, ctx.escrow.settings.max_open_invoices_per_key
    )
    await admit(ctx.escrow, tx, request.pubkey, task.amount_msat)
    async with placing(ctx.escrow, task.amount_msat):
        invoice = await ensure_hold_invoice(ctx.escrow, task, funding_round)
    await ctx.escrow.fault_hook("after_hold_invoice")
    funded = await apply_command(
        ctx,
        tx,
        request,
        task,
        command(invoice.payment_hash.hex(), invoice.payment_request, invoice.cltv_expiry_delta),
    )
    await tx.put_invoice(invoice_row(task, invoice, funding_round, now))
    return Outcome(funded)
