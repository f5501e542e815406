"""A hold invoice paid with the wrong amount is cancelled: the operator never keeps the excess."""

from __future__ import annotations

from support.stacks import Stack
from support.task_flows import created

from taskhold.lightning.base import InvoiceState, PaymentStatus


async def test_an_overpaid_hold_invoice_is_cancelled_and_the_task_expires(stack: Stack) -> None:
    employer = stack.client()
    task = await created(stack, employer)
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    before_msat = stack.world.employer.balance_msat
    overpaid_msat = task["amount_msat"] + 50_000

    sent = await stack.world.employer.send_payment(
        funding["payment_request"], amount_msat=overpaid_msat
    )
    assert sent.status is PaymentStatus.IN_FLIGHT  # the node accepted the overpayment
    await stack.settle_engine()

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "EXPIRED"
    status = await stack.world.escrow.lookup_invoice(bytes.fromhex(funding["payment_hash"]))
    assert status.state is InvoiceState.CANCELED
    assert stack.world.employer.balance_msat == before_msat
    history = (await employer.transitions(task["task_id"]))["transitions"]
    assert [t["event_type"] for t in history][-1] == "FundingExpired"
    reason = history[-1]["event"]["reason"]
    assert str(overpaid_msat) in reason and str(task["amount_msat"]) in reason


async def test_an_exact_payment_still_funds_the_task(stack: Stack) -> None:
    employer = stack.client()
    task = await created(stack, employer)
    funding = (await employer.request_funding(task["task_id"]))["funding"]

    await stack.world.employer.send_payment(
        funding["payment_request"], amount_msat=task["amount_msat"]
    )
    await stack.settle_engine()

    assert (await employer.get_task(task["task_id"]))["state"] == "FUNDED"
