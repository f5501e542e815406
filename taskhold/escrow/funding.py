"""Funding: the hold invoice for a task, and noticing when the employer's HTLC is held."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from taskhold.errors import Fault
from taskhold.lightning.base import (
    AlreadyExists,
    HoldInvoice,
    InvoiceState,
    InvoiceStatus,
)
from taskhold.store import Tx
from taskhold.store.models import InvoiceRow
from taskhold.tasks import SYSTEM_ACTOR, Task, TaskState
from taskhold.tasks import commands as c

from .context import EscrowContext, apply_system, log
from .grouped import log_transitions, record_system
from .sizing import cltv_expiry_delta_for

__all__ = ["ensure_hold_invoice", "hold_invoice", "invoice_row", "observe_invoice"]


async def ensure_hold_invoice(ctx: EscrowContext, task: Task, funding_round: int) -> HoldInvoice:
    """Create the task's hold invoice, or return the one a crashed earlier attempt created."""
    return await hold_invoice(
        ctx,
        task,
        key=(task.task_id, funding_round),
        amount_msat=task.amount_msat,
        memo=f"taskhold {task.task_id[:16]}: {task.title[:80]}",
    )


async def hold_invoice(
    ctx: EscrowContext,
    task: Task,
    *,
    key: tuple[str, int],
    amount_msat: int,
    memo: str,
    expiry_seconds: int | None = None,
) -> HoldInvoice:
    """A hold invoice able to hold until ``task`` is decided, for the preimage the key store
    derives from ``key``; or the one a crashed earlier attempt created.

    The payment hash comes from the key store, so a retry asks for the same hash and the node's
    ``AlreadyExists`` tells us to reuse it instead of making a second invoice.
    """
    payment_hash = ctx.keys.payment_hash(*key)
    expiry_seconds = expiry_seconds or ctx.settings.invoice_expiry_s
    cltv = cltv_expiry_delta_for(
        now=ctx.now(),
        deadline_at=task.deadline_at,
        review_window_s=task.review_window_s,
        dispute_window_s=task.dispute_window_s,
        settings=ctx.settings,
    )
    try:
        return await ctx.lightning.create_hold_invoice(
            payment_hash,
            amount_msat,
            memo=memo,
            expiry_seconds=expiry_seconds,
            cltv_expiry_delta=cltv,
        )
    except AlreadyExists:
        status = await ctx.lightning.lookup_invoice(payment_hash)
        if status.state is not InvoiceState.OPEN or not status.payment_request:
            raise Fault(
                f"hold invoice for task {task.task_id} exists in state {status.state}"
            ) from None
        return HoldInvoice(
            payment_hash=payment_hash,
            payment_request=status.payment_request,
            amount_msat=status.amount_msat,
            cltv_expiry_delta=cltv,
            expiry_seconds=expiry_seconds,
        )


async def observe_invoice(ctx: EscrowContext, task_id: str, status: InvoiceStatus) -> None:
    """Record what the node says about a task's hold invoice. Idempotent: a repeated report
    (stream and reconcile both deliver it) decides to no events.

    The held HTLC of the right amount is recorded in one transaction with the confirm it
    decides (the invoice's node state and FUNDED commit together: one fsync, one turn at the
    writer, on the path from the employer's payment to FUNDED); every other report records the
    node state by itself first. A crash before that transaction leaves the invoice OPEN in the
    database, and the next reconcile reads it from the node again.
    """
    expiry = status.accepted_htlc_expiry_height
    confirming = (
        status.state is InvoiceState.ACCEPTED
        and expiry is not None
        and status.amount_paid_msat == status.amount_msat
    )
    if not confirming:
        try:
            async with ctx.store.transaction() as tx:
                await _record_node_state(ctx, tx, status)
        except SQLAlchemyError as exc:
            log.warning("invoice_state_not_recorded", task_id=task_id, error=type(exc).__name__)
    if status.state is InvoiceState.ACCEPTED:
        if expiry is None:
            return
        if not confirming:
            await _refuse_wrong_amount(ctx, task_id, status)
            return
        await ctx.fault_hook("after_htlc_accepted")

        def confirm(task: Task, now: int) -> c.Command | None:
            if task.state is not TaskState.PENDING_FUNDING:
                return None
            return c.ConfirmFunding(
                actor=SYSTEM_ACTOR,
                at=now,
                accepted_htlc_expiry_height=expiry,
                amount_paid_msat=status.amount_paid_msat,
            )

        async with ctx.store.transaction() as tx:
            await _record_node_state(ctx, tx, status)
            confirmed, events = await record_system(ctx, tx, task_id, confirm)
        log_transitions(task_id, confirmed, events)
    elif status.state is InvoiceState.CANCELED:

        def expire(task: Task, now: int) -> c.Command | None:
            if task.state is TaskState.PENDING_FUNDING and not task.refund_ordered:
                return c.ExpireFunding(actor=SYSTEM_ACTOR, at=now, reason="invoice expired unpaid")
            if task.state in (
                TaskState.FUNDED,
                TaskState.CLAIMED,
                TaskState.SUBMITTED,
                TaskState.DISPUTED,
                TaskState.VERIFIED,
            ):
                return c.HoldExpiring(actor=SYSTEM_ACTOR, at=now, blocks_left=0)
            return None

        await apply_system(ctx, task_id, expire)


async def _refuse_wrong_amount(ctx: EscrowContext, task_id: str, status: InvoiceStatus) -> None:
    """Held HTLCs must add up to exactly the invoice's amount. Nodes accept overpayment (lnd up
    to twice the amount), and settling it would leave the excess with the operator, so the hold
    invoice is cancelled (every HTLC goes back to its payer) and the task ends EXPIRED with the
    amounts in its reason. Cancel first, record second: a crash in between leaves a cancelled
    invoice that the next observation records as expired, never a held payment on a closed task.
    """
    async with ctx.store.transaction() as tx:
        task = await tx.load_task(task_id)
    if task is None or task.state is not TaskState.PENDING_FUNDING or task.refund_ordered:
        return
    await ctx.lightning.cancel_invoice(status.payment_hash)
    reason = (
        f"the held payment of {status.amount_paid_msat} msat was not the invoice amount of"
        f" {status.amount_msat} msat; it was cancelled and returned to the payer"
    )
    await ctx.audit.record(
        SYSTEM_ACTOR,
        "escrow.cancel",
        task_id,
        {"payment_hash": status.payment_hash.hex(), "reason": "wrong_amount_held"},
        store=ctx.store,
    )
    log.warning(
        "wrong_amount_held",
        task_id=task_id,
        amount_msat=status.amount_msat,
        amount_paid_msat=status.amount_paid_msat,
    )

    def expire(current: Task, now: int) -> c.Command | None:
        if current.state is not TaskState.PENDING_FUNDING or current.refund_ordered:
            return None
        return c.ExpireFunding(actor=SYSTEM_ACTOR, at=now, reason=reason)

    await apply_system(ctx, task_id, expire)


async def _record_node_state(ctx: EscrowContext, tx: Tx, status: InvoiceStatus) -> None:
    row = await tx.get_invoice(status.payment_hash.hex())
    if row is None:
        return
    row.node_state = status.state.value
    row.accepted_htlc_expiry_height = status.accepted_htlc_expiry_height
    row.updated_at = ctx.now()


def invoice_row(task: Task, invoice: HoldInvoice, funding_round: int, now: int) -> InvoiceRow:
    return InvoiceRow(
        payment_hash_hex=invoice.payment_hash.hex(),
        task_id=task.task_id,
        funding_round=funding_round,
        payment_request=invoice.payment_request,
        amount_msat=invoice.amount_msat,
        cltv_expiry_delta=invoice.cltv_expiry_delta,
        node_state=InvoiceState.OPEN.value,
        accepted_htlc_expiry_height=None,
        updated_at=now,
    )
