"""A database lost in the middle of a release, rebuilt from the log: every payout ends paid
exactly once, whether it had landed, was still in flight or had failed when the database went,
for a task's reward and for a forfeited deposit alike."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.deposit_flows import (
    AbandonedClaim,
    abandoned_claim,
    deposit_of,
    give_worker_wallet_money,
    share_clock,
)
from support.stacks import Stack, close_stack, new_database, open_stack, stack_settings
from support.task_builders import task_in
from support.task_flows import funded, read_log, submitted

from taskhold.escrow.deposits import pay_out_deposit
from taskhold.escrow.release import release
from taskhold.lightning.base import InvoiceState, PaymentStatus
from taskhold.lightning.simworld import SimWorld
from taskhold.payments.invoices import decode_invoice
from taskhold.payments.restored import restored_payout_rows
from taskhold.rebuild.replay import rebuild_from_entries
from taskhold.settings import Settings
from taskhold.tasks import TaskState

DAY_S = 86_400


class Crash(Exception):
    """The process died here."""


@asynccontextmanager
async def rebuilt(
    original: Stack, tmp_path: Path, database_kind: str, now: list[float] | None = None
) -> AsyncIterator[Stack]:
    """Close ``original`` (its database is lost) and open a stack on the same nodes whose
    database is rebuilt from ``original``'s log."""
    log = await read_log(original)
    operator = original.services.signer.get_public_key()
    await close_stack(original)
    async with new_database(database_kind, tmp_path / "rebuilt") as url:
        settings = original.settings.model_copy(update={"database_url": url})
        stack = await open_stack(settings, world=original.world)
        try:
            if now is not None:
                share_clock(stack, now)
            await rebuild_from_entries(stack.services.store, log, operator_pubkey=operator)
            yield stack
        finally:
            await close_stack(stack)


async def history(stack: Stack, task_id: str) -> list[str]:
    return [t["event_type"] for t in (await stack.client().transitions(task_id))["transitions"]]


async def hold_state(stack: Stack, payment_hash_hex: str) -> InvoiceState:
    return (await stack.world.escrow.lookup_invoice(bytes.fromhex(payment_hash_hex))).state


def payout_hash(invoice: str) -> bytes:
    return bytes.fromhex(decode_invoice(invoice).payment_hash_hex)


# -- a task's reward -------------------------------------------------------------------------


async def test_a_payout_that_landed_before_the_loss_is_not_paid_again(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    original = await open_stack(stack_settings(tmp_path, database_url))
    employer, worker = original.client(), original.client()
    task = await submitted(original, employer, worker)
    original.faults["after_payout"] = Crash()  # paid, hold not settled yet
    await employer.approve(task["task_id"])
    await original.run_pass()
    paid_hash = payout_hash(task["payout_invoice"])
    assert len(original.world.network.payments_to(paid_hash)) == 1
    assert await hold_state(original, task["funding"]["payment_hash"]) is InvoiceState.ACCEPTED

    async with rebuilt(original, tmp_path, database_kind) as stack:
        await stack.settle_engine()
        assert (await stack.client().get_task(task["task_id"]))["state"] == "PAID"
        assert "PayoutFailed" not in await history(stack, task["task_id"])
        assert len(stack.world.network.payments_to(paid_hash)) == 1
        assert stack.world.worker.balance_msat == task["payout_msat"]
        assert await hold_state(stack, task["funding"]["payment_hash"]) is InvoiceState.SETTLED


@pytest.mark.parametrize("sealed", [False, True], ids=["clear", "sealed-invoice"])
async def test_a_payout_in_flight_at_the_loss_is_followed_and_never_refunded_under(
    tmp_path: Path, database_url: str, database_kind: str, sealed: bool
) -> None:
    """Sealed, the invoice is restored from the log in its sealed form and still followed."""
    original = await open_stack(stack_settings(tmp_path, database_url, payout_timeout_s=1))
    network = original.world.network
    network.keep_holds_past_expiry(original.world.worker)  # the payee holds it through blocks
    employer, worker = original.client(), original.client()
    task = await funded(original, employer, deadline_at=int(time.time()) + DAY_S)
    await worker.claim(task["task_id"])
    preimage = os.urandom(32)
    held = await original.world.worker.create_hold_invoice(
        hashlib.sha256(preimage).digest(),
        task["payout_msat"],
        memo="payout",
        expiry_seconds=DAY_S,
        cltv_expiry_delta=80,
    )
    await worker.submit_proof(
        task["task_id"],
        {"url": "https://example.org/held"},
        held.payment_request,
        seal_invoice=sealed,
    )
    await employer.approve(task["task_id"])
    await original.run_pass()
    status = await original.world.escrow.lookup_payment(held.payment_hash)
    assert status.status is PaymentStatus.IN_FLIGHT
    employer_before = original.world.employer.balance_msat

    async with rebuilt(original, tmp_path, database_kind) as stack:
        await stack.settle_engine()  # a pass while it is held sends nothing new
        expiry = task["funding"]["accepted_htlc_expiry_height"]
        await network.mine(expiry - stack.settings.guard_blocks - network.height)
        await stack.settle_engine()  # the guardian must settle, never refund under it

        current = await stack.client().get_task(task["task_id"])
        assert current["state"] == "VERIFIED"
        assert "PayoutFailed" not in await history(stack, task["task_id"])
        assert "HoldSettledUnderLivePayout" in await history(stack, task["task_id"])
        assert await hold_state(stack, task["funding"]["payment_hash"]) is InvoiceState.SETTLED
        assert stack.world.employer.balance_msat == employer_before

        await stack.world.worker.settle_invoice(preimage)
        await release(stack.services.engine.ctx, task["task_id"])
        assert (await stack.client().get_task(task["task_id"]))["state"] == "PAID"
        assert len(network.payments_to(held.payment_hash)) == 1
        assert stack.world.worker.balance_msat == task["payout_msat"]
        if sealed:
            assert held.payment_request not in str(await read_log(stack))


async def test_a_payout_that_failed_before_the_loss_is_paid_once_after_it(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    original = await open_stack(stack_settings(tmp_path, database_url))
    employer, worker = original.client(), original.client()
    task = await submitted(original, employer, worker)
    original.world.network.fail_next_payments(1)
    original.faults["after_payout_failure"] = Crash()
    await employer.approve(task["task_id"])
    await original.run_pass()
    assert (await history(original, task["task_id"]))[-1] == "PayoutFailed"

    async with rebuilt(original, tmp_path, database_kind) as stack:
        await stack.settle_engine()
        assert (await stack.client().get_task(task["task_id"]))["state"] == "PAID"
        assert (await history(stack, task["task_id"])).count("PayoutFailed") == 1
        assert len(stack.world.network.payments_to(payout_hash(task["payout_invoice"]))) == 1
        assert stack.world.worker.balance_msat == task["payout_msat"]


async def test_a_payout_that_failed_for_good_before_the_loss_ends_in_a_clean_refund(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    original = await open_stack(stack_settings(tmp_path, database_url, payout_max_attempts=1))
    employer, worker = original.client(), original.client()
    task = await submitted(original, employer, worker)
    original.world.network.fail_next_payments(1)
    await employer.approve(task["task_id"])
    await original.run_pass()
    assert (await history(original, task["task_id"]))[-1] == "PayoutFailed"
    employer_before = original.world.employer.balance_msat

    async with rebuilt(original, tmp_path, database_kind) as stack:
        network = stack.world.network
        await stack.settle_engine()  # no attempt is left: nothing is sent
        expiry = task["funding"]["accepted_htlc_expiry_height"]
        await network.mine(expiry - stack.settings.guard_blocks - network.height)
        await stack.settle_engine()

        assert (await stack.client().get_task(task["task_id"]))["state"] == "REFUNDED"
        assert network.payments_to(payout_hash(task["payout_invoice"])) == []
        assert stack.world.worker.balance_msat == 0
        assert stack.world.employer.balance_msat == employer_before + task["amount_msat"]


# -- a forfeited deposit -----------------------------------------------------------------------


def deposit_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """Settings under which a stranger's write needs a deposit (as in the deposit tests)."""
    return stack_settings(
        tmp_path, database_url, pow_max_bits=8, reputation_max_staleness_s=0, **overrides
    )


async def abandoned_claim_with_money(stack: Stack) -> AbandonedClaim:
    """A worker's deposit forfeit to the employer, not claimed yet."""
    await give_worker_wallet_money(stack)
    return await abandoned_claim(stack)


async def _forfeit_claimed(stack: Stack) -> tuple[AbandonedClaim, str]:
    """A deposit forfeit to the employer, who claims it with a plain invoice."""
    claim = await abandoned_claim_with_money(stack)
    invoice = await stack.world.employer.create_invoice(claim.amount_msat, expiry_seconds=DAY_S)
    await claim.employer.claim_deposit(claim.task_id, claim.worker.pubkey_hex, invoice)
    return claim, invoice


def _deposit(task: dict[str, Any], claim: AbandonedClaim) -> dict[str, Any]:
    return deposit_of(task, claim.worker.pubkey_hex)


async def test_a_deposit_payout_that_landed_before_the_loss_is_not_paid_again(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    original = await open_stack(deposit_settings(tmp_path, database_url))
    original.faults["after_deposit_payout"] = Crash()
    claim, invoice = await _forfeit_claimed(original)
    await original.run_pass()
    paid_hash = payout_hash(invoice)
    assert len(original.world.network.payments_to(paid_hash)) == 1
    deposit_hash = _deposit(await claim.employer.get_task(claim.task_id), claim)["payment_hash"]
    assert await hold_state(original, deposit_hash) is InvoiceState.ACCEPTED

    async with rebuilt(original, tmp_path, database_kind, claim.now) as stack:
        await stack.settle_engine()
        deposit = _deposit(await stack.client().get_task(claim.task_id), claim)
        assert deposit["state"] == "PAID_OUT"
        assert "DepositPayoutFailed" not in await history(stack, claim.task_id)
        assert len(stack.world.network.payments_to(paid_hash)) == 1
        assert await hold_state(stack, deposit_hash) is InvoiceState.SETTLED


async def test_a_deposit_payout_in_flight_at_the_loss_is_never_returned_under(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    original = await open_stack(deposit_settings(tmp_path, database_url, payout_timeout_s=1))
    network = original.world.network
    network.keep_holds_past_expiry(original.world.employer)
    preimage = os.urandom(32)
    claim = await abandoned_claim_with_money(original)
    held = await original.world.employer.create_hold_invoice(
        hashlib.sha256(preimage).digest(),
        claim.amount_msat,
        memo="deposit payout",
        expiry_seconds=DAY_S,
        cltv_expiry_delta=40,
    )
    await claim.employer.claim_deposit(claim.task_id, claim.worker.pubkey_hex, held.payment_request)
    await original.run_pass()
    status = await original.world.escrow.lookup_payment(held.payment_hash)
    assert status.status is PaymentStatus.IN_FLIGHT
    deposit = _deposit(await claim.employer.get_task(claim.task_id), claim)
    worker_before = original.world.worker.balance_msat

    async with rebuilt(original, tmp_path, database_kind, claim.now) as stack:
        await stack.settle_engine()
        await network.mine(
            deposit["accepted_htlc_expiry_height"] - stack.settings.guard_blocks - network.height
        )
        await stack.settle_engine()  # the guardian must settle, never return it under the payout

        current = _deposit(await stack.client().get_task(claim.task_id), claim)
        assert current["state"] == "FORFEIT"
        ops = await history(stack, claim.task_id)
        assert "DepositPayoutFailed" not in ops and "DepositSettledUnderLivePayout" in ops
        assert await hold_state(stack, deposit["payment_hash"]) is InvoiceState.SETTLED
        assert stack.world.worker.balance_msat == worker_before

        await stack.world.employer.settle_invoice(preimage)
        async with stack.services.store.transaction() as tx:
            task = await tx.load_task(claim.task_id)
        forfeit = task.deposit_of(claim.worker.pubkey_hex) if task is not None else None
        assert forfeit is not None
        await pay_out_deposit(stack.services.engine.ctx, claim.task_id, forfeit)
        final = _deposit(await stack.client().get_task(claim.task_id), claim)
        assert final["state"] == "PAID_OUT"
        assert len(network.payments_to(held.payment_hash)) == 1


async def test_a_deposit_payout_that_failed_before_the_loss_is_paid_once_after_it(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    original = await open_stack(deposit_settings(tmp_path, database_url))
    original.faults["after_deposit_payout_failure"] = Crash()
    claim = await abandoned_claim_with_money(original)
    original.world.network.fail_next_payments(1)
    invoice = await original.world.employer.create_invoice(claim.amount_msat, expiry_seconds=DAY_S)
    await claim.employer.claim_deposit(claim.task_id, claim.worker.pubkey_hex, invoice)
    await original.run_pass()
    assert (await history(original, claim.task_id))[-1] == "DepositPayoutFailed"

    async with rebuilt(original, tmp_path, database_kind, claim.now) as stack:
        await stack.settle_engine()
        deposit = _deposit(await stack.client().get_task(claim.task_id), claim)
        assert deposit["state"] == "PAID_OUT"
        assert (await history(stack, claim.task_id)).count("DepositPayoutFailed") == 1
        assert len(stack.world.network.payments_to(payout_hash(invoice))) == 1


# -- one invoice named by two payouts ------------------------------------------------------------


async def test_of_two_payouts_naming_one_hash_only_one_is_restored_as_its_sender() -> None:
    """A payee's invoice given for two tasks: the node's payment of it counts for one only (the
    one the log closed with it, else the first), so the other asks for a new invoice."""
    invoice = await SimWorld.create().worker.create_invoice(1_000)
    hash_hex = decode_invoice(invoice).payment_hash_hex
    first, second = (
        replace(task_in(TaskState.VERIFIED), task_id=name * 64, payout_request=invoice)
        for name in "ab"
    )
    rows = restored_payout_rows([first, second])
    assert [(row.task_id, row.attempts) for row in rows] == [("a" * 64, 1), ("b" * 64, 0)]
    assert {row.payment_hash_hex for row in rows} == {hash_hex}

    paid = replace(
        task_in(TaskState.PAID),
        task_id="c" * 64,
        payout_request=invoice,
        payout_payment_hash_hex=hash_hex,
        payout_fee_msat=3,
    )
    rows = restored_payout_rows([first, second, paid])
    assert [row.attempts for row in rows] == [0, 0, 1]
    assert (rows[2].status, rows[2].fee_msat) == (PaymentStatus.SUCCEEDED.value, 3)
    assert [row.status for row in rows[:2]] == [PaymentStatus.UNKNOWN.value] * 2
