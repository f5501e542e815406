"""A squatter on the real regtest network: the claim is revoked once its timeout passes, the
employer's HTLC stays held (nothing is refunded), and a second worker's node is paid exactly."""

from __future__ import annotations

import asyncio

import pytest

from taskhold.client import TaskholdAPIError
from taskhold.lightning.base import InvoiceState

from .test_escrow_e2e import LndStack, funded_task, invoice_state, lnd_stack, settled_balance

__all__ = ["lnd_stack"]

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

CLAIM_TIMEOUT_S = 2


async def test_a_revoked_squatters_task_is_paid_to_the_second_worker(
    lnd_stack: LndStack,
) -> None:
    employer, squatter, worker = lnd_stack.client(), lnd_stack.client(), lnd_stack.client()
    employer_before = await settled_balance(lnd_stack.employer_wallet)
    worker_before = await settled_balance(lnd_stack.worker_wallet)
    escrow_before = await settled_balance(lnd_stack.escrow_wallet)
    task = await funded_task(lnd_stack, employer, claim_timeout_s=CLAIM_TIMEOUT_S)
    task_id, payment_hash = task["task_id"], task["funding"]["payment_hash"]
    await squatter.claim(task_id)
    await asyncio.sleep(CLAIM_TIMEOUT_S + 0.5)
    revoked = await employer.revoke(task_id, "no proof")
    assert revoked["state"] == "FUNDED" and revoked["barred_workers"] == [squatter.pubkey_hex]
    with pytest.raises(TaskholdAPIError) as again:
        await squatter.claim(task_id)
    assert again.value.code == "barred_worker"
    await lnd_stack.services.engine.reconcile()
    assert await invoice_state(lnd_stack, payment_hash) is InvoiceState.ACCEPTED

    await worker.claim(task_id)
    invoice = await lnd_stack.worker_wallet.create_invoice(
        task["payout_msat"], expiry_seconds=86_400
    )
    await worker.submit_proof(
        task_id, {"url": "https://example.org/review"}, invoice.payment_request
    )
    await employer.approve(task_id)

    async def is_paid() -> bool:
        return (await employer.get_task(task_id))["state"] == "PAID"

    await lnd_stack.drive(is_paid)
    final = await employer.get_task(task_id)
    assert final["worker_pubkey"] == worker.pubkey_hex
    assert await invoice_state(lnd_stack, payment_hash) is InvoiceState.SETTLED
    assert await settled_balance(lnd_stack.worker_wallet) - worker_before == final["payout_msat"]
    assert (
        employer_before - await settled_balance(lnd_stack.employer_wallet) == final["amount_msat"]
    )
    escrow_gain = await settled_balance(lnd_stack.escrow_wallet) - escrow_before
    assert escrow_gain == final["fee_msat"] - final["payout_fee_msat"]
