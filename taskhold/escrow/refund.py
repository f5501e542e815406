"""Refund: cancel the hold invoice so the employer's HTLC goes back to their node."""

from __future__ import annotations

from taskhold.errors import Fault
from taskhold.lightning.base import InvoiceNotFound, InvoiceState, WrongInvoiceState
from taskhold.tasks import Task
from taskhold.tasks import commands as c

from .context import EscrowContext, apply_system, log

__all__ = ["refund"]


async def refund(ctx: EscrowContext, task_id: str) -> Task | None:
    """Finish an ordered refund. Cancel is idempotent at the node, so a retry after a crash
    simply cancels again and records the completion once.

    The entry's ``invoice_state`` is one of the three the auditor accepts: ``CANCELED``,
    ``NONE`` (the task never had an invoice) or ``NOT_FOUND`` (the node no longer knows it, so
    it holds nothing to return)."""
    async with ctx.store.transaction() as tx:
        task = await tx.load_task(task_id)
    if task is None or not task.refund_ordered:
        return task
    invoice_state = "NONE"
    if task.payment_hash_hex is not None:
        payment_hash = bytes.fromhex(task.payment_hash_hex)
        try:
            await ctx.lightning.cancel_invoice(payment_hash)
            invoice_state = InvoiceState.CANCELED.value
        except InvoiceNotFound:
            invoice_state = "NOT_FOUND"
        except WrongInvoiceState as exc:
            status = await ctx.lightning.lookup_invoice(payment_hash)
            raise Fault(
                f"task {task_id}: cannot cancel a hold invoice in state {status.state}"
            ) from exc
        await ctx.audit.record(  # audit log (issue 6)
            "system",
            "escrow.cancel",
            task_id,
            {"payment_hash": task.payment_hash_hex, "invoice_state": invoice_state},
            store=ctx.store,
        )
        await ctx.fault_hook("after_cancel")

    def complete(current: Task, now: int) -> c.Command | None:
        return c.CompleteRefund(actor="system", at=now, invoice_state=invoice_state)

    done = await apply_system(ctx, task_id, complete)
    log.info("refunded", task_id=task_id, reason=task.refund_ordered_reason)
    return done
