"""Long milestones on the real regtest network: a series of three sequential milestones, each
longer than one hold, is renewed round after round with blocks mined between the steps (more
than 600 in all), every milestone paid from its last round; every balance moves by exactly the
series' figures and no channel is force-closed."""

from __future__ import annotations

import time
from typing import Any

import pytest
from support.devnet_network import DevnetHandle

from taskhold.lightning.base import InvoiceState

from .test_escrow_e2e import (
    ACCEPTANCE,
    AMOUNT_MSAT,
    LndStack,
    _no_force_closes,
    invoice_state,
    settled_balance,
)
from .test_renewal_e2e import LEAD_BLOCKS, renew_once, renewing_stack  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

RENEWALS = 2
"""Per milestone: three milestones renewed twice each mine some 600 blocks and more."""


def long_plan(count: int) -> list[dict[str, Any]]:
    """Milestones four days apart: each outlasts several holds of this stack's cap."""
    now = int(time.time())
    return [
        {
            "title": f"Chapter {index + 1}",
            "amount_msat": AMOUNT_MSAT,
            "deadline_at": now + 4 * 86_400 * (index + 1),
            "acceptance": ACCEPTANCE,
        }
        for index in range(count)
    ]


async def test_three_long_milestones_renewed_on_lnd_are_paid_in_full(
    renewing_stack: LndStack,  # noqa: F811
    devnet: DevnetHandle,
) -> None:
    stack = renewing_stack
    employer, worker = stack.client(), stack.client()
    employer_before = await settled_balance(stack.employer_wallet)
    worker_before = await settled_balance(stack.worker_wallet)
    escrow_before = await settled_balance(stack.escrow_wallet)
    height_before = await stack.services.lightning.block_height()
    created = await employer.create_milestones(long_plan(3), funding_mode="sequential")
    ids = created["series"]["task_ids"]
    finals = []
    for index, task_id in enumerate(ids):

        async def opened_funding(task_id: str = task_id) -> bool:
            return (await employer.get_task(task_id))["state"] == "PENDING_FUNDING"

        await stack.drive(opened_funding)
        task = await employer.get_task(task_id)
        assert task["renewal_needed"] is True
        assert task["funding"]["cltv_expiry_delta"] == stack.services.settings.max_cltv_expiry_delta
        await stack.employer_wallet.send_payment(task["funding"]["payment_request"])

        async def funded(task_id: str = task_id) -> bool:
            return (await employer.get_task(task_id))["state"] in ("FUNDED", "CLAIMED")

        await stack.drive(funded)
        if index == 0:
            await worker.claim(task_id)
        hashes = [task["funding"]["payment_hash"]]
        for _ in range(RENEWALS):
            await renew_once(stack, devnet, employer, task_id, hashes)

        async def claimed(task_id: str = task_id) -> bool:
            return (await employer.get_task(task_id))["state"] == "CLAIMED"

        await stack.drive(claimed)
        task = await employer.get_task(task_id)
        invoice = await stack.worker_wallet.create_invoice(
            task["payout_msat"], expiry_seconds=86_400
        )
        await worker.submit_proof(
            task_id, {"url": "https://example.org/chapter"}, invoice.payment_request
        )
        await employer.approve(task_id)

        async def paid(task_id: str = task_id) -> bool:
            return (await employer.get_task(task_id))["state"] == "PAID"

        await stack.drive(paid)
        assert [await invoice_state(stack, h) for h in hashes] == [
            *[InvoiceState.CANCELED] * RENEWALS,
            InvoiceState.SETTLED,
        ]
        finals.append(await employer.get_task(task_id))

    assert await stack.services.lightning.block_height() - height_before > 600
    worker_gain = await settled_balance(stack.worker_wallet) - worker_before
    employer_loss = employer_before - await settled_balance(stack.employer_wallet)
    escrow_gain = await settled_balance(stack.escrow_wallet) - escrow_before
    assert worker_gain == sum(final["payout_msat"] for final in finals)
    assert employer_loss == sum(final["amount_msat"] for final in finals)
    assert escrow_gain == sum(final["fee_msat"] - final["payout_fee_msat"] for final in finals)
    assert await _no_force_closes(stack)


async def test_an_unpaid_milestone_renewal_on_lnd_still_pays_the_submitted_proof(
    renewing_stack: LndStack,  # noqa: F811
    devnet: DevnetHandle,
) -> None:
    """The employer never pays the renewal of a milestone whose proof is in: at the payout
    reserve the guardian releases it from the round it holds, the renewal is cancelled, and the
    next milestone opens; balances exact, no force close."""
    stack = renewing_stack
    employer, worker = stack.client(), stack.client()
    employer_before = await settled_balance(stack.employer_wallet)
    worker_before = await settled_balance(stack.worker_wallet)
    created = await employer.create_milestones(long_plan(2), funding_mode="sequential")
    ids = created["series"]["task_ids"]
    task = await employer.get_task(ids[0])
    await stack.employer_wallet.send_payment(task["funding"]["payment_request"])

    async def funded() -> bool:
        return (await employer.get_task(ids[0]))["state"] == "FUNDED"

    await stack.drive(funded)
    await worker.claim(ids[0])
    task = await employer.get_task(ids[0])
    invoice = await stack.worker_wallet.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(ids[0], {"url": "https://example.org/one"}, invoice.payment_request)
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    height = await stack.services.lightning.block_height()
    await devnet.mine(expiry - LEAD_BLOCKS - height)

    async def opened() -> bool:
        return await employer.renewal(ids[0]) is not None

    await stack.drive(opened)
    renewal = await employer.renewal(ids[0])
    assert renewal is not None
    height = await stack.services.lightning.block_height()
    await devnet.mine(expiry - stack.services.settings.hold_reserve_blocks - height)

    async def paid() -> bool:
        return (await employer.get_task(ids[0]))["state"] == "PAID" and (
            await invoice_state(stack, renewal["payment_hash"]) is InvoiceState.CANCELED
        )

    await stack.drive(paid)
    final = await employer.get_task(ids[0])
    assert final["funding"]["funding_round"] == 1
    assert await invoice_state(stack, task["funding"]["payment_hash"]) is InvoiceState.SETTLED

    async def next_opened() -> bool:
        return (await employer.get_task(ids[1]))["state"] == "PENDING_FUNDING"

    await stack.drive(next_opened)
    assert await settled_balance(stack.worker_wallet) - worker_before == final["payout_msat"]
    assert employer_before - await settled_balance(stack.employer_wallet) == final["amount_msat"]
    assert await _no_force_closes(stack)
