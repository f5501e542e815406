"""Refund: cancel the hold invoice so the employer's HTLC goes back to their node (the
Payment Coordinator's :func:`~taskhold.payments.held.cancel_hold`)."""

from __future__ import annotations

from taskhold.payments.held import cancel_hold
from taskhold.tasks import SYSTEM_ACTOR, Task
from taskhold.tasks import commands as c

from .context import EscrowContext, apply_system, log
from .release import RewardBook, held_reward

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
        invoice_state = await cancel_hold(ctx, held_reward(ctx, task), RewardBook(ctx, task))

    def complete(current: Task, now: int) -> c.Command | None:
        return c.CompleteRefund(actor=SYSTEM_ACTOR, at=now, invoice_state=invoice_state)

    done = await apply_system(ctx, task_id, complete)
    log.info("refunded", task_id=task_id, reason=task.refund_ordered_reason)
    return done
