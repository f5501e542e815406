"""A deposit's hold invoice held for another amount than the deposit is cancelled, never kept.

Nodes accept overpayment (lnd up to twice the amount): a forfeit would settle the excess to
the operator, and a short deposit would stand for less than the task asks. So, as for a task's
hold invoice (``funding``), the invoice is cancelled (every HTLC goes back to its payer) and
the deposit ends returned. Cancel first, record second: a crash in between leaves a cancelled
invoice, which the next observation records as returned.
"""

from __future__ import annotations

from taskhold.lightning.base import InvoiceStatus
from taskhold.tasks import SYSTEM_ACTOR
from taskhold.tasks import commands as c
from taskhold.tasks.model import DepositState

from .context import EscrowContext, apply_system, log

__all__ = ["refused_wrong_amount"]


async def refused_wrong_amount(ctx: EscrowContext, task_id: str, status: InvoiceStatus) -> bool:
    """Whether the held deposit ``status`` reports was paid with the wrong amount, and so
    cancelled (and recorded returned); False for a right amount or a deposit no longer open."""
    hash_hex = status.payment_hash.hex()
    async with ctx.store.transaction() as tx:
        task = await tx.load_task(task_id)
    deposit = None if task is None else task.deposit_by_hash(hash_hex)
    if deposit is None or deposit.state is not DepositState.OPEN:
        return False
    if status.amount_paid_msat == deposit.amount_msat:
        return False
    await ctx.lightning.cancel_invoice(status.payment_hash)
    await ctx.audit.record(
        SYSTEM_ACTOR,
        "escrow.deposit_cancel",
        task_id,
        {"payment_hash": hash_hex, "reason": "wrong_amount_held"},
        store=ctx.store,
    )
    log.warning(
        "wrong_deposit_amount_held",
        task_id=task_id,
        amount_msat=deposit.amount_msat,
        amount_paid_msat=status.amount_paid_msat,
    )
    await apply_system(
        ctx,
        task_id,
        lambda current, now: c.DepositInvoiceCancelled(
            actor=SYSTEM_ACTOR, at=now, payment_hash_hex=hash_hex
        ),
    )
    return True
