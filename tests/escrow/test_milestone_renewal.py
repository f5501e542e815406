"""Milestones that outlast one hold, on the simulator and both databases: each is created with
``renewal_needed``, its hold opened by the series sized to the cap, renewed round after round
with blocks mined between the steps, and paid from its last round, which alone settles; an
employer who never pays a milestone's renewal leaves it to the deadline policy, and a proof the
worker submitted before is still paid."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from support.milestone_flows import fund, plan, work_and_approve
from support.renewal_flows import (
    invoice_state,
    mine_to,
    opened_renewal,
    renewed_once,
)
from support.stacks import Stack
from support.task_flows import read_log, tag

from taskhold.lightning.base import InvoiceState, PaymentStatus

DAY_S = 86_400


def long_plan(count: int = 3) -> list[dict[str, Any]]:
    """Milestones three days apart: each needs more than one hold of the default cap."""
    now = int(time.time())
    return [{**m, "deadline_at": now + 3 * DAY_S * (i + 1)} for i, m in enumerate(plan(count))]


async def test_long_sequential_milestones_are_renewed_and_each_paid_once(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    created = await employer.create_milestones(long_plan(), funding_mode="sequential")
    ids = created["series"]["task_ids"]
    assert [m["renewal_needed"] for m in [await employer.get_task(i) for i in ids]] == [True] * 3
    employer_start = stack.world.employer.balance_msat
    paid: list[dict[str, Any]] = []
    for index, task_id in enumerate(ids):
        task = await fund(stack, employer, task_id)
        assert task["funding"]["cltv_expiry_delta"] == stack.settings.max_cltv_expiry_delta
        if index == 0:
            await worker.claim(task_id)
        hashes = [task["funding"]["payment_hash"]]
        height = stack.world.network.height
        task = await renewed_once(stack, employer, task)
        hashes.append(task["funding"]["payment_hash"])
        assert stack.world.network.height > height  # blocks were mined for the renewal
        assert task["state"] == "CLAIMED"
        final = await work_and_approve(stack, employer, worker, task_id)
        assert final["state"] == "PAID"
        assert hashlib.sha256(bytes.fromhex(final["preimage"])).hexdigest() == hashes[-1]
        assert [await invoice_state(stack, h) for h in hashes] == [
            InvoiceState.CANCELED,
            InvoiceState.SETTLED,
        ]
        paid.append(final)
    amounts = sum(task["amount_msat"] for task in paid)
    assert stack.world.employer.balance_msat == employer_start - amounts
    assert stack.world.worker.balance_msat == sum(task["payout_msat"] for task in paid)
    entries = await read_log(stack)
    for task_id in ids:
        ops = [tag(entry, "op") for entry in entries if tag(entry, "task") == task_id]
        assert ops.count("Renewed") == ops.count("RoundCancelled") == 1, ops
        assert ops.count("ReleaseCompleted") == 1, ops


async def test_an_unpaid_milestone_renewal_still_pays_the_submitted_proof(stack: Stack) -> None:
    """The employer never pays milestone 1's renewal: the proof the worker submitted is paid
    from the round it has at the guard margin, the renewal is cancelled, and milestone 2 opens."""
    employer, worker = stack.client(), stack.client()
    created = await employer.create_milestones(long_plan(2), funding_mode="sequential")
    ids = created["series"]["task_ids"]
    employer_start = stack.world.employer.balance_msat
    task = await fund(stack, employer, ids[0])
    await worker.claim(ids[0])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(ids[0], {"url": "https://example.org/chapter"}, invoice)
    renewal = await opened_renewal(stack, employer, task)
    await mine_to(stack, task, stack.settings.hold_reserve_blocks)
    await stack.settle_engine()
    final = await employer.get_task(ids[0])
    assert final["state"] == "PAID"
    assert final["funding"]["funding_round"] == task["funding"]["funding_round"]
    assert await invoice_state(stack, renewal["payment_hash"]) is InvoiceState.CANCELED
    assert await invoice_state(stack, task["funding"]["payment_hash"]) is InvoiceState.SETTLED
    assert stack.world.worker.balance_msat == task["payout_msat"]
    assert stack.world.employer.balance_msat == employer_start - task["amount_msat"]
    assert (await employer.get_task(ids[1]))["state"] == "PENDING_FUNDING"


async def test_an_unpaid_milestone_renewal_without_a_proof_refunds_and_ends_the_series(
    stack: Stack,
) -> None:
    """No proof and no renewal: the deadline policy refunds milestone 1 at the guard margin and
    the waiting milestones are cancelled, never opened."""
    employer, worker = stack.client(), stack.client()
    created = await employer.create_milestones(long_plan(), funding_mode="sequential")
    ids = created["series"]["task_ids"]
    employer_start = stack.world.employer.balance_msat
    task = await fund(stack, employer, ids[0])
    await worker.claim(ids[0])
    renewal = await opened_renewal(stack, employer, task)
    await mine_to(stack, task, stack.settings.guard_blocks)
    await stack.settle_engine()
    assert (await employer.get_task(ids[0]))["state"] == "REFUNDED"
    assert await invoice_state(stack, renewal["payment_hash"]) is InvoiceState.CANCELED
    assert [(await employer.get_task(i))["state"] for i in ids[1:]] == ["CANCELLED"] * 2
    assert stack.world.employer.balance_msat == employer_start
    assert stack.world.worker.balance_msat == 0


async def _disputed_milestone(
    stack: Stack,
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Milestone 1 of a long series: funded, claimed, submitted, rejected and disputed."""
    employer, worker, arbiter = stack.client(), stack.client(), stack.client()
    stack.services.settings.arbiters = [arbiter.pubkey_hex]
    created = await employer.create_milestones(long_plan(2), funding_mode="sequential")
    task_id = created["series"]["task_ids"][0]
    task = await fund(stack, employer, task_id)
    await worker.claim(task_id)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task_id, {"url": "https://example.org/chapter"}, invoice)
    await employer.reject(task_id, "not what we asked for")
    await worker.open_dispute(task_id, "it is exactly what was asked")
    task = await employer.get_task(task_id)
    assert task["state"] == "DISPUTED"
    return employer, worker, arbiter, task


async def test_a_ruling_after_a_renewal_is_carried_out_on_the_new_round(stack: Stack) -> None:
    """A dispute open at the renewal lead gets its renewal; the employer pays it, and the
    arbiter's ruling after the renewal pays the worker from, and settles, the new round."""
    employer, _, arbiter, task = await _disputed_milestone(stack)
    employer_start = stack.world.employer.balance_msat
    renewed = await renewed_once(stack, employer, task)
    assert renewed["state"] == "DISPUTED"
    await arbiter.resolve_dispute(task["task_id"], "worker", "it matches the acceptance")
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    new_hash = renewed["funding"]["payment_hash"]
    assert hashlib.sha256(bytes.fromhex(final["preimage"])).hexdigest() == new_hash
    assert await invoice_state(stack, task["funding"]["payment_hash"]) is InvoiceState.CANCELED
    assert await invoice_state(stack, new_hash) is InvoiceState.SETTLED
    assert stack.world.worker.balance_msat == task["payout_msat"]
    assert stack.world.employer.balance_msat == employer_start  # the first round came back


async def test_an_unpaid_renewal_during_a_dispute_ends_by_the_published_default(
    stack: Stack,
) -> None:
    """No renewal paid and no ruling by the guard margin: the dispute ends as the published
    terms say (a submission that passed the automatic checks is released) and the renewal is
    cancelled."""
    employer, _, _, task = await _disputed_milestone(stack)
    renewal = await opened_renewal(stack, employer, task)
    for blocks_left in (stack.settings.hold_reserve_blocks, stack.settings.guard_blocks):
        await mine_to(stack, task, blocks_left)  # the chain passes the reserve, then the guard
        await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert await invoice_state(stack, renewal["payment_hash"]) is InvoiceState.CANCELED
    assert await invoice_state(stack, task["funding"]["payment_hash"]) is InvoiceState.SETTLED
    assert stack.world.worker.balance_msat == task["payout_msat"]
    terms = (await employer.info())["renewal"]
    assert "during a dispute" in terms["rule"] and "guard_blocks" in terms["rule"]
    assert terms["guard_blocks"] == stack.settings.guard_blocks
    assert terms["hold_reserve_blocks"] == stack.settings.hold_reserve_blocks


async def test_a_payout_held_by_the_worker_across_the_renewal_lead_opens_no_renewal(
    open_custom: Callable[..., Awaitable[Stack]],
) -> None:
    """The worker's node holds the payout HTLC while milestone 1's hold reaches its renewal
    lead: a decided task is not renewed (no second hold for the employer to pay), its round
    is settled once when the worker takes the payout, and milestone 2 then opens."""
    stack = await open_custom(payout_timeout_s=3600)
    employer, worker = stack.client(), stack.client()
    created = await employer.create_milestones(long_plan(2), funding_mode="sequential")
    ids = created["series"]["task_ids"]
    employer_start = stack.world.employer.balance_msat
    task = await fund(stack, employer, ids[0])
    await worker.claim(ids[0])
    preimage = os.urandom(32)
    invoice = await stack.world.worker.create_hold_invoice(
        hashlib.sha256(preimage).digest(),
        task["payout_msat"],
        memo="payout",
        expiry_seconds=DAY_S,
        cltv_expiry_delta=80,
    )
    await worker.submit_proof(ids[0], {"url": "https://example.org/held"}, invoice.payment_request)
    lead = stack.settings.renewal_lead_blocks
    await mine_to(stack, task, lead + 3)  # the payout starts just before the lead
    await employer.approve(ids[0])

    async def one_pass() -> PaymentStatus:
        async with asyncio.timeout(30):
            await stack.services.engine.run_once()
            return (await stack.world.escrow.lookup_payment(invoice.payment_hash)).status

    while await one_pass() is not PaymentStatus.IN_FLIGHT:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    for _ in range(6):  # across the lead, one block and one pass at a time
        await stack.world.network.mine(1)
        assert await one_pass() is PaymentStatus.IN_FLIGHT
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    assert expiry - stack.world.network.height < lead
    assert await employer.renewal(ids[0]) is None
    await stack.world.worker.settle_invoice(preimage)
    await stack.settle_engine()
    final = await employer.get_task(ids[0])
    assert final["state"] == "PAID"
    assert final["funding"]["funding_round"] == 1
    assert await invoice_state(stack, task["funding"]["payment_hash"]) is InvoiceState.SETTLED
    assert len(stack.world.network.payments_to(invoice.payment_hash)) == 1
    assert stack.world.worker.balance_msat == task["payout_msat"]
    assert stack.world.employer.balance_msat == employer_start - task["amount_msat"]
    assert (await employer.get_task(ids[1]))["state"] == "PENDING_FUNDING"
