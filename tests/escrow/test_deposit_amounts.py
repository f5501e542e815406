"""A deposit's hold invoice paid with more than the deposit is cancelled: the operator never keeps
an excess. (A node refuses a short payment itself: it never reaches taskhold.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.deposit_flows import deposit_of, give_worker_wallet_money, stranger
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import funded

from taskhold.lightning.base import InvoiceState, PaymentStatus


@pytest.fixture
async def deposits(tmp_path: Path, database_url: str) -> AsyncIterator[Stack]:
    """A stack on which a stranger's claim needs a deposit."""
    settings = stack_settings(tmp_path, database_url, pow_max_bits=8, reputation_max_staleness_s=0)
    stack = await open_stack(settings)
    try:
        yield stack
    finally:
        await close_stack(stack)


async def test_an_overpaid_deposit_is_cancelled_and_returned(deposits: Stack) -> None:
    stack = deposits
    await give_worker_wallet_money(stack)
    employer, worker = stack.client(), stranger(stack)
    task = await funded(stack, employer)
    deposit = (await worker.lock_deposit(task["task_id"]))["deposit"]
    before_msat = stack.world.worker.balance_msat

    sent = await stack.world.worker.send_payment(
        deposit["payment_request"], amount_msat=deposit["amount_msat"] + 50_000
    )
    assert sent.status is PaymentStatus.IN_FLIGHT  # the node held it
    await stack.settle_engine()

    after = deposit_of(await worker.get_task(task["task_id"]), worker.pubkey_hex)
    assert after["state"] == "RETURNED"
    status = await stack.world.escrow.lookup_invoice(bytes.fromhex(deposit["payment_hash"]))
    assert status.state is InvoiceState.CANCELED
    assert stack.world.worker.balance_msat == before_msat


async def test_a_deposit_paid_exactly_is_held(deposits: Stack) -> None:
    stack = deposits
    await give_worker_wallet_money(stack)
    employer, worker = stack.client(), stranger(stack)
    task = await funded(stack, employer)
    deposit = (await worker.lock_deposit(task["task_id"]))["deposit"]
    await stack.world.worker.send_payment(deposit["payment_request"])
    await stack.settle_engine()
    after = deposit_of(await worker.get_task(task["task_id"]), worker.pubkey_hex)
    assert after["state"] == "HELD"
