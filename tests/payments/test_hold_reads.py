"""What a release asks the node about its hold before paying: the hold is read once, right
before the first payment, and read again before each later payment of the same hold (a split's
second share), since the first one may have taken the whole payout timeout. The block height,
which bounds each payment's CLTV limit, is read fresh for every payment either way."""

from __future__ import annotations

from typing import Any

import pytest
from support.split_flows import invoice_both_shares, split_task
from support.stacks import Stack
from support.task_flows import submitted

from taskhold.lightning.base import InvoiceStatus, PaymentResult


def record_node_calls(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The escrow node's hold lookups and payments from now on, in order, by hash (hex)."""
    node = stack.world.escrow
    calls: list[tuple[str, str]] = []
    real_lookup, real_pay = node.lookup_invoice, node.pay_invoice

    async def lookup_invoice(payment_hash: bytes) -> InvoiceStatus:
        calls.append(("lookup", payment_hash.hex()))
        return await real_lookup(payment_hash)

    async def pay_invoice(payment_request: str, **terms: Any) -> PaymentResult:
        result = await real_pay(payment_request, **terms)
        calls.append(("pay", result.payment_hash.hex()))
        return result

    monkeypatch.setattr(node, "lookup_invoice", lookup_invoice)
    monkeypatch.setattr(node, "pay_invoice", pay_invoice)
    return calls


def hold_reads_before_each_payment(calls: list[tuple[str, str]], hold_hash: str) -> list[int]:
    """How many times the hold was read before each payment, since the one before it."""
    counts, reads = [], 0
    for kind, payment_hash in calls:
        if kind == "lookup" and payment_hash == hold_hash:
            reads += 1
        elif kind == "pay":
            counts.append(reads)
            reads = 0
    return counts


async def test_a_release_reads_its_hold_once_before_paying_the_worker(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await employer.approve(task["task_id"])
    calls = record_node_calls(stack, monkeypatch)

    await stack.run_pass()

    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    assert stack.world.worker.balance_msat == task["payout_msat"]
    assert hold_reads_before_each_payment(calls, task["funding"]["payment_hash"]) == [1]


async def test_a_splits_second_share_reads_the_hold_again(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    task, employer, worker = await split_task(stack)
    await invoice_both_shares(stack, task, employer, worker)
    calls = record_node_calls(stack, monkeypatch)

    await stack.settle_engine()

    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    reads = hold_reads_before_each_payment(calls, task["funding"]["payment_hash"])
    assert len(reads) == 2 and reads[1] >= 1, calls
