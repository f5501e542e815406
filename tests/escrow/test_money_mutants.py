"""Money-path rules that earlier tests let slip: each test here fails when its rule is broken.

They were written against bugs planted one at a time in the escrow (and kept only if they failed on
the plant): funding confirmed with the amount asked rather than the amount held, a release that
ignores the node's own cancel of the hold invoice, and a reconciliation that trusts the database
instead of re-reading the node. They drive taskhold over the API and the engine's public steps, on
the simulator, on both databases.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from support.stacks import Stack
from support.task_flows import created, funded, submitted

from taskhold.lightning.base import InvoiceState, InvoiceStatus
from taskhold.store.models import AuditRow


def _report(stack: Stack, monkeypatch: pytest.MonkeyPatch, change: object) -> None:
    """Make the escrow node report every invoice status through ``change`` (lookups and
    streams alike)."""
    node = stack.world.escrow
    real_lookup, real_subscribe = node.lookup_invoice, node.subscribe_invoice

    async def lookup_invoice(payment_hash: bytes) -> InvoiceStatus:
        return change(await real_lookup(payment_hash))  # type: ignore[operator,no-any-return]

    def subscribe_invoice(payment_hash: bytes) -> AsyncIterator[InvoiceStatus]:
        updates = real_subscribe(payment_hash)

        async def changed() -> AsyncIterator[InvoiceStatus]:
            async for status in updates:
                yield change(status)  # type: ignore[operator]

        return changed()

    monkeypatch.setattr(node, "lookup_invoice", lookup_invoice)
    monkeypatch.setattr(node, "subscribe_invoice", subscribe_invoice)


async def test_funding_counts_the_amount_held_not_the_amount_asked(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node reporting an ACCEPTED invoice that holds less than the task's amount has not
    funded the task, whatever amount the invoice asked for: the hold is cancelled."""

    def one_msat_short(status: InvoiceStatus) -> InvoiceStatus:
        if status.state is not InvoiceState.ACCEPTED:
            return status
        return dataclasses.replace(status, amount_paid_msat=status.amount_msat - 1)

    _report(stack, monkeypatch, one_msat_short)
    employer = stack.client()
    task = await created(stack, employer)
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    assert funding["amount_msat"] == task["amount_msat"]

    await stack.world.employer.send_payment(funding["payment_request"])
    await stack.settle_engine()

    after = await employer.get_task(task["task_id"])
    assert after["state"] == "EXPIRED"  # never FUNDED: a short hold is cancelled and returned
    assert after["funding"]["accepted_htlc_expiry_height"] is None


@pytest.mark.parametrize("node_margin", ["as_configured", "wider"])
async def test_the_nodes_own_cancel_of_a_verified_task_is_refunded_not_paid(
    stack: Stack, node_margin: str
) -> None:
    """lnd cancels an ACCEPTED hold invoice by itself ``holdexpirydelta`` blocks before expiry.
    If taskhold did not act first (not running, or the node's margin is wider than taskhold was
    told: lnd v0.21 uses 18 where older versions used 12), the employer already has the money
    back: the worker must not be paid from the operator's own liquidity, and the task must end
    REFUNDED with the reason recorded."""
    if node_margin == "wider":
        stack.world.network.hold_expiry_delta = stack.settings.guard_blocks
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await employer.approve(task["task_id"])
    escrow_before = stack.world.escrow.balance_msat
    worker_before = stack.world.worker.balance_msat
    employer_before = stack.world.employer.balance_msat

    # No engine pass while the chain moves: the node's auto-cancel comes first.
    while not stack.world.network.auto_cancelled:
        await stack.world.network.mine(1)
    cancelled = [c.payment_hash.hex() for c in stack.world.network.auto_cancelled]
    assert cancelled == [task["funding"]["payment_hash"]]

    await stack.settle_engine()

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"
    assert final["preimage"] is None
    assert "cancel" in (final["last_payout_failure"] or "")
    assert stack.world.worker.balance_msat == worker_before
    assert stack.world.escrow.balance_msat == escrow_before
    assert stack.world.employer.balance_msat == employer_before + task["amount_msat"]


@pytest.mark.parametrize("state", ["CLAIMED", "SUBMITTED"])
async def test_the_nodes_own_cancel_before_verification_refunds(stack: Stack, state: str) -> None:
    """The same cancel while the work is still open (or awaiting review): recorded as a
    refund, and no payout is tried."""
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    if state == "CLAIMED":
        await employer.reject(task["task_id"], "the third line has six syllables")
    assert (await employer.get_task(task["task_id"]))["state"] == state
    worker_before = stack.world.worker.balance_msat
    expiry = task["funding"]["accepted_htlc_expiry_height"]

    await stack.world.network.mine(expiry - stack.world.network.height)
    assert len(stack.world.network.auto_cancelled) == 1
    await stack.settle_engine()

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"
    assert final["preimage"] is None
    assert stack.world.worker.balance_msat == worker_before


def _silent_streams(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Invoice streams that never deliver: only a lookup can tell the engine what happened."""

    def subscribe_invoice(payment_hash: bytes) -> AsyncIterator[InvoiceStatus]:
        async def nothing() -> AsyncIterator[InvoiceStatus]:
            await asyncio.Event().wait()
            yield  # type: ignore[misc]

        return nothing()

    monkeypatch.setattr(stack.world.escrow, "subscribe_invoice", subscribe_invoice)


async def test_reconcile_reads_a_payment_that_arrived_while_nothing_watched(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _silent_streams(stack, monkeypatch)
    employer = stack.client()
    task = await created(stack, employer)
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    await stack.world.employer.send_payment(funding["payment_request"])
    assert (await employer.get_task(task["task_id"]))["state"] == "PENDING_FUNDING"

    await stack.settle_engine(1)

    after = await employer.get_task(task["task_id"])
    assert after["state"] == "FUNDED"
    held = await stack.world.escrow.lookup_invoice(bytes.fromhex(funding["payment_hash"]))
    assert after["funding"]["accepted_htlc_expiry_height"] == held.accepted_htlc_expiry_height


async def test_reconcile_reads_a_cancel_that_happened_while_nothing_watched(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node cancelled the held invoice (here: by hand, as an operator might with lncli)
    while taskhold was not watching; one reconciliation must record the refund."""
    _silent_streams(stack, monkeypatch)
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    await stack.world.escrow.cancel_invoice(bytes.fromhex(task["funding"]["payment_hash"]))

    await stack.settle_engine(1)

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"


async def test_a_verified_task_whose_hold_was_cancelled_early_is_refunded_at_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel far from expiry (an operator's lncli, a node restore): the guardian's height
    check would only notice near expiry and no stream reported it yet, so the release step
    itself must record the lost hold and order the refund, without paying the worker."""
    _silent_streams(stack, monkeypatch)
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await employer.approve(task["task_id"])
    worker_before = stack.world.worker.balance_msat
    await stack.world.escrow.cancel_invoice(bytes.fromhex(task["funding"]["payment_hash"]))

    await stack.run_pass()  # the release finds the hold gone
    await stack.run_pass()  # the refund it ordered completes

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"
    assert "cancel" in (final["last_payout_failure"] or "")
    assert stack.world.worker.balance_msat == worker_before
    blocks_left = task["funding"]["accepted_htlc_expiry_height"] - stack.world.network.height
    assert blocks_left > stack.settings.guard_blocks  # the guardian had no reason to act


async def test_no_payout_starts_when_the_hold_is_about_to_be_cancelled(stack: Stack) -> None:
    """A payout bounded by the HTLC that funds it: one block before lnd's own cancel, a
    release must not send the worker's payment (it could land after the employer's HTLC went
    back); the task is refunded instead."""
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await employer.approve(task["task_id"])
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    worker_before = stack.world.worker.balance_msat
    employer_before = stack.world.employer.balance_msat
    await stack.world.network.mine(
        expiry - stack.settings.hold_expiry_delta - 1 - stack.world.network.height
    )
    assert stack.world.network.auto_cancelled == []

    await stack.settle_engine()

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"
    assert final["payout_failures"] >= 1
    assert stack.world.worker.balance_msat == worker_before
    assert stack.world.employer.balance_msat == employer_before + task["amount_msat"]


async def test_every_payout_attempt_is_in_the_audit_journal(stack: Stack) -> None:
    """Money that leaves the escrow node is journalled with what it paid and how it ended."""
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    stack.world.network.fail_next_payments(1)
    await employer.approve(task["task_id"])
    await stack.run_pass()  # the first attempt fails
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    async with stack.services.store.transaction() as tx:
        rows = await tx.session.execute(
            select(AuditRow.subject, AuditRow.details)
            .where(AuditRow.action == "escrow.payout")
            .order_by(AuditRow.seq)
        )
        entries = [(subject, dict(details)) for subject, details in rows.all()]
    payout_hash = final["payout_payment_hash"]
    common = {"funding_round": 1, "payment_hash": payout_hash, "amount_msat": task["payout_msat"]}
    assert [subject for subject, _ in entries] == [task["task_id"]] * 2
    failed, paid = (details for _, details in entries)
    assert {k: failed[k] for k in common} == common
    assert (failed["status"], failed["fee_msat"]) == ("FAILED", None)
    assert failed["error"]
    assert {k: paid[k] for k in common} == common
    assert (paid["status"], paid["fee_msat"], paid["error"]) == ("SUCCEEDED", 0, None)
