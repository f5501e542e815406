"""Refund: cancel the hold invoice so the employer's HTLC goes back to their node (the
Payment Coordinator's :func:`~taskhold.payments.held.cancel_hold`)."""

from __future__ import annotations

from taskhold.payments.held import cancel_hold, still_held
from taskhold.tasks import SYSTEM_ACTOR, Task
from taskhold.tasks import commands as c

from .context import EscrowContext, apply_system, log
from .release import RewardBook, held_reward, settle_under_live_payout
from .split import payout_may_land

__all__ = ["refund"]


async def refund(ctx: EscrowContext, task_id: str) -> Task | None:
    """Finish an ordered refund. Cancel is idempotent at the node, so a retry after a crash
    simply cancels again and records the completion once.

    The entry's ``invoice_state`` is one of the three the auditor accepts: ``CANCELED``,
    ``NONE`` (the task never had an invoice) or ``NOT_FOUND`` (the node no longer knows it, so
    it holds nothing to return).

    A verified task's hold is never cancelled while its payout (a split's: either share) may
    land: the refund was ordered on the node's word that the payout failed, and asked again
    right before cancelling, the node may say otherwise (it misread, or the payee took an HTLC
    it held). The hold is settled instead, which supersedes the refund, and the release
    finishes the task (:func:`~taskhold.payments.held.still_held`)."""
    async with ctx.store.transaction() as tx:
        task = await tx.load_task(task_id)
    if task is None or not task.refund_ordered:
        return task
    if await payout_may_land(ctx, task) and await still_held(ctx, held_reward(ctx, task)):
        log.warning("refund_superseded_by_live_payout", task_id=task_id)
        assert task.accepted_htlc_expiry_height is not None
        blocks_left = task.accepted_htlc_expiry_height - await ctx.lightning.block_height()
        await settle_under_live_payout(ctx, task_id, blocks_left)
        return None
    invoice_state = "NONE"
    if task.payment_hash_hex is not None:
        invoice_state = await cancel_hold(ctx, held_reward(ctx, task), RewardBook(ctx, task))

    def complete(current: Task, now: int) -> c.Command | None:
        return c.CompleteRefund(actor=SYSTEM_ACTOR, at=now, invoice_state=invoice_state)

    done = await apply_system(ctx, task_id, complete)
    log.info("refunded", task_id=task_id, reason=task.refund_ordered_reason)
    return done
