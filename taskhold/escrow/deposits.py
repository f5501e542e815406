"""Deposits at the node: their hold invoices, watching them, returning and paying them out.

The rules (when a deposit is returned or forfeited) are in ``taskhold.tasks.deposits``; this
module does what they decide, with the release's ordering and crash safety: a forfeited deposit
is settled only after its beneficiary's payment succeeded, the payment row is written before
the payment is sent, and every step is idempotent so the engine's next pass finishes it.
"""

from __future__ import annotations

from collections.abc import Callable

from taskhold.errors import Fault
from taskhold.lightning.base import (
    HoldInvoice,
    InvoiceNotFound,
    InvoiceState,
    InvoiceStatus,
    PaymentResult,
    PaymentStatus,
    WrongInvoiceState,
)
from taskhold.payments.invoices import decode_invoice
from taskhold.store.models import DepositPayoutRow
from taskhold.tasks import Task
from taskhold.tasks import commands as c
from taskhold.tasks.model import Deposit, DepositState

from .context import EscrowContext, apply_system, log
from .deposit_amounts import refused_wrong_amount
from .funding import hold_invoice
from .paying import may_land, pay_once, record_result, record_sent, stands
from .payout_rules import payout_fee_cap_msat
from .release import payout_hash_of

__all__ = [
    "deposit_label",
    "ensure_deposit_invoice",
    "guard_deposits",
    "observe_deposit",
    "pay_out_deposit",
    "refresh_deposits",
    "return_deposit",
]


def deposit_label(task_id: str, depositor: str) -> str:
    """The key-store name of a deposit's preimage: distinct from every task's funding one."""
    return f"deposit/{task_id}/{depositor}"


async def ensure_deposit_invoice(
    ctx: EscrowContext, task: Task, depositor: str, deposit_round: int, amount_msat: int
) -> HoldInvoice:
    """The deposit's hold invoice, held as long as the task's own could be (same sizing)."""
    return await hold_invoice(
        ctx,
        task,
        key=(deposit_label(task.task_id, depositor), deposit_round),
        amount_msat=amount_msat,
        memo=f"taskhold deposit {task.task_id[:16]}",
    )


async def observe_deposit(ctx: EscrowContext, task_id: str, status: InvoiceStatus) -> None:
    """Record what the node says about a deposit's invoice: held, or cancelled on its own."""
    hash_hex = status.payment_hash.hex()
    if status.state is InvoiceState.ACCEPTED:
        expiry = status.accepted_htlc_expiry_height
        if expiry is None or await refused_wrong_amount(ctx, task_id, status):
            return
        await ctx.fault_hook("after_deposit_htlc_accepted")
        await apply_system(
            ctx,
            task_id,
            lambda task, now: c.ConfirmDeposit(
                actor="system",
                at=now,
                payment_hash_hex=hash_hex,
                expiry_height=expiry,
                amount_paid_msat=status.amount_paid_msat,
            ),
        )
    elif status.state is InvoiceState.CANCELED:
        await apply_system(
            ctx,
            task_id,
            lambda task, now: c.DepositInvoiceCancelled(
                actor="system", at=now, payment_hash_hex=hash_hex
            ),
        )


async def refresh_deposits(ctx: EscrowContext, task: Task) -> None:
    """Ask the node about every open or held deposit of the task (the reconcile pass)."""
    for deposit in task.deposits:
        if deposit.state not in (DepositState.OPEN, DepositState.HELD):
            continue
        try:
            status = await ctx.lightning.lookup_invoice(bytes.fromhex(deposit.payment_hash_hex))
        except InvoiceNotFound:
            log.error("deposit_invoice_missing", task_id=task.task_id)
            continue
        await observe_deposit(ctx, task.task_id, status)


async def guard_deposits(ctx: EscrowContext, task: Task, height: int) -> None:
    """Return a held or forfeited deposit whose HTLC nears the guard margin; settle one whose
    payout may still land (the declared fallback: returning it could pay the money twice)."""
    for deposit in task.deposits:
        if deposit.state not in (DepositState.HELD, DepositState.FORFEIT):
            continue
        if deposit.expiry_height is None or deposit.hold_settled_at is not None:
            continue
        blocks_left = deposit.expiry_height - height
        if blocks_left > ctx.settings.guard_blocks:
            continue
        if await _payout_may_land(ctx, deposit):
            await _settle_under_live_payout(ctx, task.task_id, deposit, blocks_left)
            continue
        command = c.DepositExpiring(
            actor="system",
            at=ctx.now(),
            payment_hash_hex=deposit.payment_hash_hex,
            blocks_left=blocks_left,
        )
        await apply_system(ctx, task.task_id, _constant(command))


async def _payout_may_land(ctx: EscrowContext, deposit: Deposit) -> bool:
    """A forfeit whose payment succeeded or is in flight must be settled, not returned: the
    beneficiary may already have the money. So must one already settled at the node (a crash
    came between the settle and its log entry)."""
    if deposit.state is not DepositState.FORFEIT:
        return False
    async with ctx.store.transaction() as tx:
        row = await tx.get_deposit_payout(deposit.payment_hash_hex)
    if row is not None and await may_land(ctx, row):
        return True
    hold = await ctx.lightning.lookup_invoice(bytes.fromhex(deposit.payment_hash_hex))
    return hold.state is InvoiceState.SETTLED


async def _settle_under_live_payout(
    ctx: EscrowContext, task_id: str, deposit: Deposit, blocks_left: int
) -> None:
    """Settle the forfeited deposit before the node cancels it, and say so in the log; the
    beneficiary stays owed and the payout is followed on (as ``settle_under_live_payout``)."""
    async with ctx.store.transaction() as tx:
        row = await tx.get_deposit_payout(deposit.payment_hash_hex)
    preimage = ctx.keys.derive_preimage(deposit_label(task_id, deposit.depositor), deposit.round)
    await ctx.lightning.settle_invoice(preimage)
    payout_hash = payout_hash_of(row, deposit.payout_request)
    log.warning(
        "deposit_settled_under_live_payout",
        task_id=task_id,
        blocks_left=blocks_left,
        payout_payment_hash=payout_hash,
    )
    await ctx.audit.record(
        "system",
        "escrow.deposit_settle_under_live_payout",
        task_id,
        {"payment_hash": deposit.payment_hash_hex, "payout_hash": payout_hash},
        store=ctx.store,
    )
    command = c.SettleDepositUnderLivePayout(
        actor="system",
        at=ctx.now(),
        payment_hash_hex=deposit.payment_hash_hex,
        preimage_hex=preimage.hex(),
        payout_payment_hash_hex=payout_hash,
        blocks_left=blocks_left,
    )
    await apply_system(ctx, task_id, _constant(command))


def _constant(command: c.Command) -> Callable[[Task, int], c.Command]:
    return lambda task, now: command


async def return_deposit(ctx: EscrowContext, task_id: str, deposit: Deposit) -> Task | None:
    """Cancel the deposit's invoice (idempotent at the node) and record it returned."""
    payment_hash = bytes.fromhex(deposit.payment_hash_hex)
    try:
        await ctx.lightning.cancel_invoice(payment_hash)
        invoice_state = InvoiceState.CANCELED.value
    except InvoiceNotFound:
        invoice_state = "NOT_FOUND"
    except WrongInvoiceState as exc:
        status = await ctx.lightning.lookup_invoice(payment_hash)
        raise Fault(f"task {task_id}: cannot cancel a deposit in state {status.state}") from exc
    await ctx.audit.record(  # audit log (issue 6)
        "system",
        "escrow.deposit_cancel",
        task_id,
        {"payment_hash": deposit.payment_hash_hex, "invoice_state": invoice_state},
        store=ctx.store,
    )
    await ctx.fault_hook("after_deposit_cancel")
    done = await apply_system(
        ctx,
        task_id,
        lambda t, now: c.CompleteDepositReturn(
            actor="system",
            at=now,
            payment_hash_hex=deposit.payment_hash_hex,
            invoice_state=invoice_state,
        ),
    )
    log.info("deposit_returned", task_id=task_id, reason=deposit.reason)
    return done


async def pay_out_deposit(ctx: EscrowContext, task_id: str, deposit: Deposit) -> Task | None:
    """Pay a forfeited deposit to its beneficiary, then settle it. Safe to call repeatedly."""
    assert deposit.payout_request is not None
    payment_hash = bytes.fromhex(deposit.payment_hash_hex)
    invoice = await ctx.lightning.lookup_invoice(payment_hash)
    if invoice.state is InvoiceState.CANCELED:
        await observe_deposit(ctx, task_id, invoice)
        return None
    if invoice.state is InvoiceState.OPEN:
        raise Fault(f"task {task_id}: a forfeited deposit's invoice is not held")
    payout = await _pay_beneficiary(ctx, task_id, deposit)
    if payout is None:
        return None
    await ctx.fault_hook("after_deposit_payout")
    preimage = ctx.keys.derive_preimage(deposit_label(task_id, deposit.depositor), deposit.round)
    if invoice.state is not InvoiceState.SETTLED:
        await ctx.lightning.settle_invoice(preimage)
        await ctx.audit.record(  # audit log (issue 6)
            "system",
            "escrow.deposit_settle",
            task_id,
            {"payment_hash": deposit.payment_hash_hex, "beneficiary": deposit.beneficiary},
            store=ctx.store,
        )
    await ctx.fault_hook("after_deposit_settle")
    done = await apply_system(
        ctx,
        task_id,
        lambda t, now: c.CompleteDepositPayout(
            actor="system",
            at=now,
            payment_hash_hex=deposit.payment_hash_hex,
            preimage_hex=preimage.hex(),
            payout_payment_hash_hex=payout.payment_hash.hex(),
            payout_fee_msat=payout.fee_msat,
        ),
    )
    log.info("deposit_paid_out", task_id=task_id, amount_msat=deposit.amount_msat)
    return done


async def _pay_beneficiary(
    ctx: EscrowContext, task_id: str, deposit: Deposit
) -> PaymentResult | None:
    row = await _payout_row(ctx, task_id, deposit)
    await ctx.fault_hook("after_deposit_payout_row")

    async def mark_sent() -> None:
        async with ctx.store.transaction() as tx:
            current = await tx.get_deposit_payout(row.deposit_hash_hex)
            if current is not None:
                record_sent(current, ctx.now())
                row.attempts = current.attempts

    async def mark(result: PaymentResult | None, error: str | None) -> None:
        await _mark(ctx, row, result, error=error)

    async def record_failure(reason: str) -> None:
        await apply_system(
            ctx,
            task_id,
            _constant(
                c.RecordDepositPayoutFailure(
                    actor="system",
                    at=ctx.now(),
                    payment_hash_hex=deposit.payment_hash_hex,
                    reason=reason,
                )
            ),
        )
        await ctx.fault_hook("after_deposit_payout_failure")

    return await pay_once(
        ctx,
        row,
        task_id=task_id,
        owner=f"deposit/{deposit.payment_hash_hex}",
        hold_hash=bytes.fromhex(deposit.payment_hash_hex),
        max_fee_msat=payout_fee_cap_msat(
            ctx.settings, deposit.amount_msat, earned_msat=ctx.settings.deposit_payout_max_fee_msat
        ),
        failures=deposit.payout_failures,
        mark_sent=mark_sent,
        mark=mark,
        record_failure=record_failure,
    )


async def _payout_row(ctx: EscrowContext, task_id: str, deposit: Deposit) -> DepositPayoutRow:
    """The beneficiary's payment, written before the first attempt; a new invoice replaces it
    only once the old one's payment is known to have failed."""
    assert deposit.payout_request is not None
    async with ctx.store.transaction() as tx:
        row = await tx.get_deposit_payout(deposit.payment_hash_hex)
        if row is not None and await stands(ctx, row, deposit.payout_request):
            return row
        decoded = decode_invoice(deposit.payout_request)
        row = DepositPayoutRow(
            deposit_hash_hex=deposit.payment_hash_hex,
            task_id=task_id,
            payment_request=decoded.payment_request,
            payment_hash_hex=decoded.payment_hash_hex,
            amount_msat=deposit.amount_msat,
            status=PaymentStatus.UNKNOWN.value,
            attempts=0,
            fee_msat=None,
            last_error=None,
            updated_at=ctx.now(),
        )
        await tx.put_deposit_payout(row)
    return row


async def _mark(
    ctx: EscrowContext,
    row: DepositPayoutRow,
    result: PaymentResult | None,
    *,
    error: str | None = None,
) -> None:
    async with ctx.store.transaction() as tx:
        current = await tx.get_deposit_payout(row.deposit_hash_hex)
        if current is None:
            return
        record_result(current, result, error, ctx.now())
        await ctx.audit.append(  # audit log (issue 6)
            tx,
            "system",
            "escrow.deposit_payout",
            row.task_id,
            {
                "deposit_hash": row.deposit_hash_hex,
                "payment_hash": row.payment_hash_hex,
                "amount_msat": row.amount_msat,
                "status": current.status,
                "fee_msat": current.fee_msat,
                "error": error,
            },
        )
