"""Release: pay the worker from the escrow node's own liquidity, then settle the hold invoice.

The sequence is the Payment Coordinator's (:func:`taskhold.payments.held.pay_then_settle`);
this module describes a task's reward as :class:`~taskhold.payments.held.HeldFunds` and keeps
its book: the ``payouts`` table, the task's log and the release's crash points. The one
exception to "pay, then settle" is declared and logged: a payout still in flight when the
guardian must decide settles the hold first (:func:`settle_under_live_payout`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskhold.lightning.base import InvoiceStatus, PaymentResult
from taskhold.payments import held as funds
from taskhold.payments.held import HeldFunds, PayoutKind, PayoutStep
from taskhold.payments.paying import PaymentRecord
from taskhold.payments.rules import payout_fee_cap_msat
from taskhold.store import Tx
from taskhold.store.models import PayoutRow
from taskhold.tasks import SYSTEM_ACTOR, Task, TaskState
from taskhold.tasks import commands as c

from .context import EscrowContext, apply_system, log

__all__ = ["RewardBook", "held_reward", "release", "reward_owner", "settle_under_live_payout"]


def reward_owner(task_id: str) -> str:
    """The task reward's name among payouts (the rules of :mod:`taskhold.payments.rules`)."""
    return f"task/{task_id}"


def held_reward(ctx: EscrowContext, task: Task) -> HeldFunds:
    """The task's reward, held in its hold invoice and owed to the worker."""
    assert task.payment_hash_hex is not None
    return HeldFunds(
        kind=PayoutKind.TASK_REWARD,
        task_id=task.task_id,
        hold_hash_hex=task.payment_hash_hex,
        preimage_key=(task.task_id, task.funding_round),
        payout_invoice=task.payout_request,
        amount_msat=task.payout_msat,
        max_fee_msat=payout_fee_cap_msat(ctx.settings, task.payout_msat, earned_msat=task.fee_msat),
        failures=task.payout_failures,
        owner=reward_owner(task.task_id),
        journal={"funding_round": task.funding_round},
        settle_journal={"funding_round": task.funding_round, "payment_hash": task.payment_hash_hex},
    )


@dataclass(frozen=True, slots=True)
class RewardBook:
    """Where a release records its steps (:class:`~taskhold.payments.held.PayoutBook`)."""

    ctx: EscrowContext
    task: Task

    async def find_row(self, tx: Tx) -> PaymentRecord | None:
        return await tx.get_payout(self.task.task_id, self.task.funding_round)

    async def add_row(self, tx: Tx, columns: dict[str, Any]) -> PaymentRecord:
        row = PayoutRow(task_id=self.task.task_id, funding_round=self.task.funding_round, **columns)
        await tx.put_payout(row)
        return row

    async def crossed(self, step: PayoutStep) -> None:
        match step:
            case PayoutStep.ROW_WRITTEN:
                await self.ctx.fault_hook("after_payout_row")
            case PayoutStep.FAILURE_RECORDED:
                await self.ctx.fault_hook("after_payout_failure")
            case PayoutStep.PAID:
                await self.ctx.fault_hook("after_payout")
            case PayoutStep.SETTLED:
                await self.ctx.fault_hook("after_settle")
            case PayoutStep.CANCELLED:
                await self.ctx.fault_hook("after_cancel")

    async def failed(self, reason: str) -> None:
        log.warning("payout_failed", task_id=self.task.task_id, reason=reason)
        await apply_system(self.ctx, self.task.task_id, _payout_failure(reason))

    async def hold_cancelled(self, hold: InvoiceStatus) -> Task | None:
        """The HTLC went back to the employer before we could settle: record why, then refund.
        Once the refund is ordered there is nothing more to record."""
        reason = "the node cancelled the hold invoice"
        task_id = self.task.task_id
        async with self.ctx.store.transaction() as tx:
            current = await tx.load_task(task_id)
        if current is None or current.state is not TaskState.VERIFIED or current.refund_ordered:
            return current
        log.error("hold_lost", task_id=task_id, reason=reason)
        await apply_system(self.ctx, task_id, _payout_failure(reason))
        return await apply_system(
            self.ctx,
            task_id,
            lambda t, now: c.HoldExpiring(actor=SYSTEM_ACTOR, at=now, blocks_left=0),
        )

    async def completed(self, preimage: bytes, payout: PaymentResult) -> Task | None:
        proof = await funds.payout_preimage(self.ctx, payout)
        done = await self.ctx.commits.apply(  # with other releases completing now (grouped)
            self.ctx,
            self.task.task_id,
            lambda current, now: c.CompleteRelease(
                actor=SYSTEM_ACTOR,
                at=now,
                preimage_hex=preimage.hex(),
                payout_payment_hash_hex=payout.payment_hash.hex(),
                payout_fee_msat=payout.fee_msat,
                payout_preimage_hex=proof.hex(),
            ),
        )
        log.info(
            "released",
            task_id=self.task.task_id,
            payout_msat=self.task.payout_msat,
            fee_msat=payout.fee_msat,
        )
        return done

    async def settled_early(self, preimage: bytes, payout_hash_hex: str, blocks_left: int) -> None:
        await apply_system(
            self.ctx,
            self.task.task_id,
            lambda t, now: c.SettleUnderLivePayout(
                actor=SYSTEM_ACTOR,
                at=now,
                preimage_hex=preimage.hex(),
                payout_payment_hash_hex=payout_hash_hex,
                blocks_left=blocks_left,
            ),
        )


def _payout_failure(reason: str) -> Callable[[Task, int], c.Command | None]:
    def record(current: Task, now: int) -> c.Command | None:
        if current.state is not TaskState.VERIFIED:
            return None
        return c.RecordPayoutFailure(actor=SYSTEM_ACTOR, at=now, reason=reason)

    return record


async def release(ctx: EscrowContext, task_id: str, loaded: Task | None = None) -> Task | None:
    """Drive one VERIFIED task to PAID if the node allows it now. Safe to call repeatedly.

    ``loaded``: the task as its caller just read it, so it is not read twice."""
    task = loaded
    if task is None:
        async with ctx.store.transaction() as tx:
            task = await tx.load_task(task_id)
    if task is None or not task.release_pending or task.payment_hash_hex is None:
        return task
    return await funds.pay_then_settle(ctx, held_reward(ctx, task), RewardBook(ctx, task))


async def settle_under_live_payout(ctx: EscrowContext, task_id: str, blocks_left: int) -> None:
    """Settle a verified task's hold under its live payout (the declared fallback of
    :func:`taskhold.payments.held.settle_under_live_payout`); the worker stays owed."""
    async with ctx.store.transaction() as tx:
        task = await tx.load_task(task_id)
    if task is None or task.state is not TaskState.VERIFIED or task.hold_settled_at is not None:
        return
    await funds.settle_under_live_payout(
        ctx, held_reward(ctx, task), RewardBook(ctx, task), blocks_left
    )
