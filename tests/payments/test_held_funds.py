"""The declared fallback (settle a hold under its live payout) meets a hold the node already
cancelled: there is nothing left to settle. That outcome is recorded once, like any hold the
node gave back, and the next engine pass neither logs nor changes anything."""

from __future__ import annotations

from typing import Any

import structlog
from support.deposit_flows import abandoned_claim, deposit_of, give_worker_wallet_money
from support.payee_holds import held_by_payee
from support.stacks import Stack
from support.task_flows import funded

from taskhold.client import TaskholdClient
from taskhold.lightning.base import PaymentStatus
from taskhold.lightning.sim import SimNode

PROOF = {"url": "https://example.org/held"}


async def held_invoice(node: SimNode, amount_msat: int) -> tuple[bytes, str]:
    """A hold invoice of the payee's own node: it keeps the payout HTLC in flight."""
    _, invoice = await held_by_payee(node, amount_msat)
    return invoice.payment_hash, invoice.payment_request


async def quiet_pass(stack: Stack) -> list[dict[str, Any]]:
    """One engine pass (payment jobs due at once); what it logged at warning or above."""
    stack.services.engine._retry_at.clear()
    with structlog.testing.capture_logs() as logs:
        await stack.run_pass()
    return [line for line in logs if line["log_level"] in ("warning", "error", "critical")]


async def mine_to_the_guard(stack: Stack, expiry_height: int) -> None:
    while stack.world.network.height < expiry_height - stack.settings.guard_blocks:
        await stack.world.network.mine(1)


async def test_a_cancelled_hold_under_a_live_payout_is_recorded_once(stack: Stack) -> None:
    stack.services.settings.payout_timeout_s = 1
    stack.world.network.keep_holds_past_expiry(stack.world.worker)
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    payout_hash, invoice = await held_invoice(stack.world.worker, task["payout_msat"])
    await worker.submit_proof(task["task_id"], PROOF, invoice)
    await employer.approve(task["task_id"])
    await stack.run_pass()
    assert (await stack.world.escrow.lookup_payment(payout_hash)).status is PaymentStatus.IN_FLIGHT
    await stack.world.escrow.cancel_invoice(bytes.fromhex(task["funding"]["payment_hash"]))
    await mine_to_the_guard(stack, task["funding"]["accepted_htlc_expiry_height"])

    first = await quiet_pass(stack)
    recorded = await employer.get_task(task["task_id"])
    assert recorded["state"] == "REFUNDED"
    assert recorded["last_payout_failure"] == "the node cancelled the hold invoice"
    assert [line["event"] for line in first] == ["hold_lost"]

    assert await quiet_pass(stack) == []
    assert await employer.get_task(task["task_id"]) == recorded


async def forfeit_paid_into_a_held_invoice(
    stack: Stack,
) -> tuple[TaskholdClient, str, str, dict[str, Any]]:
    """An abandoned claim's deposit, forfeited to the employer, whose node holds the payout."""
    gone = await abandoned_claim(stack)
    stack.services.settings.payout_timeout_s = 1
    stack.world.network.keep_holds_past_expiry(stack.world.employer)
    _, invoice = await held_invoice(stack.world.employer, gone.amount_msat)
    await gone.employer.claim_deposit(gone.task_id, gone.worker.pubkey_hex, invoice)
    await stack.run_pass()
    forfeit = deposit_of(await gone.employer.get_task(gone.task_id), gone.worker.pubkey_hex)
    return gone.employer, gone.task_id, gone.worker.pubkey_hex, forfeit


async def test_a_cancelled_deposit_under_a_live_payout_is_recorded_once(open_custom: Any) -> None:
    stack: Stack = await open_custom(pow_max_bits=8, reputation_max_staleness_s=0)
    await give_worker_wallet_money(stack)
    employer, task_id, depositor, forfeit = await forfeit_paid_into_a_held_invoice(stack)
    assert forfeit["state"] == "FORFEIT"
    await stack.world.escrow.cancel_invoice(bytes.fromhex(forfeit["payment_hash"]))
    await mine_to_the_guard(stack, forfeit["accepted_htlc_expiry_height"])

    assert await quiet_pass(stack) == []
    recorded = await employer.get_task(task_id)
    assert deposit_of(recorded, depositor)["state"] == "RETURNED"

    assert await quiet_pass(stack) == []
    assert await employer.get_task(task_id) == recorded
