"""The engine follows every invoice through one subscription of the node, dispatched by
payment hash: funding is noticed without a reconcile pass, and the subscriptions open to the
node do not grow with the number of unpaid invoices (on lnd each one held a connection)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import created

from taskhold.lightning.base import InvoiceState

HANG_GUARD_S = 30.0


@pytest.fixture
async def followed(tmp_path: Path, database_url: str) -> AsyncIterator[Stack]:
    """A stack whose engine follows invoices itself, as a served one does."""
    opened = await open_stack(stack_settings(tmp_path, database_url), hand_driven=False)
    try:
        yield opened
    finally:
        await close_stack(opened)


async def test_many_unpaid_invoices_share_one_subscription(followed: Stack) -> None:
    for _ in range(followed.settings.max_open_invoices_per_key):
        employer = followed.client()
        for _ in range(followed.settings.max_open_invoices_per_key):
            task = await created(followed, employer)
            await employer.request_funding(task["task_id"])
    await asyncio.sleep(0)  # the engine's subscription starts reading

    assert followed.world.network.open_subscriptions(followed.world.escrow.pubkey_hex) == 1


async def test_funding_is_noticed_from_the_subscription_alone(followed: Stack) -> None:
    employer = followed.client()
    task = await created(followed, employer)
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    await asyncio.sleep(0)

    await followed.world.employer.send_payment(funding["payment_request"])

    async with asyncio.timeout(HANG_GUARD_S):
        while (await employer.get_task(task["task_id"]))["state"] != "FUNDED":  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_a_cancelled_invoice_is_dispatched_to_its_task(followed: Stack) -> None:
    employer = followed.client()
    task = await created(followed, employer)
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    await asyncio.sleep(0)

    await followed.world.escrow.cancel_invoice(bytes.fromhex(funding["payment_hash"]))

    async with asyncio.timeout(HANG_GUARD_S):
        while (await employer.get_task(task["task_id"]))["state"] != "EXPIRED":  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    status = await followed.world.escrow.lookup_invoice(bytes.fromhex(funding["payment_hash"]))
    assert status.state is InvoiceState.CANCELED
