"""The engine follows every invoice through one subscription of the node, dispatched by
payment hash: funding is noticed without a reconcile pass, and the subscriptions open to the
node do not grow with the number of unpaid invoices (on lnd each one held a connection)."""

from __future__ import annotations

import asyncio

from conftest import Stack
from helpers import created

from taskhold.lightning.base import InvoiceState

HANG_GUARD_S = 30.0


async def test_many_unpaid_invoices_share_one_subscription(stack: Stack) -> None:
    for _ in range(stack.settings.max_open_invoices_per_key):
        employer = stack.client()
        for _ in range(stack.settings.max_open_invoices_per_key):
            task = await created(stack, employer)
            await employer.request_funding(task["task_id"])
    await asyncio.sleep(0)  # the engine's subscription starts reading

    assert stack.world.network.open_subscriptions(stack.world.escrow.pubkey_hex) == 1


async def test_funding_is_noticed_from_the_subscription_alone(stack: Stack) -> None:
    employer = stack.client()
    task = await created(stack, employer)
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    await asyncio.sleep(0)

    await stack.world.employer.send_payment(funding["payment_request"])

    async with asyncio.timeout(HANG_GUARD_S):
        while (await employer.get_task(task["task_id"]))["state"] != "FUNDED":  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_a_cancelled_invoice_is_dispatched_to_its_task(stack: Stack) -> None:
    employer = stack.client()
    task = await created(stack, employer)
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    await asyncio.sleep(0)

    await stack.world.escrow.cancel_invoice(bytes.fromhex(funding["payment_hash"]))

    async with asyncio.timeout(HANG_GUARD_S):
        while (await employer.get_task(task["task_id"]))["state"] != "EXPIRED":  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    status = await stack.world.escrow.lookup_invoice(bytes.fromhex(funding["payment_hash"]))
    assert status.state is InvoiceState.CANCELED
