"""Paying a split: the worker's share, then the employer's, then the hold is settled.

The sequence is the Payment Coordinator's (:func:`taskhold.payments.held.pay_then_settle`,
with the worker's share as the ``earlier`` payout); this module describes the two shares as
:class:`~taskhold.payments.held.HeldFunds` and keeps their books: the worker's share is the
task's ``payouts`` row (its failures are the task's payout failures), the employer's is its
``refund_payouts`` row, and each share is recorded paid once in the task's log.

Unwinding, and the one departure from "a share that cannot be paid unwinds the whole task":

- nothing paid yet when the guardian must decide: the task is refunded (the hold cancelled),
  as for any payout that cannot be made in time; the operator never holds the funds;
- the worker's share landed (or is in flight) and the employer's is not paid: the hold is
  settled under the declared fallback (``HoldSettledUnderLivePayout``) and the employer's share
  stays owed, paid as soon as the employer's invoice is there (retried, replaceable).
  Cancelling instead would give the employer the whole amount back while the operator already
  paid W from its own liquidity: taskhold would lose W, and an employer could turn any split
  into a full refund by never sending an invoice. The employer's share is published as owed in
  the log (the split and the fallback settle entries) until ``SplitCompleted``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from taskhold.lightning.base import PaymentResult
from taskhold.payments import held as funds
from taskhold.payments.held import HeldFunds, PayoutStep, ShareBook
from taskhold.payments.paying import PaymentRecord
from taskhold.payments.rules import payout_fee_cap_msat
from taskhold.store import Tx
from taskhold.store.models import RefundPayoutRow
from taskhold.tasks import SYSTEM_ACTOR, Task, TaskState
from taskhold.tasks import commands as c

from .context import EscrowContext, apply_system, log
from .release import RewardBook, held_reward
from .release import release as release_reward

__all__ = [
    "EmployerShareBook",
    "WorkerShareBook",
    "pay_out",
    "payout_may_land",
    "split_must_settle",
]


def _fee_cap(ctx: EscrowContext, task: Task) -> int:
    """Both shares' routing fees together: the cap the single payout of the task would have."""
    return payout_fee_cap_msat(
        ctx.settings, task.amount_msat - task.fee_msat, earned_msat=task.fee_msat
    )


def _worker_share(ctx: EscrowContext, task: Task) -> HeldFunds:
    """The task's reward funds, for W (``Task.payout_msat`` of a split), with the fee cap of
    both shares (the employer's may spend what the worker's left)."""
    return dataclasses.replace(held_reward(ctx, task), max_fee_msat=_fee_cap(ctx, task))


def _employer_share(ctx: EscrowContext, task: Task) -> HeldFunds:
    """The same hold's funds, owed to the employer's invoice for their share, within what the
    worker's share left of the fee cap."""
    assert task.split_employer_msat is not None
    spent = task.payout_fee_msat or 0  # the worker's share's fee, once recorded
    return dataclasses.replace(
        held_reward(ctx, task),
        payout_invoice=task.refund_request,
        amount_msat=task.split_employer_msat,
        max_fee_msat=max(_fee_cap(ctx, task) - spent, 0),
        failures=task.refund_failures,
        owner=f"refund/{task.task_id}",
        journal={"funding_round": task.funding_round, "share": "employer"},
    )


@dataclass(frozen=True, slots=True)
class WorkerShareBook(RewardBook):
    """The worker's share: the task's payout row and failures, its own crash points."""

    async def crossed(self, step: PayoutStep) -> None:
        match step:
            case PayoutStep.ROW_WRITTEN:
                await self.ctx.fault_hook("after_worker_share_row")
            case PayoutStep.FAILURE_RECORDED:
                await self.ctx.fault_hook("after_worker_share_failure")
            case PayoutStep.PAID:
                await self.ctx.fault_hook("after_worker_share")

    async def share_paid(self, payout: PaymentResult) -> None:
        await _record_share(self.ctx, self.task.task_id, "worker", payout)


@dataclass(frozen=True, slots=True)
class EmployerShareBook(RewardBook):
    """The employer's share: its ``refund_payouts`` row; completing it completes the split."""

    async def find_row(self, tx: Tx) -> PaymentRecord | None:
        return await tx.get_refund_payout(self.task.task_id, self.task.funding_round)

    async def add_row(self, tx: Tx, columns: dict[str, Any]) -> PaymentRecord:
        row = RefundPayoutRow(
            task_id=self.task.task_id, funding_round=self.task.funding_round, **columns
        )
        await tx.put_refund_payout(row)
        return row

    async def crossed(self, step: PayoutStep) -> None:
        match step:
            case PayoutStep.ROW_WRITTEN:
                await self.ctx.fault_hook("after_employer_share_row")
            case PayoutStep.FAILURE_RECORDED:
                await self.ctx.fault_hook("after_employer_share_failure")
            case PayoutStep.PAID:
                await self.ctx.fault_hook("after_employer_share")
            case PayoutStep.SETTLED:
                await self.ctx.fault_hook("after_split_settle")

    async def failed(self, reason: str) -> None:
        log.warning("refund_share_failed", task_id=self.task.task_id, reason=reason)

        def record(current: Task, now: int) -> c.Command | None:
            if current.state is not TaskState.VERIFIED or not current.is_split:
                return None
            return c.RecordRefundShareFailure(actor=SYSTEM_ACTOR, at=now, reason=reason)

        await apply_system(self.ctx, self.task.task_id, record)

    async def completed(self, preimage: bytes, payout: PaymentResult) -> Task | None:
        await _record_share(self.ctx, self.task.task_id, "employer", payout)
        done = await apply_system(
            self.ctx,
            self.task.task_id,
            lambda current, now: c.CompleteSplit(
                actor=SYSTEM_ACTOR, at=now, preimage_hex=preimage.hex()
            ),
        )
        log.info(
            "split_paid",
            task_id=self.task.task_id,
            worker_msat=self.task.split_worker_msat,
            employer_msat=self.task.split_employer_msat,
        )
        return done


async def _record_share(
    ctx: EscrowContext, task_id: str, share: str, payout: PaymentResult
) -> None:
    """Record one share paid; a replay after a crash decides to nothing."""
    preimage = await funds.payout_preimage(ctx, payout)
    await apply_system(
        ctx,
        task_id,
        lambda current, now: c.RecordSharePaid(
            actor=SYSTEM_ACTOR,
            at=now,
            share=share,
            payment_hash_hex=payout.payment_hash.hex(),
            payment_preimage_hex=preimage.hex(),
            fee_msat=payout.fee_msat,
        ),
    )


def _shares(
    ctx: EscrowContext, task: Task
) -> tuple[Sequence[tuple[HeldFunds, ShareBook]], HeldFunds, EmployerShareBook]:
    """The split's payouts in order: the worker's share (unless recorded paid), the employer's."""
    earlier: list[tuple[HeldFunds, ShareBook]] = []
    if not task.worker_share_paid:
        earlier.append((_worker_share(ctx, task), WorkerShareBook(ctx, task)))
    return earlier, _employer_share(ctx, task), EmployerShareBook(ctx, task)


async def pay_out(ctx: EscrowContext, task_id: str) -> Task | None:
    """Drive one VERIFIED task to PAID: its whole reward, or a split's two shares. Safe to
    call repeatedly and after a crash anywhere."""
    async with ctx.store.transaction() as tx:
        task = await tx.load_task(task_id)
    if task is None or not task.is_split:
        return await release_reward(ctx, task_id, task)
    if not task.release_pending or task.payment_hash_hex is None:
        return task
    earlier, employer, book = _shares(ctx, task)
    return await funds.pay_then_settle(ctx, employer, book, earlier)


async def split_must_settle(ctx: EscrowContext, task: Task) -> bool:
    """A share of the split succeeded or may still land, or the hold is settled: never cancel.
    The worker's share counts even once recorded paid (it was, from our own liquidity)."""
    if task.worker_share_paid:
        return True
    worker = (_worker_share(ctx, task), WorkerShareBook(ctx, task))
    return await funds.must_settle(
        ctx, _employer_share(ctx, task), EmployerShareBook(ctx, task), [worker]
    )


async def payout_may_land(ctx: EscrowContext, task: Task) -> bool:
    """The verified task's payout (a split's: either share) may land, or its hold is already
    settled: the guardian and a refund settle it then, never cancel it."""
    if task.state is not TaskState.VERIFIED or task.hold_settled_at is not None:
        return False
    if task.is_split:
        return await split_must_settle(ctx, task)
    return await funds.must_settle(ctx, held_reward(ctx, task), RewardBook(ctx, task))
