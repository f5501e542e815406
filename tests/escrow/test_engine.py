"""The escrow engine on the simulator: release order, crash recovery, the guardian, payout
failures and the timers, on both databases."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from support.audit_logs import audit_stored_log
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import funded, read_log, submitted, tag

from taskhold.audit import FindingKind
from taskhold.lightning.base import InvoiceState, PaymentStatus


class SimulatedCrash(Exception):
    """Stands for the process dying at a fault point."""


async def test_release_pays_the_worker_before_settling(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    payment_hash = bytes.fromhex(task["funding"]["payment_hash"])
    seen: list[tuple[int, InvoiceState]] = []

    async def observe(point: str) -> None:
        if point == "after_payout":
            status = await stack.world.escrow.lookup_invoice(payment_hash)
            seen.append((stack.world.worker.balance_msat, status.state))

    stack.services.engine.ctx.fault_hook = observe
    await employer.approve(task["task_id"])
    await stack.settle_engine()

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert seen == [(task["payout_msat"], InvoiceState.ACCEPTED)]
    assert hashlib.sha256(bytes.fromhex(final["preimage"])).hexdigest() == payment_hash.hex()
    status = await stack.world.escrow.lookup_invoice(payment_hash)
    assert status.state is InvoiceState.SETTLED


async def test_crash_between_payout_and_settle_recovers_to_paid_paying_once(
    tmp_path: Path, database_url: str
) -> None:
    settings = stack_settings(tmp_path, database_url)
    first = await open_stack(settings)
    world = first.world
    employer, worker = first.client(), first.client()
    task = await submitted(first, employer, worker)
    first.faults["after_payout"] = SimulatedCrash()
    await employer.approve(task["task_id"])
    await first.run_pass()
    assert (await employer.get_task(task["task_id"]))["state"] == "VERIFIED"
    assert world.worker.balance_msat == task["payout_msat"]
    await close_stack(first)

    restarted = await open_stack(settings, world=world)
    try:
        await restarted.settle_engine(1)
        final = await restarted.client().get_task(task["task_id"])
        assert final["state"] == "PAID"
        payout_hash = bytes.fromhex(final["payout_payment_hash"])
        assert len(world.network.payments_to(payout_hash)) == 1
        assert world.worker.balance_msat == task["payout_msat"]
        escrow_hash = bytes.fromhex(task["funding"]["payment_hash"])
        assert (await world.escrow.lookup_invoice(escrow_hash)).state is InvoiceState.SETTLED
    finally:
        await close_stack(restarted)


async def test_crash_after_settle_recovers_to_paid(tmp_path: Path, database_url: str) -> None:
    settings = stack_settings(tmp_path, database_url)
    first = await open_stack(settings)
    employer, worker = first.client(), first.client()
    task = await submitted(first, employer, worker)
    first.faults["after_settle"] = SimulatedCrash()
    await employer.approve(task["task_id"])
    await first.run_pass()
    await close_stack(first)

    restarted = await open_stack(settings, world=first.world)
    try:
        await restarted.settle_engine(1)
        final = await restarted.client().get_task(task["task_id"])
        assert final["state"] == "PAID"
        assert first.world.worker.balance_msat == task["payout_msat"]
    finally:
        await close_stack(restarted)


async def test_crash_after_cancel_recovers_to_refunded(tmp_path: Path, database_url: str) -> None:
    settings = stack_settings(tmp_path, database_url)
    first = await open_stack(settings)
    employer = first.client()
    task = await funded(first, employer)
    first.faults["after_cancel"] = SimulatedCrash()
    await employer.cancel(task["task_id"], reason="no longer needed")
    await first.run_pass()
    assert (await employer.get_task(task["task_id"]))["state"] == "FUNDED"
    await close_stack(first)

    restarted = await open_stack(settings, world=first.world)
    try:
        await restarted.settle_engine(1)
        assert (await restarted.client().get_task(task["task_id"]))["state"] == "REFUNDED"
    finally:
        await close_stack(restarted)


async def test_guardian_refunds_before_the_node_would_auto_cancel(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    employer_before = stack.world.employer.balance_msat

    while stack.world.network.height < expiry - stack.settings.hold_expiry_delta - 1:
        await stack.world.network.mine(1)
        await stack.run_pass()
        if (await employer.get_task(task["task_id"]))["state"] == "REFUNDED":
            break

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"
    assert "expiry" in final["refund_reason"]
    assert stack.world.network.auto_cancelled == []
    assert stack.world.network.height <= expiry - stack.settings.guard_blocks
    assert stack.world.employer.balance_msat == employer_before + task["amount_msat"]


async def test_guardian_releases_a_submitted_task_near_expiry(stack: Stack) -> None:
    """An unanswered submission counts as verified while the hold still has room for the
    payout's time lock (the reserve), not only at the guard margin, where none is left."""
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    while stack.world.network.height < expiry - stack.settings.hold_reserve_blocks:
        await stack.world.network.mine(1)
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert stack.world.network.auto_cancelled == []


async def test_unroutable_payout_retries_boundedly_then_refunds_at_hold_expiry(
    stack: Stack,
) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    stack.world.network.fail_payments_to(stack.world.worker)
    await employer.approve(task["task_id"])
    for _ in range(stack.settings.payout_max_attempts + 3):
        stack.services.engine._retry_at.clear()
        await stack.run_pass()
    mid = await employer.get_task(task["task_id"])
    assert mid["state"] == "VERIFIED"
    assert mid["payout_failures"] == stack.settings.payout_max_attempts
    assert mid["last_payout_failure"]

    expiry = task["funding"]["accepted_htlc_expiry_height"]
    while stack.world.network.height < expiry - stack.settings.guard_blocks:
        await stack.world.network.mine(1)
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"
    assert "payout failed" in final["refund_reason"]
    assert stack.world.worker.balance_msat == 0
    assert stack.world.network.auto_cancelled == []


async def test_a_payout_in_flight_at_the_guard_margin_is_settled_not_refunded(
    stack: Stack,
) -> None:
    """A retry still in flight when the guardian fires must not be met by a refund (the
    worker could then be paid and the employer refunded both), nor left to the node's own
    cancel: the hold is settled under the declared fallback, and the payout followed on."""
    stack.services.settings.payout_timeout_s = 1  # the held payment answers IN_FLIGHT at once
    stack.world.network.keep_holds_past_expiry(stack.world.worker)  # a hostile payee
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    preimage = os.urandom(32)  # the worker's node holds the payment until it settles
    held = await stack.world.worker.create_hold_invoice(
        hashlib.sha256(preimage).digest(),
        task["payout_msat"],
        memo="payout",
        expiry_seconds=86_400,
        cltv_expiry_delta=40,
    )
    await worker.submit_proof(
        task["task_id"], {"url": "https://example.org/h"}, held.payment_request
    )
    stack.world.network.fail_next_payments(1)
    await employer.approve(task["task_id"])
    await stack.run_pass()  # first attempt fails
    stack.services.engine._retry_at.clear()
    await stack.run_pass()  # the retry is held in flight by the worker's node
    mid = await employer.get_task(task["task_id"])
    assert (mid["state"], mid["payout_failures"]) == ("VERIFIED", 1)
    employer_before = stack.world.employer.balance_msat

    expiry = task["funding"]["accepted_htlc_expiry_height"]
    while stack.world.network.height < expiry - stack.settings.guard_blocks:
        await stack.world.network.mine(1)
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "VERIFIED"
    escrow_hash = bytes.fromhex(task["funding"]["payment_hash"])
    assert (await stack.world.escrow.lookup_invoice(escrow_hash)).state is InvoiceState.SETTLED
    assert "HoldSettledUnderLivePayout" in [tag(entry, "op") for entry in await read_log(stack)]
    await stack.world.network.mine(stack.settings.guard_blocks + 5)  # past its expiry: no cancel
    assert stack.world.network.auto_cancelled == []
    # The operator holds the money and the worker is not paid yet: the payout is owed, unproven.
    pending = await audit_stored_log(stack.services)
    assert {f.kind for f in pending.findings} == {FindingKind.UNPROVEN_PAYOUT}, pending.findings
    assert not pending.summary.payout_proven

    await stack.world.worker.settle_invoice(preimage)
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert stack.world.worker.balance_msat == task["payout_msat"]  # paid once
    assert stack.world.employer.balance_msat == employer_before  # and not refunded
    # The late-landing release reveals the worker's own preimage: the payout is proven.
    released = [e for e in await read_log(stack) if tag(e, "op") == "ReleaseCompleted"]
    assert [tag(e, "payout_preimage") for e in released] == [preimage.hex()]
    audited = await audit_stored_log(stack.services)
    assert audited.clean and audited.summary.payout_proven, audited.findings


async def test_new_payout_invoice_after_failure_gets_paid(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    stack.world.network.fail_next_payments(1)
    await employer.approve(task["task_id"])
    await stack.run_pass()
    assert (await employer.get_task(task["task_id"]))["payout_failures"] == 1

    fresh = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.update_payout_invoice(task["task_id"], fresh)
    stack.services.engine._retry_at.clear()
    await stack.run_pass()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert stack.world.worker.balance_msat == task["payout_msat"]


async def test_silent_employer_is_released_after_the_review_window(
    tmp_path: Path, database_url: str
) -> None:
    now = [1_900_000_000.0]
    settings = stack_settings(tmp_path, database_url, default_review_window_s=120)
    stack = await open_stack(settings)
    stack.services.engine.ctx.clock = lambda: now[0]
    try:
        employer, worker = stack.client(), stack.client()
        employer._clock = worker._clock = lambda: now[0]
        stack.world.network.clock = lambda: now[0]
        task = await submitted(stack, employer, worker, deadline_at=int(now[0]) + 3600)
        await stack.run_pass()
        assert (await employer.get_task(task["task_id"]))["state"] == "SUBMITTED"
        now[0] += 121
        await stack.settle_engine()
        assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    finally:
        await close_stack(stack)


async def test_dispute_resolved_for_the_worker_pays_the_worker(
    tmp_path: Path, database_url: str
) -> None:
    arbiter_stack = await open_stack(stack_settings(tmp_path, database_url))
    try:
        arbiter = arbiter_stack.client()
        arbiter_stack.services.settings.arbiters = [arbiter.pubkey_hex]
        employer, worker = arbiter_stack.client(), arbiter_stack.client()
        task = await submitted(arbiter_stack, employer, worker)
        await employer.reject(task["task_id"], "the haiku has six syllables in line one")
        await worker.open_dispute(task["task_id"], "it has five; count again")
        await arbiter.resolve_dispute(task["task_id"], "worker", "five syllables, as required")
        await arbiter_stack.settle_engine()
        assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    finally:
        await close_stack(arbiter_stack)


async def test_unpaid_invoice_expires_the_task(stack: Stack) -> None:
    employer = stack.client()
    task = await employer.create_task("t", "", 100_000, int(time.time()) + 600)
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    await stack.world.escrow.cancel_invoice(bytes.fromhex(funding["payment_hash"]))
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "EXPIRED"


async def test_payout_status_is_recorded(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    async with stack.services.store.transaction() as tx:
        payout = await tx.get_payout(task["task_id"], 1)
    assert payout is not None
    assert payout.status == PaymentStatus.SUCCEEDED.value
    assert payout.amount_msat == task["payout_msat"]
