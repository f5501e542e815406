"""Renewal on the real regtest network: a task longer than one hold is renewed twice with
blocks mined between the steps (each renewal paid from the employer's lnd node, each previous
hold cancelled), then released; every balance moves by exactly the task's figures and no
channel is force-closed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.devnet_network import DevnetHandle

from taskhold.client import TaskholdClient
from taskhold.lightning.base import InvoiceState

from .test_escrow_e2e import (
    ACCEPTANCE,
    AMOUNT_MSAT,
    LndStack,
    _no_force_closes,
    invoice_state,
    lnd_settings,
    open_lnd_stack,
    settled_balance,
)

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

CAP_BLOCKS = 300
LEAD_BLOCKS = 200
"""A smaller cap and lead than the defaults (both above the reserve of 120 blocks these
settings keep): fewer blocks to mine for two renewals."""


@pytest.fixture
async def renewing_stack(
    devnet: DevnetHandle, tmp_path: Path, database_url: str
) -> AsyncIterator[LndStack]:
    settings = lnd_settings(
        devnet,
        tmp_path / "data",
        database_url,
        max_cltv_expiry_delta=CAP_BLOCKS,
        renewal_lead_blocks=LEAD_BLOCKS,
    )
    async with open_lnd_stack(devnet, settings) as stack:
        yield stack


async def renew_once(
    stack: LndStack,
    devnet: DevnetHandle,
    employer: TaskholdClient,
    task_id: str,
    hashes: list[str],
) -> None:
    """Mine to the renewal lead, pay the renewal, wait for the task to move to it."""
    task = await employer.get_task(task_id)
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    height = await stack.services.lightning.block_height()
    await devnet.mine(expiry - LEAD_BLOCKS - height)

    async def opened() -> bool:
        return await employer.renewal(task_id) is not None

    await stack.drive(opened)
    renewal = await employer.renewal(task_id)
    assert renewal is not None and renewal["amount_msat"] == task["amount_msat"]
    await stack.employer_wallet.send_payment(renewal["payment_request"])

    async def renewed(round_: int = renewal["funding_round"]) -> bool:
        current = await employer.get_task(task_id)
        retired = await invoice_state(stack, hashes[-1])
        return current["funding"]["funding_round"] == round_ and retired is InvoiceState.CANCELED

    await stack.drive(renewed)
    hashes.append(renewal["payment_hash"])
    await devnet.mine(3)  # blocks between the steps


async def test_a_task_renewed_twice_on_lnd_is_paid_in_full(
    renewing_stack: LndStack, devnet: DevnetHandle
) -> None:
    stack = renewing_stack
    employer, worker = stack.client(), stack.client()
    employer_before = await settled_balance(stack.employer_wallet)
    worker_before = await settled_balance(stack.worker_wallet)
    escrow_before = await settled_balance(stack.escrow_wallet)

    task = await employer.create_task(
        "Keep a translation up to date",
        "for ten days",
        AMOUNT_MSAT,
        int(time.time()) + 10 * 86_400,
        acceptance=ACCEPTANCE,
    )
    task_id = task["task_id"]
    assert task["renewal_needed"] is True
    funding = (await employer.request_funding(task_id))["funding"]
    assert funding["cltv_expiry_delta"] == CAP_BLOCKS
    await stack.employer_wallet.send_payment(funding["payment_request"])

    async def funded() -> bool:
        return (await employer.get_task(task_id))["state"] == "FUNDED"

    await stack.drive(funded)
    hashes = [funding["payment_hash"]]
    for _ in range(2):
        await renew_once(stack, devnet, employer, task_id, hashes)

    await worker.claim(task_id)
    invoice = await stack.worker_wallet.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task_id, {"url": "https://example.org/de"}, invoice.payment_request)
    await employer.approve(task_id)

    async def paid() -> bool:
        return (await employer.get_task(task_id))["state"] == "PAID"

    await stack.drive(paid)
    final = await employer.get_task(task_id)
    assert [await invoice_state(stack, h) for h in hashes] == [
        InvoiceState.CANCELED,
        InvoiceState.CANCELED,
        InvoiceState.SETTLED,
    ]
    worker_gain = await settled_balance(stack.worker_wallet) - worker_before
    employer_loss = employer_before - await settled_balance(stack.employer_wallet)
    escrow_gain = await settled_balance(stack.escrow_wallet) - escrow_before
    assert worker_gain == final["payout_msat"]
    assert employer_loss == final["amount_msat"]  # one amount, though three holds were paid
    assert escrow_gain == final["fee_msat"] - final["payout_fee_msat"]
    assert await _no_force_closes(stack)
