"""Every payout is bounded by the hold that funds it (DESIGN.md section 4), on the simulator.

The attack these tests stand for: a payout that outlives the employer's hold. The worker's
invoice holds the payout HTLC (a hold invoice of its own, or another task's unpaid hold invoice
on the escrow node itself), the employer's hold reaches the node's auto-cancel, the task is
refunded, and then the payout lands: employer refunded, worker paid, the operator out of pocket.
Each test ends with the escrow node whole and the task either refunded with nothing paid out,
or paid exactly once.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import bolt11
import pytest
from support.stacks import Stack
from support.task_flows import funded, submitted

from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.escrow.context import apply_system
from taskhold.lightning.base import InvoiceState, PaymentStatus
from taskhold.tasks import commands as c

PROOF = {"url": "https://example.org/h"}


def hash_of(payment_request: str) -> bytes:
    return bytes.fromhex(bolt11.decode(payment_request).payment_hash)


async def refused(call: Any) -> TaskholdAPIError:
    with pytest.raises(TaskholdAPIError) as caught:
        await call
    assert caught.value.status == 422, caught.value
    return caught.value


async def claimed(stack: Stack, employer: TaskholdClient, worker: TaskholdClient) -> dict[str, Any]:
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    return task


async def worker_hold_invoice(
    stack: Stack, amount_msat: int, *, cltv_expiry_delta: int = 40
) -> tuple[bytes, str]:
    """A hold invoice of the worker's own node: it can keep the payout HTLC in flight."""
    preimage = os.urandom(32)
    held = await stack.world.worker.create_hold_invoice(
        hashlib.sha256(preimage).digest(),
        amount_msat,
        memo="payout",
        expiry_seconds=86_400,
        cltv_expiry_delta=cltv_expiry_delta,
    )
    return preimage, held.payment_request


async def swap_payout_unchecked(stack: Stack, task: dict[str, Any], payout_request: str) -> None:
    """Put an invoice on the task without the acceptance checks (one accepted before they
    existed, or by a path that forgot them): the check before paying must still hold."""
    worker = task["worker_pubkey"]
    await apply_system(
        stack.services.engine.ctx,
        task["task_id"],
        lambda t, now: c.UpdatePayoutRequest(actor=worker, at=now, payout_request=payout_request),
    )


async def run_to_the_guard(stack: Stack, task: dict[str, Any]) -> None:
    """Mine block by block with an engine pass after each, up to the node's own auto-cancel."""
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    while stack.world.network.height < expiry - stack.settings.hold_expiry_delta:
        await stack.world.network.mine(1)
        stack.services.engine._retry_at.clear()
        await stack.run_pass()


async def test_another_tasks_hold_invoice_as_payout_costs_the_operator_nothing(
    stack: Stack,
) -> None:
    """The simulator's form of the attack: the payout invoice is another task's unpaid hold
    invoice on the same escrow node. Paying it would fund that task with the operator's money
    and hold the payout in flight past the employer's hold."""
    employer, worker = stack.client(), stack.client()
    task = await claimed(stack, employer, worker)
    bait = await worker.create_task(  # the worker plays the bait task's employer too,
        "bait",  # with windows long enough for its hold to outlast the task's
        "",
        task["payout_msat"],
        task["deadline_at"],
        acceptance={},
        review_window_s=20 * 3600,
    )
    bait_invoice = (await worker.request_funding(bait["task_id"]))["funding"]["payment_request"]
    escrow_before = stack.world.escrow.balance_msat
    employer_before = stack.world.employer.balance_msat

    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task["task_id"], PROOF, invoice)
    task = await employer.get_task(task["task_id"])
    await swap_payout_unchecked(stack, task, bait_invoice)
    await employer.approve(task["task_id"])
    await run_to_the_guard(stack, task)

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"
    status = await stack.world.escrow.lookup_payment(hash_of(bait_invoice))
    assert status.status is PaymentStatus.UNKNOWN  # never paid, not even tried
    bait_state = await stack.world.escrow.lookup_invoice(hash_of(bait_invoice))
    assert bait_state.state is InvoiceState.OPEN  # the operator did not fund the bait task
    assert stack.world.escrow.locked_msat == 0
    assert stack.world.escrow.balance_msat == escrow_before
    assert stack.world.employer.balance_msat == employer_before + task["amount_msat"]
    assert stack.world.network.auto_cancelled == []
    assert "escrow node itself" in final["last_payout_failure"]


async def test_another_tasks_hold_invoice_is_refused_as_payout_invoice(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await claimed(stack, employer, worker)
    bait = await worker.create_task(
        "bait", "", task["payout_msat"], task["deadline_at"], acceptance={}
    )
    bait_invoice = (await worker.request_funding(bait["task_id"]))["funding"]["payment_request"]

    refusal = await refused(worker.submit_proof(task["task_id"], PROOF, bait_invoice))
    assert refusal.code == "payout_to_escrow_node"


async def test_a_worker_holding_the_payout_cannot_outlive_the_hold(stack: Stack) -> None:
    """lnd's own rules on the worker's node: it holds the payout and never settles. The payout's
    CLTV limit makes its HTLC expire (and the worker's node cancel it) before the guardian must
    decide, so the employer is refunded and nothing was paid."""
    stack.services.settings.payout_timeout_s = 1
    employer, worker = stack.client(), stack.client()
    task = await claimed(stack, employer, worker)
    _, held = await worker_hold_invoice(stack, task["payout_msat"])
    await worker.submit_proof(task["task_id"], PROOF, held)
    escrow_before = stack.world.escrow.balance_msat
    employer_before = stack.world.employer.balance_msat
    await employer.approve(task["task_id"])
    await stack.run_pass()
    payout = await stack.world.escrow.lookup_payment(hash_of(held))
    assert payout.status is PaymentStatus.IN_FLIGHT  # in flight: not counted as paid
    assert (await employer.get_task(task["task_id"]))["state"] == "VERIFIED"

    await run_to_the_guard(stack, task)

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"
    assert (await stack.world.escrow.lookup_payment(hash_of(held))).status is PaymentStatus.FAILED
    assert stack.world.escrow.balance_msat == escrow_before
    assert stack.world.employer.balance_msat == employer_before + task["amount_msat"]
    assert stack.world.worker.balance_msat == 0
    assert stack.world.network.auto_cancelled[0].payment_hash == hash_of(held)
    assert len(stack.world.network.auto_cancelled) == 1  # the worker's, never the employer's


async def test_a_hostile_worker_that_cancels_after_the_fallback_is_paid_on_a_new_invoice(
    stack: Stack,
) -> None:
    """A worker node that keeps the payout past its expiry: the hold is settled under the
    declared fallback. When that payout then fails, the worker is still owed: a new invoice
    is paid, once."""
    stack.services.settings.payout_timeout_s = 1
    stack.world.network.keep_holds_past_expiry(stack.world.worker)
    employer, worker = stack.client(), stack.client()
    task = await claimed(stack, employer, worker)
    _, held = await worker_hold_invoice(stack, task["payout_msat"])
    await worker.submit_proof(task["task_id"], PROOF, held)
    escrow_before = stack.world.escrow.balance_msat
    await employer.approve(task["task_id"])
    await run_to_the_guard(stack, task)
    settled = await employer.get_task(task["task_id"])
    assert (settled["state"], settled["hold_settled_at"] is not None) == ("VERIFIED", True)

    await stack.world.worker.cancel_invoice(hash_of(held))  # the late payee gives up
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "VERIFIED"  # still owed
    fresh = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.update_payout_invoice(task["task_id"], fresh)
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert final["payout_payment_hash"] == hash_of(fresh).hex()
    assert stack.world.worker.balance_msat == task["payout_msat"]
    assert stack.world.escrow.balance_msat == escrow_before + task["fee_msat"]


async def test_too_late_to_pay_nothing_is_sent(stack: Stack) -> None:
    """Once the hold leaves less than the invoice's final CLTV, the payout is not even tried:
    its HTLC could outlive the hold."""
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)  # an ordinary invoice: final CLTV 80
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    late = stack.settings.guard_blocks + stack.settings.payout_cltv_margin_blocks + 80
    while stack.world.network.height < expiry - late:
        await stack.world.network.mine(1)
    await employer.approve(task["task_id"])
    await stack.run_pass()

    mid = await employer.get_task(task["task_id"])
    assert mid["payout_failures"] == 1
    assert mid["last_payout_failure"].startswith("too late")
    payout_hash = hash_of(mid["payout_invoice"])
    assert (await stack.world.escrow.lookup_payment(payout_hash)).status is PaymentStatus.UNKNOWN


async def test_no_payout_after_the_node_cancelled_the_employers_htlc(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await employer.approve(task["task_id"])  # verified: the release is due on the next pass
    await stack.world.escrow.cancel_invoice(bytes.fromhex(task["funding"]["payment_hash"]))
    await stack.settle_engine()

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"
    payout_hash = hash_of(final["payout_invoice"])
    assert (await stack.world.escrow.lookup_payment(payout_hash)).status is PaymentStatus.UNKNOWN
    assert stack.world.worker.balance_msat == 0


async def test_a_payout_invoice_swapped_while_in_flight_is_not_paid_twice(stack: Stack) -> None:
    stack.services.settings.payout_timeout_s = 1
    employer, worker = stack.client(), stack.client()
    task = await claimed(stack, employer, worker)
    preimage, held = await worker_hold_invoice(stack, task["payout_msat"])
    await worker.submit_proof(task["task_id"], PROOF, held)
    await employer.approve(task["task_id"])
    await stack.run_pass()
    fresh = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.update_payout_invoice(task["task_id"], fresh)
    stack.services.engine._retry_at.clear()
    await stack.run_pass()
    assert (await stack.world.escrow.lookup_payment(hash_of(fresh))).status is (
        PaymentStatus.UNKNOWN
    )  # the first payment is followed, no second one sent

    await stack.world.worker.settle_invoice(preimage)
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert final["payout_payment_hash"] == hash_of(held).hex()
    assert stack.world.worker.balance_msat == task["payout_msat"]


# -- invoices refused when they are accepted ------------------------------------------------------


async def test_an_invoice_with_one_of_taskholds_hold_hashes_is_refused(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await claimed(stack, employer, worker)
    other = await funded(stack, stack.client())
    stolen_hash = bytes.fromhex(other["funding"]["payment_hash"])
    foreign = await stack.world.worker.create_hold_invoice(
        stolen_hash, task["payout_msat"], memo="x", expiry_seconds=86_400, cltv_expiry_delta=40
    )

    refusal = await refused(worker.submit_proof(task["task_id"], PROOF, foreign.payment_request))
    assert refusal.code == "hash_reused"


async def test_an_invoice_the_node_already_paid_is_refused(stack: Stack) -> None:
    """Else its recorded success would settle the hold without paying the worker anything."""
    employer, worker = stack.client(), stack.client()
    task = await claimed(stack, employer, worker)
    paid = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await stack.world.escrow.pay_invoice(paid, max_fee_msat=0, timeout_seconds=1, cltv_limit=500)

    refusal = await refused(worker.submit_proof(task["task_id"], PROOF, paid))
    assert refusal.code == "payout_hash_reused"


async def test_a_reused_payout_hash_is_refused_before_paying_too(stack: Stack) -> None:
    """A hash already paid by the node, slipped past the acceptance check: the payment the node
    reports was never sent for this task, so the hold is not settled on it."""
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    paid = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await stack.world.escrow.pay_invoice(paid, max_fee_msat=0, timeout_seconds=1, cltv_limit=500)
    worker_before = stack.world.worker.balance_msat
    await swap_payout_unchecked(stack, await employer.get_task(task["task_id"]), paid)
    await employer.approve(task["task_id"])
    await stack.settle_engine()

    mid = await employer.get_task(task["task_id"])
    assert mid["state"] == "VERIFIED"
    assert "already paid" in mid["last_payout_failure"]
    escrow_hash = bytes.fromhex(task["funding"]["payment_hash"])
    assert (await stack.world.escrow.lookup_invoice(escrow_hash)).state is InvoiceState.ACCEPTED
    assert stack.world.worker.balance_msat == worker_before


async def test_an_invoice_whose_final_cltv_exceeds_the_budget_is_refused(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await claimed(stack, employer, worker)
    _, too_long = await worker_hold_invoice(
        stack, task["payout_msat"], cltv_expiry_delta=stack.settings.max_cltv_expiry_delta
    )

    refusal = await refused(worker.submit_proof(task["task_id"], PROOF, too_long))
    assert refusal.code == "payout_cltv_too_long"


async def test_an_invoice_of_the_escrow_node_is_refused_as_a_new_payout_invoice(
    stack: Stack,
) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    own = await stack.world.escrow.create_invoice(task["payout_msat"], expiry_seconds=86_400)

    refusal = await refused(worker.update_payout_invoice(task["task_id"], own))
    assert refusal.code == "payout_to_escrow_node"


# -- routing fees ----------------------------------------------------------------------------------


async def test_a_routing_fee_above_the_operator_fee_is_not_paid(stack: Stack) -> None:
    """Someone playing worker and routing node at once would otherwise earn more than the
    operator on every small task."""
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker, amount_msat=100_000)
    stack.world.network.fee_base_msat = task["fee_msat"] + 1  # under the configured cap
    assert task["fee_msat"] + 1 < stack.settings.payout_min_fee_msat
    escrow_before = stack.world.escrow.balance_msat
    await employer.approve(task["task_id"])
    await stack.run_pass()

    mid = await employer.get_task(task["task_id"])
    assert (mid["state"], mid["payout_failures"]) == ("VERIFIED", 1)
    assert stack.world.escrow.balance_msat == escrow_before

    stack.world.network.fee_base_msat = task["fee_msat"]  # exactly what the operator earns
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    assert stack.world.escrow.balance_msat == escrow_before  # earned the fee, spent it routing
