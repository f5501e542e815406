"""A verified task is not refunded for the operator's own shortage.

A payout the escrow node cannot send because its own channels lack outbound liquidity is not
the worker's failure: it is not counted (counting it would ask the worker for a new invoice and,
after ``payout_max_attempts``, leave work done to be refunded). It waits, is retried, and the
operator is alerted (``payout_short_of_liquidity`` in the log, the engine's ``LiquidityWatch``).
The guard margin still wins: a shortage that lasts until the hold nears its expiry is decided by
the declared policy, and the money never stays with the operator.
"""

from __future__ import annotations

import structlog
from support.stacks import Stack
from support.task_flows import submitted

from taskhold.lightning.base import InvoiceState, PaymentStatus
from taskhold.lightning.sim_network import SimNetwork
from taskhold.lightning.sim_records import INSUFFICIENT_BALANCE


async def drain_escrow(stack: Stack, keep_msat: int) -> int:
    """Send the escrow node's money away to the employer but ``keep_msat``; returns how much."""
    amount = stack.world.escrow.balance_msat - keep_msat
    invoice = await stack.world.employer.create_invoice(amount)
    paid = await stack.world.escrow.send_payment(invoice)
    assert paid.status is PaymentStatus.SUCCEEDED
    return amount


async def refill_escrow(stack: Stack, amount_msat: int) -> None:
    invoice = await stack.world.escrow.create_invoice(amount_msat)
    paid = await stack.world.employer.send_payment(invoice)
    assert paid.status is PaymentStatus.SUCCEEDED


async def retry_pass(stack: Stack) -> None:
    """The engine's next attempt, without waiting out its backoff."""
    stack.services.engine._retry_at.clear()
    await stack.run_pass()


def worker_receipts(network: SimNetwork, worker_pubkey: str) -> int:
    return sum(1 for p in network.settled_payments if p.payee_pubkey_hex == worker_pubkey)


async def test_a_payout_waits_out_a_shortage_and_is_paid_once_liquidity_returns(
    stack: Stack,
) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    drained = await drain_escrow(stack, keep_msat=task["payout_msat"] // 2)
    await employer.approve(task["task_id"])

    with structlog.testing.capture_logs() as logs:
        for _ in range(stack.settings.payout_max_attempts + 2):
            await retry_pass(stack)

    waiting = await employer.get_task(task["task_id"])
    assert (waiting["state"], waiting["payout_failures"]) == ("VERIFIED", 0)
    assert waiting["last_payout_failure"] is None
    alerts = [line for line in logs if line["event"] == "payout_short_of_liquidity"]
    assert alerts and all(line["log_level"] == "error" for line in alerts)
    watch = stack.services.engine.ctx.liquidity
    assert watch.waiting == {f"task/{task['task_id']}": task["payout_msat"]}
    assert watch.shortages_total >= stack.settings.payout_max_attempts + 2
    assert stack.world.worker.balance_msat == 0

    await refill_escrow(stack, drained)
    await retry_pass(stack)

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert stack.world.worker.balance_msat == task["payout_msat"]
    assert worker_receipts(stack.world.network, stack.world.worker.pubkey_hex) == 1
    assert watch.waiting == {}


async def test_the_nodes_own_insufficient_balance_is_not_counted_against_the_worker(
    stack: Stack,
) -> None:
    """The node may find its channels short only when it tries (lnd answers
    ``FAILURE_REASON_INSUFFICIENT_BALANCE``): the same rule holds."""
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    stack.world.network.fail_next_payments(
        stack.settings.payout_max_attempts + 1, INSUFFICIENT_BALANCE
    )
    await employer.approve(task["task_id"])
    for _ in range(stack.settings.payout_max_attempts + 1):
        await retry_pass(stack)
    mid = await employer.get_task(task["task_id"])
    assert (mid["state"], mid["payout_failures"]) == ("VERIFIED", 0)

    await retry_pass(stack)

    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    assert worker_receipts(stack.world.network, stack.world.worker.pubkey_hex) == 1


async def test_a_shortage_lasting_to_the_guard_margin_is_decided_by_policy_not_custody(
    stack: Stack,
) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await drain_escrow(stack, keep_msat=0)
    await employer.approve(task["task_id"])
    await retry_pass(stack)
    escrow_before = stack.world.escrow.balance_msat

    expiry = task["funding"]["accepted_htlc_expiry_height"]
    while stack.world.network.height < expiry - stack.settings.guard_blocks:
        await stack.world.network.mine(1)
    await stack.settle_engine()

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"
    assert "lacked the outbound liquidity" in final["refund_reason"]
    hold = bytes.fromhex(task["funding"]["payment_hash"])
    assert (await stack.world.escrow.lookup_invoice(hold)).state is InvoiceState.CANCELED
    assert stack.world.escrow.balance_msat == escrow_before  # nothing kept by the operator
    assert stack.world.worker.balance_msat == 0
    assert stack.world.network.auto_cancelled == []
