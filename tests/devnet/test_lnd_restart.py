"""The escrow's lnd restarted under a running taskhold: killed (SIGKILL) mid-hold, and stopped
cleanly while the worker's payout is in flight. The engine rides the outage out (calls fail
with 503, nothing is refunded, no pass dies), its one invoice subscription reconnects by
itself, and the task ends PAID with the worker paid once, the escrow keeping exactly its fee
and no channel closed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.devnet_network import DevnetHandle

from taskhold.client import TaskholdAPIError
from taskhold.lightning.base import InvoiceState, LightningError, PaymentStatus
from taskhold.lightning.lnd import LndBackend

from .live_stack import (
    balances,
    funded,
    hold_state,
    live_stack,
    public_log_problems,
    sqlite_url,
)
from .test_escrow_e2e import ACCEPTANCE, AMOUNT_MSAT, LndStack, _no_force_closes
from .test_hostile_worker import PROOF, hash_of, held_invoice

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

__all__ = ["sqlite_url"]  # the fixture

DOWN_S = 8.0
"""How long the node stays down: several engine passes and subscription retries fail."""


@pytest.fixture
async def stack(devnet: DevnetHandle, tmp_path: Path, sqlite_url: str) -> AsyncIterator[LndStack]:
    # Invoices are read from the node only by the subscription: a reconcile pass (which
    # re-reads every open invoice) would hide a subscription that never came back.
    async with live_stack(
        devnet, tmp_path / "data", sqlite_url, reconcile_interval_s=3600.0, payout_timeout_s=5
    ) as opened:
        yield opened


async def _node_down(stack: LndStack, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            await stack.services.lightning.block_height()
        except LightningError:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the escrow node did not go down")


async def test_escrow_lnd_killed_mid_hold_converges(stack: LndStack, devnet: DevnetHandle) -> None:
    employer, worker = stack.client(), stack.client()
    before = await balances(stack)
    task = await funded(stack, employer)
    task_id, hold_hash = task["task_id"], task["funding"]["payment_hash"]
    await worker.claim(task_id)
    invoice = await stack.worker_wallet.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task_id, PROOF, invoice.payment_request)
    second = await employer.create_task(
        "Second", "", AMOUNT_MSAT, int(time.time()) + 1800, acceptance=ACCEPTANCE
    )

    restart = asyncio.create_task(devnet.restart_node("escrow", kill=True, down_seconds=DOWN_S))
    try:
        await _node_down(stack)
        with pytest.raises(TaskholdAPIError) as refused:
            await employer.request_funding(second["task_id"])
        assert (refused.value.status, refused.value.code) == (503, "lightning_unavailable")
        await employer.approve(task_id)  # the release fails pass after pass until the node is back
    finally:
        await restart  # even when an assertion failed: the next tests need the node

    assert await hold_state(stack, hold_hash) in (InvoiceState.ACCEPTED, InvoiceState.SETTLED)
    final = await employer.wait_for_state(task_id, {"PAID", "REFUNDED"}, timeout_s=90)
    assert final["state"] == "PAID", final
    assert await hold_state(stack, hold_hash) is InvoiceState.SETTLED

    # Only the subscription can see this one funded (no reconcile pass runs): it reconnected.
    funding = (await employer.request_funding(second["task_id"]))["funding"]
    await stack.employer_wallet.send_payment(funding["payment_request"])
    await employer.wait_for_state(second["task_id"], {"FUNDED"}, timeout_s=60)
    await employer.cancel(second["task_id"], reason="done testing")
    await employer.wait_for_state(second["task_id"], {"REFUNDED"}, timeout_s=60)
    assert await hold_state(stack, funding["payment_hash"]) is InvoiceState.CANCELED

    escrow, employer_balance, worker_balance = await balances(stack)
    assert worker_balance - before[2] == final["payout_msat"]
    assert before[1] - employer_balance == final["amount_msat"]
    assert escrow - before[0] == final["fee_msat"] - final["payout_fee_msat"]
    assert await _no_force_closes(stack)
    assert await public_log_problems(stack) == []


async def test_escrow_lnd_restarted_with_the_payout_in_flight_pays_once(
    stack: LndStack, devnet: DevnetHandle
) -> None:
    """The worker's node holds the payout HTLC while the escrow node restarts: afterwards
    the engine follows that same payment (never sends a second) and settles once it lands."""
    worker_node: LndBackend = devnet.backend("worker")
    try:
        employer, worker = stack.client(), stack.client()
        before = await balances(stack)
        task = await funded(stack, employer)
        task_id = task["task_id"]
        await worker.claim(task_id)
        preimage, payout_request = await held_invoice(worker_node, task["payout_msat"])
        await worker.submit_proof(task_id, PROOF, payout_request)
        await employer.approve(task_id)
        async with asyncio.timeout(60):
            while True:
                held = await worker_node.lookup_invoice(hash_of(payout_request))
                if held.state is InvoiceState.ACCEPTED:
                    break
                await asyncio.sleep(0.2)

        # A clean stop this time (an operator's restart): lnd shuts its links down under the HTLC.
        await devnet.restart_node("escrow", kill=False, down_seconds=DOWN_S)
        await asyncio.sleep(2 * stack.services.settings.payout_timeout_s)  # passes after it
        payment = await stack.services.lightning.lookup_payment(hash_of(payout_request))
        assert payment.status is PaymentStatus.IN_FLIGHT
        assert (await employer.get_task(task_id))["state"] == "VERIFIED"

        await worker_node.settle_invoice(preimage)
        final = await employer.wait_for_state(task_id, {"PAID", "REFUNDED"}, timeout_s=90)
        assert final["state"] == "PAID", final
        assert final["payout_payment_hash"] == hash_of(payout_request).hex()
        assert await hold_state(stack, task["funding"]["payment_hash"]) is InvoiceState.SETTLED
        escrow, employer_balance, worker_balance = await balances(stack)
        assert worker_balance - before[2] == task["payout_msat"]
        assert before[1] - employer_balance == task["amount_msat"]
        assert escrow - before[0] == task["fee_msat"] - final["payout_fee_msat"]
        assert await _no_force_closes(stack)
        assert await public_log_problems(stack) == []
    finally:
        await worker_node.close()
