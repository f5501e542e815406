"""Renewal: carry a task that outlasts one hold into the next funding round.

The rules are the task machine's (``taskhold.tasks.rounds``); this module does the node's side,
one idempotent step each, so the engine's passes and its reconciliation are the crash recovery:

- :func:`renew` opens round ``r + 1`` when the current hold is within ``renewal_lead_blocks``
  of its expiry and the task still needs time past it: a hold invoice for the same amount and
  the preimage derived for that round, recorded by ``RenewalOpened``. A crash before the
  record makes the next pass ask the node for the same hash again, which returns the invoice
  it already made;
- :func:`observe_hold` routes a node report to the task's current round (``funding``) or to its
  open renewal: once the renewal's HTLC is held the task moves to it (``Renewed``), never
  while a payout or refund may be under way;
- :func:`retire` cancels the rounds the task no longer holds on (``tasks.rounds.
  rounds_to_cancel``), then records each (``RoundCancelled``). Cancel is idempotent at the
  node, so a crash in between cancels again on the next pass; the current round is never
  touched here, so it is safe beside a payout job.
"""

from __future__ import annotations

import contextlib

from taskhold.lightning.base import (
    InvoiceNotFound,
    InvoiceState,
    InvoiceStatus,
)
from taskhold.tasks import SYSTEM_ACTOR, Task
from taskhold.tasks import commands as c
from taskhold.tasks.rounds import renewable, rounds_to_cancel

from .context import EscrowContext, apply_system, log
from .funding import hold_invoice, invoice_row, observe_invoice
from .sizing import blocks_needed

__all__ = ["observe_hold", "renew", "renewal_due", "retire"]


def renewal_due(ctx: EscrowContext, task: Task, height: int) -> bool:
    """The current hold nears its end (within the lead, before the guardian's margin) and the
    task's windows still need more blocks than it has left. Only a task taken as outlasting one
    hold (``renewal_needed``) is renewed: a shorter one's employer was never told to pay twice,
    so its hold ends by the deadline policy, as it always did."""
    if not task.renewal_needed or not renewable(task) or task.renewal_round is not None:
        return False
    if task.retiring_payment_hash_hex is not None or task.accepted_htlc_expiry_height is None:
        return False
    blocks_left = task.accepted_htlc_expiry_height - height
    if not ctx.settings.guard_blocks < blocks_left <= ctx.settings.renewal_lead_blocks:
        return False
    needed = blocks_needed(
        now=ctx.now(),
        deadline_at=task.deadline_at,
        review_window_s=task.review_window_s,
        dispute_window_s=task.dispute_window_s,
        settings=ctx.settings,
    )
    return needed > blocks_left


async def renew(ctx: EscrowContext, task_id: str, height: int) -> Task | None:
    """Open the next round's hold invoice if it is due. Safe to call on every pass."""
    async with ctx.store.transaction() as tx:
        task = await tx.load_task(task_id)
    if task is None or not renewal_due(ctx, task, height):
        return task
    funding_round = task.next_round
    assert task.accepted_htlc_expiry_height is not None
    blocks_to_guard = task.accepted_htlc_expiry_height - height - ctx.settings.guard_blocks
    invoice = await hold_invoice(
        ctx,
        task,
        key=(task_id, funding_round),
        amount_msat=task.amount_msat,
        memo=f"taskhold {task_id[:16]} round {funding_round}: {task.title[:64]}",
        # payable until the guardian decides on the current hold, so it is asked for once
        expiry_seconds=max(
            ctx.settings.invoice_expiry_s, blocks_to_guard * ctx.settings.block_time_s
        ),
    )
    await ctx.fault_hook("after_renewal_invoice")
    payment_hash_hex = invoice.payment_hash.hex()
    async with ctx.store.transaction() as tx:  # first: the hash is known as taskhold's own
        if await tx.get_invoice(payment_hash_hex) is None:
            await tx.put_invoice(invoice_row(task, invoice, funding_round, ctx.now()))

    def open_renewal(current: Task, now: int) -> c.Command | None:
        if not renewable(current) or current.next_round != funding_round:
            return None
        return c.OpenRenewal(
            actor=SYSTEM_ACTOR,
            at=now,
            funding_round=funding_round,
            payment_hash_hex=payment_hash_hex,
            payment_request=invoice.payment_request,
            cltv_expiry_delta=invoice.cltv_expiry_delta,
            invoice_expires_at=now + invoice.expiry_seconds,
        )

    opened = await apply_system(ctx, task_id, open_renewal)
    if opened is None or opened.renewal_payment_hash_hex != payment_hash_hex:
        # decided meanwhile: nobody was shown the invoice, so it is only withdrawn
        await _cancel_at_node(ctx, task_id, payment_hash_hex)
        return opened
    log.info("renewal_opened", task_id=task_id, funding_round=funding_round)
    return opened


async def observe_hold(ctx: EscrowContext, task_id: str, status: InvoiceStatus) -> None:
    """Hand a node report to the round it is about: the current one or the open renewal.
    Reports of a retired round change nothing (its cancel is :func:`retire`'s). Idempotent."""
    async with ctx.store.transaction() as tx:
        task = await tx.load_task(task_id)
    if task is None:
        return
    payment_hash_hex = status.payment_hash.hex()
    if payment_hash_hex == task.renewal_payment_hash_hex:
        await _observe_renewal(ctx, task_id, status)
    elif payment_hash_hex == task.payment_hash_hex:
        await observe_invoice(ctx, task_id, status)


async def _observe_renewal(ctx: EscrowContext, task_id: str, status: InvoiceStatus) -> None:
    payment_hash_hex = status.payment_hash.hex()
    if status.state is InvoiceState.ACCEPTED:
        expiry = status.accepted_htlc_expiry_height
        if expiry is None:
            return
        await ctx.fault_hook("after_renewal_htlc_accepted")

        def complete(task: Task, now: int) -> c.Command | None:
            if not renewable(task) or task.renewal_payment_hash_hex != payment_hash_hex:
                return None
            if status.amount_paid_msat != task.amount_msat:
                return None  # never taken: cancelled below like any renewal the task refuses
            return c.CompleteRenewal(
                actor=SYSTEM_ACTOR,
                at=now,
                payment_hash_hex=payment_hash_hex,
                accepted_htlc_expiry_height=expiry,
                amount_paid_msat=status.amount_paid_msat,
            )

        task = await apply_system(ctx, task_id, complete)
        if task is not None and task.renewal_payment_hash_hex == payment_hash_hex:
            reason = (
                f"the held {status.amount_paid_msat} msat is not the task's {task.amount_msat}"
                if renewable(task)
                else f"the task is {task.state.value} and no longer takes a renewal"
            )
            await _cancel_round(ctx, task_id, payment_hash_hex, reason)
        await retire(ctx, task_id)
    elif status.state is InvoiceState.CANCELED:
        await _record_cancelled(ctx, task_id, payment_hash_hex, "the renewal was not paid in time")


async def retire(ctx: EscrowContext, task_id: str) -> Task | None:
    """Cancel every round the task no longer holds on, and record it."""
    async with ctx.store.transaction() as tx:
        task = await tx.load_task(task_id)
    if task is None:
        return None
    for payment_hash_hex in rounds_to_cancel(task):
        reason = (
            "renewed: the next round is held"
            if payment_hash_hex == task.retiring_payment_hash_hex
            else f"the task is {task.state.value}"
            + (" with a refund ordered" if task.refund_ordered else "")
            + " and no longer takes a renewal"
        )
        task = await _cancel_round(ctx, task_id, payment_hash_hex, reason) or task
    return task


async def _cancel_round(
    ctx: EscrowContext, task_id: str, payment_hash_hex: str, reason: str
) -> Task | None:
    await _cancel_at_node(ctx, task_id, payment_hash_hex)
    await ctx.fault_hook("after_round_cancel")
    return await _record_cancelled(ctx, task_id, payment_hash_hex, reason)


async def _cancel_at_node(ctx: EscrowContext, task_id: str, payment_hash_hex: str) -> None:
    with contextlib.suppress(InvoiceNotFound):  # then the node holds nothing for it
        await ctx.lightning.cancel_invoice(bytes.fromhex(payment_hash_hex))
    await ctx.audit.record(
        SYSTEM_ACTOR,
        "escrow.cancel",
        task_id,
        {"payment_hash": payment_hash_hex, "reason": "round_retired"},
        store=ctx.store,
    )


async def _record_cancelled(
    ctx: EscrowContext, task_id: str, payment_hash_hex: str, reason: str
) -> Task | None:
    def cancelled(task: Task, now: int) -> c.Command | None:
        if payment_hash_hex not in (
            task.renewal_payment_hash_hex,
            task.retiring_payment_hash_hex,
        ):
            return None
        return c.CancelRound(
            actor=SYSTEM_ACTOR, at=now, payment_hash_hex=payment_hash_hex, reason=reason
        )

    done = await apply_system(ctx, task_id, cancelled)
    log.info("round_cancelled", task_id=task_id, reason=reason)
    return done
