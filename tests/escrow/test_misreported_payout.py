"""A node that misreports a live payout must not lead to a refund under that payout.

The guardian asks the escrow node whether a verified task's payout may still land before it
refunds. Two ways that answer can be wrong while the payee's node in fact holds the payout HTLC,
and what taskhold must do in each (the payee can settle it at any moment, so the operator must
never both give the employer's HTLC back and pay the worker):

- the node forgets a payment it acknowledged (a restored or pruned payment database answers
  "unknown"): the row says the node took the payment, so it may land: settle, never refund;
- the node wrongly says "failed" once, to the guardian: the refund it orders asks again before
  it cancels, hears the truth, and settles instead;
- the node wrongly says "failed", the cancel of the hold then fails, and the payout lands: the
  refund is not yet done, so the hold is settled instead and the worker's payment completes the
  release, rather than the task sitting stuck with a refund the machine can no longer finish.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from support.deposit_flows import abandoned_claim, deposit_of, give_worker_wallet_money
from support.payee_holds import held_by_payee
from support.stacks import Stack
from support.task_flows import funded, read_log, tag

from taskhold.audit import audit_log
from taskhold.escrow.context import apply_system
from taskhold.lightning.base import LightningError, PaymentResult, PaymentStatus
from taskhold.tasks import SYSTEM_ACTOR, Task
from taskhold.tasks import commands as c

PROOF = {"url": "https://example.org/misreported"}


@dataclass
class HeldPayout:
    """A verified task whose payout the worker's node holds, after one failed attempt."""

    task: dict[str, Any]
    payout_hash: bytes
    payout_preimage: bytes
    start: dict[str, int]
    """The escrow's and the employer's balances before the task."""


async def held_payout_after_a_failure(stack: Stack) -> HeldPayout:
    stack.services.settings.payout_timeout_s = 1
    stack.world.network.keep_holds_past_expiry(stack.world.worker)
    start = balances(stack)
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    preimage, invoice = await held_by_payee(stack.world.worker, task["payout_msat"])
    await worker.submit_proof(task["task_id"], PROOF, invoice.payment_request)
    await employer.approve(task["task_id"])

    def failed_once(current: Task, now: int) -> c.Command | None:
        return c.RecordPayoutFailure(actor=SYSTEM_ACTOR, at=now, reason="no route (first try)")

    await apply_system(stack.services.engine.ctx, task["task_id"], failed_once)
    await stack.run_pass()  # the retry: the worker's node holds it
    escrow = stack.world.escrow
    assert (await escrow.lookup_payment(invoice.payment_hash)).status is PaymentStatus.IN_FLIGHT
    height = task["funding"]["accepted_htlc_expiry_height"] - stack.settings.guard_blocks
    while stack.world.network.height < height:
        await stack.world.network.mine(1)
    return HeldPayout(task, invoice.payment_hash, preimage, start)


@contextmanager
def node_answers(
    stack: Stack, payout_hash: bytes, status: PaymentStatus, times: int = 1_000
) -> Iterator[None]:
    """The escrow node reports ``status`` for the payout, whatever it really is, the first
    ``times`` it is asked."""
    escrow = stack.world.escrow
    real = escrow.lookup_payment
    left = [times]

    async def misreported(payment_hash: bytes) -> PaymentResult:
        known = await real(payment_hash)
        if payment_hash != payout_hash or left[0] == 0:
            return known
        left[0] -= 1
        return PaymentResult(payment_hash=payment_hash, status=status)

    escrow.lookup_payment = misreported  # type: ignore[method-assign]
    try:
        yield
    finally:
        del escrow.lookup_payment


@contextmanager
def cancel_fails(stack: Stack) -> Iterator[None]:
    escrow = stack.world.escrow

    async def refused(payment_hash: bytes) -> None:
        raise LightningError("the node is busy")

    escrow.cancel_invoice = refused  # type: ignore[method-assign]
    try:
        yield
    finally:
        del escrow.cancel_invoice


def balances(stack: Stack) -> dict[str, int]:
    world = stack.world
    return {"escrow": world.escrow.balance_msat, "employer": world.employer.balance_msat}


def assert_paid_once(stack: Stack, held: HeldPayout) -> None:
    """The employer paid the reward once and got nothing back; the escrow paid the worker
    once and kept at most its fee."""
    after = balances(stack)
    assert after["employer"] == held.start["employer"] - held.task["amount_msat"]
    earned = after["escrow"] - held.start["escrow"]
    assert 0 <= earned <= held.task["amount_msat"] - held.task["payout_msat"]


async def settle_payout_and_finish(stack: Stack, held: HeldPayout) -> dict[str, Any]:
    """The worker's node takes its payout; the engine then finishes the task."""
    await stack.world.worker.settle_invoice(held.payout_preimage)
    for _ in range(3):
        stack.services.engine._retry_at.clear()
        await stack.run_pass()
    return await stack.client().get_task(held.task["task_id"])


async def test_a_payment_the_node_forgot_is_settled_not_refunded(stack: Stack) -> None:
    held = await held_payout_after_a_failure(stack)
    with node_answers(stack, held.payout_hash, PaymentStatus.UNKNOWN):
        await stack.run_pass()
    guarded = await stack.client().get_task(held.task["task_id"])
    assert guarded["state"] == "VERIFIED"
    assert guarded["refund_reason"] is None
    assert guarded["hold_settled_at"] is not None  # the declared fallback, not a refund

    done = await settle_payout_and_finish(stack, held)
    assert done["state"] == "PAID"
    assert_paid_once(stack, held)


async def test_a_payout_that_lands_while_the_refund_cannot_cancel_completes_the_release(
    stack: Stack,
) -> None:
    held = await held_payout_after_a_failure(stack)
    with node_answers(stack, held.payout_hash, PaymentStatus.FAILED), cancel_fails(stack):
        await stack.run_pass()
    ordered = await stack.client().get_task(held.task["task_id"])
    assert ordered["state"] == "VERIFIED"
    assert ordered["refund_reason"] is not None  # the guardian believed the node

    done = await settle_payout_and_finish(stack, held)
    assert done["state"] == "PAID"
    assert done["refund_reason"] is None
    assert_paid_once(stack, held)
    entries = await read_log(stack)
    ops = [tag(entry, "op") for entry in entries]
    assert ops[-3:] == ["RefundOrdered", "HoldSettledUnderLivePayout", "ReleaseCompleted"]
    result = audit_log(entries, stack.services.signer.get_public_key())
    assert result.clean, [f.to_json() for f in result.findings]


async def test_a_refund_asks_again_before_it_cancels(stack: Stack) -> None:
    held = await held_payout_after_a_failure(stack)
    with node_answers(stack, held.payout_hash, PaymentStatus.FAILED, times=1):
        await stack.run_pass()
    settled = await stack.client().get_task(held.task["task_id"])
    assert settled["state"] == "VERIFIED"
    assert settled["refund_reason"] is None  # ordered on the wrong answer, then superseded
    assert settled["hold_settled_at"] is not None

    done = await settle_payout_and_finish(stack, held)
    assert done["state"] == "PAID"
    assert_paid_once(stack, held)


async def test_a_forfeit_payout_that_lands_while_its_return_cannot_cancel_is_paid_once(
    open_custom: Any,
) -> None:
    """The same for a forfeited deposit: its return, ordered on a wrong "failed", gives way
    to the payout that landed, and the depositor's HTLC is not given back as well."""
    stack: Stack = await open_custom(pow_max_bits=8, reputation_max_staleness_s=0)
    await give_worker_wallet_money(stack)
    gone = await abandoned_claim(stack)
    stack.services.settings.payout_timeout_s = 1
    stack.world.network.keep_holds_past_expiry(stack.world.employer)
    preimage, invoice = await held_by_payee(stack.world.employer, gone.amount_msat, memo="forfeit")
    await gone.employer.claim_deposit(gone.task_id, gone.worker.pubkey_hex, invoice.payment_request)
    forfeit = deposit_of(await gone.employer.get_task(gone.task_id), gone.worker.pubkey_hex)

    def failed_once(current: Task, now: int) -> c.Command | None:
        return c.RecordDepositPayoutFailure(
            actor=SYSTEM_ACTOR,
            at=now,
            payment_hash_hex=forfeit["payment_hash"],
            reason="no route (first try)",
        )

    await apply_system(stack.services.engine.ctx, gone.task_id, failed_once)
    await stack.run_pass()  # the retry: the employer's node holds it
    escrow = stack.world.escrow
    assert (await escrow.lookup_payment(invoice.payment_hash)).status is PaymentStatus.IN_FLIGHT
    escrow_before = escrow.balance_msat
    while stack.world.network.height < forfeit["accepted_htlc_expiry_height"] - (
        stack.settings.guard_blocks
    ):
        await stack.world.network.mine(1)

    with node_answers(stack, invoice.payment_hash, PaymentStatus.FAILED), cancel_fails(stack):
        await stack.run_pass()
    ordered = deposit_of(await gone.employer.get_task(gone.task_id), gone.worker.pubkey_hex)
    assert ordered["state"] == "RETURNING"  # the guardian believed the node

    await stack.world.employer.settle_invoice(preimage)
    for _ in range(3):
        stack.services.engine._retry_at.clear()
        await stack.run_pass()
    done = deposit_of(await gone.employer.get_task(gone.task_id), gone.worker.pubkey_hex)
    assert done["state"] == "PAID_OUT"
    assert stack.world.worker.balance_msat == gone.worker_before_msat - gone.amount_msat
    assert escrow.balance_msat - escrow_before == gone.amount_msat  # the hold, settled once
    result = audit_log(await read_log(stack), stack.services.signer.get_public_key())
    assert result.clean, [f.to_json() for f in result.findings]
