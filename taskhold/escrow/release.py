"""Release: pay the worker from the escrow node's own liquidity, then settle the hold invoice.

The order is the non-custodial promise: the employer's HTLC is settled only after the worker's
payment succeeded. The payout row is written before the payment is sent, so after a crash the
engine asks the node what became of that exact payment instead of paying again. The one
exception is declared and logged: a payout still in flight when the guardian must decide
settles the hold first (:func:`settle_under_live_payout`), and the worker stays owed.
"""

from __future__ import annotations

from taskhold.errors import Fault
from taskhold.lightning.base import (
    InvoiceState,
    PaymentResult,
    PaymentStatus,
)
from taskhold.payments.invoices import decode_invoice
from taskhold.store.models import PayoutRow
from taskhold.tasks import Task, TaskState
from taskhold.tasks import commands as c

from .context import EscrowContext, apply_system, log
from .paying import PaymentRecord, pay_once, record_result, record_sent, stands
from .payout_rules import payout_fee_cap_msat

__all__ = ["payout_hash_of", "release", "settle_under_live_payout"]


async def release(ctx: EscrowContext, task_id: str) -> Task | None:
    """Drive one VERIFIED task to PAID if the node allows it now. Safe to call repeatedly."""
    async with ctx.store.transaction() as tx:
        task = await tx.load_task(task_id)
    if task is None or not task.release_pending or task.payment_hash_hex is None:
        return task
    payment_hash = bytes.fromhex(task.payment_hash_hex)
    invoice = await ctx.lightning.lookup_invoice(payment_hash)
    if invoice.state is InvoiceState.CANCELED:
        return await _hold_lost(ctx, task, "the node cancelled the hold invoice")
    if invoice.state is InvoiceState.OPEN:
        raise Fault(f"task {task_id} is VERIFIED but its hold invoice is not funded")

    payout = await _pay_worker(ctx, task)
    if payout is None:
        return None
    await ctx.fault_hook("after_payout")

    preimage = ctx.keys.derive_preimage(task.task_id, task.funding_round)
    if invoice.state is not InvoiceState.SETTLED:
        await ctx.lightning.settle_invoice(preimage)
        await ctx.audit.record(  # audit log (issue 6)
            "system",
            "escrow.settle",
            task_id,
            {"funding_round": task.funding_round, "payment_hash": task.payment_hash_hex},
            store=ctx.store,
        )
    await ctx.fault_hook("after_settle")

    def complete(current: Task, now: int) -> c.Command | None:
        return c.CompleteRelease(
            actor="system",
            at=now,
            preimage_hex=preimage.hex(),
            payout_payment_hash_hex=payout.payment_hash.hex(),
            payout_fee_msat=payout.fee_msat,
        )

    done = await apply_system(ctx, task_id, complete)
    log.info("released", task_id=task_id, payout_msat=task.payout_msat, fee_msat=payout.fee_msat)
    return done


async def _hold_lost(ctx: EscrowContext, task: Task, reason: str) -> Task | None:
    """The HTLC went back to the employer before we could settle: record why, then refund."""
    log.error("hold_lost", task_id=task.task_id, reason=reason)
    await apply_system(
        ctx,
        task.task_id,
        lambda t, now: c.RecordPayoutFailure(actor="system", at=now, reason=reason),
    )
    return await apply_system(
        ctx, task.task_id, lambda t, now: c.HoldExpiring(actor="system", at=now, blocks_left=0)
    )


async def settle_under_live_payout(ctx: EscrowContext, task_id: str, blocks_left: int) -> None:
    """The declared fallback: settle the employer's HTLC while the worker's payout is still in
    flight, because the guardian's deadline came first.

    Cancelling instead could return the employer's money while the payout still lands (paid
    twice); waiting would let the node cancel it by itself. So taskhold takes the money (the
    preimage comes from the key store), says so in the public log, and keeps following the
    payout: the worker stays owed until it lands, or is paid again on a new invoice.
    """
    async with ctx.store.transaction() as tx:
        task = await tx.load_task(task_id)
        row = None if task is None else await tx.get_payout(task_id, task.funding_round)
    if task is None or task.state is not TaskState.VERIFIED or task.hold_settled_at is not None:
        return
    preimage = ctx.keys.derive_preimage(task.task_id, task.funding_round)
    await ctx.lightning.settle_invoice(preimage)
    payout_hash = payout_hash_of(row, task.payout_request)
    log.warning(
        "hold_settled_under_live_payout",
        task_id=task_id,
        blocks_left=blocks_left,
        payout_payment_hash=payout_hash,
    )
    await ctx.audit.record(
        "system",
        "escrow.settle_under_live_payout",
        task_id,
        {"payment_hash": task.payment_hash_hex, "payout_hash": payout_hash},
        store=ctx.store,
    )
    await apply_system(
        ctx,
        task_id,
        lambda t, now: c.SettleUnderLivePayout(
            actor="system",
            at=now,
            preimage_hex=preimage.hex(),
            payout_payment_hash_hex=payout_hash,
            blocks_left=blocks_left,
        ),
    )


def payout_hash_of(row: PaymentRecord | None, payout_request: str | None) -> str:
    """The hash of the payout a fallback settle stands behind (its row is gone after a
    rebuild: the invoice it was made for tells the same hash)."""
    if row is not None:
        return row.payment_hash_hex
    if payout_request is not None:
        return decode_invoice(payout_request).payment_hash_hex
    return "00" * 32


async def _pay_worker(ctx: EscrowContext, task: Task) -> PaymentResult | None:
    """The worker's payment, succeeded; None if it failed (recorded on the task)."""
    assert task.payout_request is not None and task.payment_hash_hex is not None
    row = await _payout_row(ctx, task)
    await ctx.fault_hook("after_payout_row")

    async def mark_sent() -> None:
        async with ctx.store.transaction() as tx:
            current = await tx.get_payout(row.task_id, row.funding_round)
            if current is not None:
                record_sent(current, ctx.now())
                row.attempts = current.attempts

    async def mark(result: PaymentResult | None, error: str | None) -> None:
        await _mark_payout(ctx, row, result, error=error)

    async def record_failure(reason: str) -> None:
        await _record_failure(ctx, task, reason)
        await ctx.fault_hook("after_payout_failure")

    return await pay_once(
        ctx,
        row,
        task_id=task.task_id,
        owner=f"task/{task.task_id}",
        hold_hash=bytes.fromhex(task.payment_hash_hex),
        max_fee_msat=payout_fee_cap_msat(ctx.settings, task.payout_msat, earned_msat=task.fee_msat),
        failures=task.payout_failures,
        mark_sent=mark_sent,
        mark=mark,
        record_failure=record_failure,
    )


async def _payout_row(ctx: EscrowContext, task: Task) -> PayoutRow:
    """The payout for this round, created before the first attempt. A new invoice from the
    worker replaces it only once the old one's payment is known to have failed."""
    assert task.payout_request is not None
    async with ctx.store.transaction() as tx:
        row = await tx.get_payout(task.task_id, task.funding_round)
        if row is not None and await stands(ctx, row, task.payout_request):
            return row
        decoded = decode_invoice(task.payout_request)
        row = PayoutRow(
            task_id=task.task_id,
            funding_round=task.funding_round,
            payment_request=decoded.payment_request,
            payment_hash_hex=decoded.payment_hash_hex,
            amount_msat=task.payout_msat,
            status=PaymentStatus.UNKNOWN.value,
            attempts=0,
            fee_msat=None,
            last_error=None,
            updated_at=ctx.now(),
        )
        await tx.put_payout(row)
    return row


async def _mark_payout(
    ctx: EscrowContext, row: PayoutRow, result: PaymentResult | None, *, error: str | None = None
) -> None:
    async with ctx.store.transaction() as tx:
        current = await tx.get_payout(row.task_id, row.funding_round)
        if current is None:
            return
        record_result(current, result, error, ctx.now())
        await ctx.audit.append(  # audit log (issue 6)
            tx,
            "system",
            "escrow.payout",
            row.task_id,
            {
                "funding_round": row.funding_round,
                "payment_hash": row.payment_hash_hex,
                "amount_msat": row.amount_msat,
                "status": current.status,
                "fee_msat": current.fee_msat,
                "error": error,
            },
        )


async def _record_failure(ctx: EscrowContext, task: Task, reason: str) -> None:
    log.warning("payout_failed", task_id=task.task_id, reason=reason)

    def record(current: Task, now: int) -> c.Command | None:
        if current.state is not TaskState.VERIFIED:
            return None
        return c.RecordPayoutFailure(actor="system", at=now, reason=reason)

    await apply_system(ctx, task.task_id, record)
