"""A hostile worker on the real regtest network: its own lnd node holds the payout HTLC (a hold
invoice as payout invoice), asks for a huge final CLTV, never settles or settles late.

Whatever it does, each test ends with the escrow node's balance whole, the employer refunded or
the task paid consistently, and no channel force-closed. The worker's node is a stock lnd: it
cancels a held HTLC itself ``holdexpirydelta`` blocks before its expiry, so the payout's CLTV
limit (inside the employer's hold) is what guarantees the payout is resolved in time.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bolt11
import httpx
import pytest
from support.devnet_network import DevnetHandle

from taskhold.api.application import create_api
from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.escrow.context import apply_system
from taskhold.lightning.base import InvoiceState, PaymentStatus
from taskhold.lightning.lnd import LndBackend
from taskhold.services import build_services
from taskhold.tasks import commands as c

from .test_escrow_e2e import (
    LndStack,
    _no_force_closes,
    funded_task,
    lnd_settings,
    settled_balance,
)

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

PROOF = {"url": "https://example.org/hostile"}


@pytest.fixture
async def hostile(
    devnet: DevnetHandle, tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[LndStack, LndBackend]]:
    """taskhold on the devnet, plus the worker's node as a backend (for hold invoices).

    Payouts wait only a moment for a held HTLC, so an engine pass is not blocked by it."""
    settings = lnd_settings(devnet, tmp_path / "data", database_url, payout_timeout_s=1)
    services = await build_services(
        settings, lightning=devnet.backend("escrow", payment_grace_seconds=1.0)
    )
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(services, run_engine=False)),
        base_url="http://taskhold.test",
        timeout=60,
    )
    stack = LndStack(
        services, http, devnet.wallet("employer"), devnet.wallet("worker"), devnet.wallet("escrow")
    )
    worker_node = devnet.backend("worker")
    try:
        yield stack, worker_node
    finally:
        await http.aclose()
        await services.close()
        await worker_node.close()
        for wallet in (stack.employer_wallet, stack.worker_wallet, stack.escrow_wallet):
            await wallet.close()


async def held_invoice(
    worker_node: LndBackend, amount_msat: int, *, cltv_expiry_delta: int = 40
) -> tuple[bytes, str]:
    preimage = os.urandom(32)
    invoice = await worker_node.create_hold_invoice(
        hashlib.sha256(preimage).digest(),
        amount_msat,
        memo="hostile payout",
        expiry_seconds=86_400,
        cltv_expiry_delta=cltv_expiry_delta,
    )
    return preimage, invoice.payment_request


def hash_of(payment_request: str) -> bytes:
    return bytes.fromhex(bolt11.decode(payment_request).payment_hash)


async def mine_until(
    stack: LndStack, devnet: DevnetHandle, task_id: str, states: set[str], *, blocks: int = 300
) -> dict[str, Any]:
    """Mine one block at a time, with an engine pass after each, until the task is in one of
    ``states``."""
    client = stack.client()
    for _ in range(blocks):
        task = await client.get_task(task_id)
        if task["state"] in states:
            return task
        await devnet.mine(1)
        stack.services.engine._retry_at.clear()
        await stack.services.engine.reconcile()
    raise AssertionError(f"the task never reached {states}")


async def balances(stack: LndStack) -> tuple[int, int, int]:
    return (
        await settled_balance(stack.escrow_wallet),
        await settled_balance(stack.employer_wallet),
        await settled_balance(stack.worker_wallet),
    )


async def claimed(stack: LndStack) -> tuple[TaskholdClient, TaskholdClient, dict[str, Any]]:
    employer, worker = stack.client(), stack.client()
    task = await funded_task(stack, employer)
    await worker.claim(task["task_id"])
    return employer, worker, task


async def test_a_held_payout_that_is_never_settled_ends_in_a_refund(
    hostile: tuple[LndStack, LndBackend], devnet: DevnetHandle
) -> None:
    stack, worker_node = hostile
    escrow_before, employer_before, worker_before = await balances(stack)
    employer, worker, task = await claimed(stack)
    _, payout_request = await held_invoice(worker_node, task["payout_msat"])
    await worker.submit_proof(task["task_id"], PROOF, payout_request)
    await employer.approve(task["task_id"])
    await stack.services.engine.reconcile()  # starts the payout in the background
    async with asyncio.timeout(60):
        while True:
            status = await stack.services.lightning.lookup_payment(hash_of(payout_request))
            if status.status is not PaymentStatus.UNKNOWN:
                break
            await asyncio.sleep(0.2)
    assert status.status is PaymentStatus.IN_FLIGHT  # held by the worker's node, not paid

    final = await mine_until(stack, devnet, task["task_id"], {"REFUNDED", "PAID"})

    assert final["state"] == "REFUNDED"
    status = await stack.services.lightning.lookup_payment(hash_of(payout_request))
    assert status.status is PaymentStatus.FAILED  # the worker's node gave it back in time
    assert await balances(stack) == (escrow_before, employer_before, worker_before)
    assert await _no_force_closes(stack)


async def test_a_held_payout_settled_late_pays_once(
    hostile: tuple[LndStack, LndBackend], devnet: DevnetHandle
) -> None:
    stack, worker_node = hostile
    escrow_before, employer_before, worker_before = await balances(stack)
    employer, worker, task = await claimed(stack)
    preimage, payout_request = await held_invoice(worker_node, task["payout_msat"])
    await worker.submit_proof(task["task_id"], PROOF, payout_request)
    await employer.approve(task["task_id"])
    await stack.services.engine.reconcile()
    await devnet.mine(10)  # the worker sits on the HTLC for a while
    await stack.services.engine.reconcile()
    assert (await employer.get_task(task["task_id"]))["state"] == "VERIFIED"

    await worker_node.settle_invoice(preimage)
    final = await mine_until(stack, devnet, task["task_id"], {"PAID", "REFUNDED"}, blocks=20)

    assert final["state"] == "PAID"
    assert final["payout_payment_hash"] == hash_of(payout_request).hex()
    escrow_after, employer_after, worker_after = await balances(stack)
    assert worker_after - worker_before == task["payout_msat"]
    assert employer_before - employer_after == task["amount_msat"]
    assert escrow_after - escrow_before == task["fee_msat"] - final["payout_fee_msat"]
    assert await _no_force_closes(stack)


async def test_a_huge_final_cltv_is_refused_and_never_paid(
    hostile: tuple[LndStack, LndBackend], devnet: DevnetHandle
) -> None:
    stack, worker_node = hostile
    escrow_before, employer_before, worker_before = await balances(stack)
    employer, worker, task = await claimed(stack)
    _, huge = await held_invoice(worker_node, task["payout_msat"], cltv_expiry_delta=2000)

    with pytest.raises(TaskholdAPIError) as refused:
        await worker.submit_proof(task["task_id"], PROOF, huge)
    assert (refused.value.status, refused.value.code) == (422, "payout_cltv_too_long")

    # Slipped past the check anyway (an invoice accepted before it existed): never paid.
    fine = await stack.worker_wallet.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task["task_id"], PROOF, fine.payment_request)
    worker_pubkey = worker.pubkey_hex
    await apply_system(
        stack.services.engine.ctx,
        task["task_id"],
        lambda t, now: c.UpdatePayoutRequest(actor=worker_pubkey, at=now, payout_request=huge),
    )
    await employer.approve(task["task_id"])
    await stack.services.engine.reconcile()
    await stack.services.engine.drain()  # the payout step it started refuses to send
    mid = await employer.get_task(task["task_id"])
    assert mid["last_payout_failure"].startswith("too late")
    status = await stack.services.lightning.lookup_payment(hash_of(huge))
    assert status.status is PaymentStatus.UNKNOWN

    final = await mine_until(stack, devnet, task["task_id"], {"REFUNDED", "PAID"})
    assert final["state"] == "REFUNDED"
    held = await worker_node.lookup_invoice(hash_of(huge))
    assert held.state is InvoiceState.OPEN  # nothing ever reached it
    assert await balances(stack) == (escrow_before, employer_before, worker_before)
    assert await _no_force_closes(stack)
