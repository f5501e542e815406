"""Renewal on the simulator: a task longer than one hold is carried round after round, and
whatever happens around a renewal (unpaid, raced by a release, a crash) ends with one round
settled or none, the worker paid once and nothing stuck, on both databases."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from support.renewal_flows import (
    invoice_state,
    long_task,
    mine_to,
    mine_to_renewal,
    opened_renewal,
    renewed_once,
)
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import funded, read_log, tag

from taskhold.lightning.base import InvoiceState, PaymentResult


class SimulatedCrash(Exception):
    """Stands for the process dying at a fault point."""


async def test_a_long_task_is_renewed_twice_and_paid_from_the_last_round(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await long_task(stack, employer)
    employer_start = stack.world.employer.balance_msat  # the first round is held already
    hashes = [task["funding"]["payment_hash"]]
    for _ in range(2):
        task = await renewed_once(stack, employer, task)
        hashes.append(task["funding"]["payment_hash"])
        assert task["renewal"] is None
        assert await invoice_state(stack, hashes[-2]) is InvoiceState.CANCELED
        assert await invoice_state(stack, hashes[-1]) is InvoiceState.ACCEPTED
    assert len(set(hashes)) == 3
    # only one HTLC of the employer is held at a time: the two cancelled ones came back
    assert stack.world.employer.balance_msat == employer_start

    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task["task_id"], {"url": "https://example.org/x"}, invoice)
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert hashlib.sha256(bytes.fromhex(final["preimage"])).hexdigest() == hashes[-1]
    assert [await invoice_state(stack, h) for h in hashes] == [
        InvoiceState.CANCELED,
        InvoiceState.CANCELED,
        InvoiceState.SETTLED,
    ]
    assert stack.world.worker.balance_msat == task["payout_msat"]
    assert stack.world.employer.balance_msat == employer_start  # one amount, paid once
    ops = [tag(entry, "op") for entry in await read_log(stack)]
    assert ops.count("RenewalOpened") == ops.count("Renewed") == ops.count("RoundCancelled") == 2


async def test_an_unpaid_renewal_leaves_the_deadline_policy_to_the_guardian(
    stack: Stack,
) -> None:
    """The employer never pays the renewal: the claimed task without a proof is refunded at
    the guard margin and the renewal invoice is cancelled."""
    employer, worker = stack.client(), stack.client()
    task = await long_task(stack, employer)
    employer_start = stack.world.employer.balance_msat
    await worker.claim(task["task_id"])
    renewal = await opened_renewal(stack, employer, task)
    await mine_to(stack, task, stack.settings.guard_blocks)
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"
    assert final["renewal"] is None
    assert await invoice_state(stack, renewal["payment_hash"]) is InvoiceState.CANCELED
    assert await invoice_state(stack, task["funding"]["payment_hash"]) is InvoiceState.CANCELED
    assert stack.world.employer.balance_msat == employer_start + task["amount_msat"]


async def test_an_unpaid_renewal_still_releases_a_submitted_proof(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await long_task(stack, employer)
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task["task_id"], {"url": "https://example.org/x"}, invoice)
    renewal = await opened_renewal(stack, employer, task)
    await mine_to(stack, task, stack.settings.hold_reserve_blocks)
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert final["funding"]["funding_round"] == task["funding"]["funding_round"]
    assert await invoice_state(stack, renewal["payment_hash"]) is InvoiceState.CANCELED
    assert await invoice_state(stack, task["funding"]["payment_hash"]) is InvoiceState.SETTLED
    assert stack.world.worker.balance_msat == task["payout_msat"]


async def test_a_renewal_held_as_the_task_is_released_is_cancelled(stack: Stack) -> None:
    """The employer pays the renewal just as the submission is approved: the release settles
    the round it started on and the renewal's HTLC goes back; the worker is paid once."""
    employer, worker = stack.client(), stack.client()
    task = await long_task(stack, employer)
    employer_start = stack.world.employer.balance_msat
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task["task_id"], {"url": "https://example.org/x"}, invoice)
    renewal = await opened_renewal(stack, employer, task)
    await employer.approve(task["task_id"])
    await stack.world.employer.send_payment(renewal["payment_request"])
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert final["renewal"] is None
    assert await invoice_state(stack, renewal["payment_hash"]) is InvoiceState.CANCELED
    assert await invoice_state(stack, task["funding"]["payment_hash"]) is InvoiceState.SETTLED
    payout_hash = bytes.fromhex(final["payout_payment_hash"])
    assert len(stack.world.network.payments_to(payout_hash)) == 1
    assert stack.world.employer.balance_msat == employer_start  # the renewal came back


async def test_a_crash_between_the_new_hold_and_the_old_cancel_converges(
    tmp_path: Path, database_url: str
) -> None:
    settings = stack_settings(tmp_path, database_url)
    first = await open_stack(settings)
    employer = first.client()
    task = await long_task(first, employer)
    renewal = await opened_renewal(first, employer, task)
    await first.world.employer.send_payment(renewal["payment_request"])
    first.faults["after_round_cancel"] = SimulatedCrash()
    await first.settle_engine(1)
    moved = await employer.get_task(task["task_id"])
    assert moved["funding"]["funding_round"] == renewal["funding_round"]
    assert await invoice_state(first, task["funding"]["payment_hash"]) is InvoiceState.CANCELED
    await close_stack(first)

    restarted = await open_stack(settings, world=first.world)
    try:
        await restarted.settle_engine(1)
        async with restarted.services.store.transaction() as tx:
            stored = await tx.load_task(task["task_id"])
        assert stored is not None
        assert stored.retiring_payment_hash_hex is None
        assert stored.funding_round == renewal["funding_round"]
        ops = [tag(entry, "op") for entry in await read_log(restarted)]
        assert ops.count("RoundCancelled") == 1
    finally:
        await close_stack(restarted)


async def test_a_payout_is_bounded_by_the_round_it_settles(stack: Stack) -> None:
    """With a renewal's HTLC held (a later expiry) when the task is released, the payout's time
    lock still ends inside the round that is settled: the operator never fronts a payout the
    held HTLC does not cover."""
    employer, worker = stack.client(), stack.client()
    task = await long_task(stack, employer)
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task["task_id"], {"url": "https://example.org/x"}, invoice)
    renewal = await opened_renewal(stack, employer, task)
    await stack.world.employer.send_payment(renewal["payment_request"])
    held = await stack.world.escrow.lookup_invoice(bytes.fromhex(renewal["payment_hash"]))
    lightning = stack.services.engine.ctx.lightning
    limits: list[tuple[int, int]] = []
    pay_invoice = lightning.pay_invoice

    async def recording(payment_request: str, **kwargs: int) -> PaymentResult:
        limits.append((kwargs["cltv_limit"], await lightning.block_height()))
        return await pay_invoice(payment_request, **kwargs)

    lightning.pay_invoice = recording  # type: ignore[method-assign]
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    old = await stack.world.escrow.lookup_invoice(bytes.fromhex(task["funding"]["payment_hash"]))
    new = await stack.world.escrow.lookup_invoice(bytes.fromhex(renewal["payment_hash"]))
    assert old.state is InvoiceState.SETTLED and new.state is InvoiceState.CANCELED
    assert old.accepted_htlc_expiry_height is not None
    assert held.accepted_htlc_expiry_height is not None
    assert held.accepted_htlc_expiry_height > old.accepted_htlc_expiry_height
    settings = stack.settings
    [(cltv_limit, height)] = limits
    assert cltv_limit == (
        old.accepted_htlc_expiry_height
        - height
        - settings.guard_blocks
        - settings.payout_cltv_margin_blocks
    )


async def test_the_followed_cancel_of_a_retired_round_refunds_nothing(
    tmp_path: Path, database_url: str
) -> None:
    """An engine that follows the node's reports sees the previous round cancelled after a
    renewal: that report is about a round the task left, so the task stays funded."""
    stack = await open_stack(stack_settings(tmp_path, database_url), hand_driven=False)
    try:
        employer = stack.client()
        task = await long_task(stack, employer)
        renewal = await opened_renewal(stack, employer, task)
        await stack.world.employer.send_payment(renewal["payment_request"])
        async with asyncio.timeout(30):
            while (await employer.get_task(task["task_id"]))["funding"]["funding_round"] == 1:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await stack.settle_engine(1)
        old = task["funding"]["payment_hash"]
        assert await invoice_state(stack, old) is InvoiceState.CANCELED
        for _ in range(20):  # let the follower deliver the cancel
            await asyncio.sleep(0.02)
        after = await employer.get_task(task["task_id"])
        assert after["state"] == "FUNDED" and after["refund_reason"] is None
        assert after["funding"]["funding_round"] == renewal["funding_round"]
    finally:
        await close_stack(stack)


async def test_a_task_within_one_hold_is_never_renewed(stack: Stack) -> None:
    """Blocks come faster than the clock (the simulator mines at will): a short task's hold
    nears its end while its windows still need time, yet no renewal opens; the guardian
    refunds it by the deadline policy."""
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer)
    assert task["renewal_needed"] is False
    await worker.claim(task["task_id"])
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    while stack.world.network.height < expiry - stack.settings.guard_blocks:
        await stack.world.network.mine(1)
        await stack.run_pass()
        assert (await employer.get_task(task["task_id"]))["renewal"] is None
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"
    ops = {tag(entry, "op") for entry in await read_log(stack)}
    assert "RenewalOpened" not in ops


async def test_the_employers_wallet_callback_pays_each_renewal_once(stack: Stack) -> None:
    """``TaskholdClient.keep_renewed``: the employer's wallet pays every round taskhold opens,
    each once, and the call returns when the task is decided."""
    employer, worker = stack.client(), stack.client()
    task = await long_task(stack, employer)
    paid: list[str] = []

    async def wallet(payment_request: str) -> None:
        paid.append(payment_request)
        await stack.world.employer.send_payment(payment_request)

    keeper = asyncio.create_task(employer.keep_renewed(task["task_id"], wallet, poll_s=0.05))
    for funding_round in (2, 3):
        await mine_to_renewal(stack, task)
        await stack.run_pass()
        for _ in range(200):  # the keeper polls, pays; the engine moves the task
            await asyncio.sleep(0.05)
            await stack.settle_engine(1)
            task = await employer.get_task(task["task_id"])
            if task["funding"]["funding_round"] == funding_round:
                break
        assert task["funding"]["funding_round"] == funding_round, task
    assert len(paid) == len(set(paid)) == 2
    assert not keeper.done()
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task["task_id"], {"url": "https://example.org/x"}, invoice)
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    decided = await asyncio.wait_for(keeper, timeout=30)
    assert decided["state"] in ("VERIFIED", "PAID")  # the keeper stops once it is decided
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    assert len(paid) == 2
