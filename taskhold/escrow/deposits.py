"""Deposits at the node: their hold invoices, watching them, returning and paying them out.

The rules (when a deposit is returned or forfeited) are in ``taskhold.tasks.deposits``; this
module does what they decide through the Payment Coordinator, as a release does: a deposit is
:class:`~taskhold.payments.held.HeldFunds` and :class:`DepositBook` records its steps, so a
forfeited deposit is paid then settled by :func:`~taskhold.payments.held.pay_then_settle` and
returned by :func:`~taskhold.payments.held.cancel_hold`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskhold.lightning.base import (
    HoldInvoice,
    InvoiceNotFound,
    InvoiceState,
    InvoiceStatus,
    PaymentResult,
)
from taskhold.payments.held import (
    HeldFunds,
    PayoutKind,
    PayoutStep,
    cancel_hold,
    must_settle,
    pay_then_settle,
    payout_preimage,
    settle_under_live_payout,
    still_held,
)
from taskhold.payments.paying import PaymentRecord
from taskhold.payments.rules import payout_fee_cap_msat
from taskhold.store import Tx
from taskhold.store.models import DepositPayoutRow
from taskhold.tasks import SYSTEM_ACTOR, Task
from taskhold.tasks import commands as c
from taskhold.tasks.due import deposit_guarded
from taskhold.tasks.model import Deposit, DepositState

from .context import EscrowContext, apply_system, log
from .deposit_amounts import refused_wrong_amount
from .funding import hold_invoice

__all__ = [
    "DepositBook",
    "deposit_label",
    "ensure_deposit_invoice",
    "guard_deposits",
    "held_deposit",
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
                actor=SYSTEM_ACTOR,
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
                actor=SYSTEM_ACTOR, at=now, payment_hash_hex=hash_hex
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
        if not deposit_guarded(deposit) or deposit.expiry_height is None:
            continue
        blocks_left = deposit.expiry_height - height
        if blocks_left > ctx.settings.guard_blocks:
            continue
        if await _payout_may_land(ctx, task.task_id, deposit):
            held = held_deposit(ctx, task.task_id, deposit)
            book = DepositBook(ctx, task.task_id, deposit)
            await settle_under_live_payout(ctx, held, book, blocks_left)
            continue
        command = c.DepositExpiring(
            actor=SYSTEM_ACTOR,
            at=ctx.now(),
            payment_hash_hex=deposit.payment_hash_hex,
            blocks_left=blocks_left,
        )
        await apply_system(ctx, task.task_id, _constant(command))


async def _payout_may_land(ctx: EscrowContext, task_id: str, deposit: Deposit) -> bool:
    """A forfeit whose payment succeeded or is in flight must be settled, not returned: the
    beneficiary may already have the money. So must one already settled at the node (a crash
    came between the settle and its log entry)."""
    if not deposit.payout_may_be_owed:
        return False
    return await must_settle(
        ctx, held_deposit(ctx, task_id, deposit), DepositBook(ctx, task_id, deposit)
    )


def _constant(command: c.Command) -> Callable[[Task, int], c.Command]:
    return lambda task, now: command


async def return_deposit(ctx: EscrowContext, task_id: str, deposit: Deposit) -> Task | None:
    """Cancel the deposit's invoice (idempotent at the node) and record it returned.

    A forfeit whose payout may land is settled instead, never returned: its return was ordered
    on the node's word that the payout failed, and the beneficiary may have the money after
    all."""
    book = DepositBook(ctx, task_id, deposit)
    held = held_deposit(ctx, task_id, deposit)
    if await _payout_may_land(ctx, task_id, deposit) and await still_held(ctx, held):
        log.warning("deposit_return_superseded_by_live_payout", task_id=task_id)
        assert deposit.expiry_height is not None
        blocks_left = deposit.expiry_height - await ctx.lightning.block_height()
        await settle_under_live_payout(ctx, held, book, blocks_left)
        return None
    invoice_state = await cancel_hold(ctx, held, book)
    done = await apply_system(
        ctx,
        task_id,
        lambda t, now: c.CompleteDepositReturn(
            actor=SYSTEM_ACTOR,
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
    held = held_deposit(ctx, task_id, deposit)
    return await pay_then_settle(ctx, held, DepositBook(ctx, task_id, deposit))


def held_deposit(ctx: EscrowContext, task_id: str, deposit: Deposit) -> HeldFunds:
    """A deposit, held in its own hold invoice; once forfeited, owed to its beneficiary."""
    return HeldFunds(
        kind=PayoutKind.DEPOSIT,
        task_id=task_id,
        hold_hash_hex=deposit.payment_hash_hex,
        preimage_key=(deposit_label(task_id, deposit.depositor), deposit.round),
        payout_invoice=deposit.payout_request,
        amount_msat=deposit.amount_msat,
        max_fee_msat=payout_fee_cap_msat(
            ctx.settings, deposit.amount_msat, earned_msat=ctx.settings.deposit_payout_max_fee_msat
        ),
        failures=deposit.payout_failures,
        owner=f"deposit/{deposit.payment_hash_hex}",
        journal={"deposit_hash": deposit.payment_hash_hex},
        settle_journal={
            "payment_hash": deposit.payment_hash_hex,
            "beneficiary": deposit.beneficiary,
        },
    )


@dataclass(frozen=True, slots=True)
class DepositBook:
    """Where a deposit's payout and return record their steps
    (:class:`~taskhold.payments.held.PayoutBook`)."""

    ctx: EscrowContext
    task_id: str
    deposit: Deposit

    async def find_row(self, tx: Tx) -> PaymentRecord | None:
        return await tx.get_deposit_payout(self.deposit.payment_hash_hex)

    async def add_row(self, tx: Tx, columns: dict[str, Any]) -> PaymentRecord:
        row = DepositPayoutRow(
            deposit_hash_hex=self.deposit.payment_hash_hex, task_id=self.task_id, **columns
        )
        await tx.put_deposit_payout(row)
        return row

    async def crossed(self, step: PayoutStep) -> None:
        match step:
            case PayoutStep.ROW_WRITTEN:
                await self.ctx.fault_hook("after_deposit_payout_row")
            case PayoutStep.FAILURE_RECORDED:
                await self.ctx.fault_hook("after_deposit_payout_failure")
            case PayoutStep.PAID:
                await self.ctx.fault_hook("after_deposit_payout")
            case PayoutStep.SETTLED:
                await self.ctx.fault_hook("after_deposit_settle")
            case PayoutStep.CANCELLED:
                await self.ctx.fault_hook("after_deposit_cancel")

    async def failed(self, reason: str) -> None:
        command = c.RecordDepositPayoutFailure(
            actor=SYSTEM_ACTOR,
            at=self.ctx.now(),
            payment_hash_hex=self.deposit.payment_hash_hex,
            reason=reason,
        )
        await apply_system(self.ctx, self.task_id, _constant(command))

    async def hold_cancelled(self, hold: InvoiceStatus) -> Task | None:
        await observe_deposit(self.ctx, self.task_id, hold)
        return None

    async def completed(self, preimage: bytes, payout: PaymentResult) -> Task | None:
        proof = await payout_preimage(self.ctx, payout)
        done = await apply_system(
            self.ctx,
            self.task_id,
            lambda t, now: c.CompleteDepositPayout(
                actor=SYSTEM_ACTOR,
                at=now,
                payment_hash_hex=self.deposit.payment_hash_hex,
                preimage_hex=preimage.hex(),
                payout_payment_hash_hex=payout.payment_hash.hex(),
                payout_fee_msat=payout.fee_msat,
                payout_preimage_hex=proof.hex(),
            ),
        )
        log.info("deposit_paid_out", task_id=self.task_id, amount_msat=self.deposit.amount_msat)
        return done

    async def settled_early(self, preimage: bytes, payout_hash_hex: str, blocks_left: int) -> None:
        command = c.SettleDepositUnderLivePayout(
            actor=SYSTEM_ACTOR,
            at=self.ctx.now(),
            payment_hash_hex=self.deposit.payment_hash_hex,
            preimage_hex=preimage.hex(),
            payout_payment_hash_hex=payout_hash_hex,
            blocks_left=blocks_left,
        )
        await apply_system(self.ctx, self.task_id, _constant(command))
