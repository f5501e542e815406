"""Many releases due at once: one engine pass pays them concurrently, at most
``max_concurrent_payouts`` at a time, and settles each hold only after its own payout landed; a
payout that fails leaves its hold unsettled and the others untouched (``bench/batch_releases.py``
measures the throughput)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

from support.stacks import Stack
from support.task_flows import funded

from taskhold.lightning.base import InvoiceState, PaymentResult
from taskhold.lightning.sim import SimNode
from taskhold.payments.sealed import payment_hash_of

DUE = 20
PARALLEL = 4
UNLIMITED = {"rate_limit_pubkey_per_s": 0, "rate_limit_ip_per_s": 0}


async def due_tasks(stack: Stack, payee_of: Callable[[int], SimNode]) -> list[dict[str, Any]]:
    """``DUE`` tasks approved with their payee's payout invoice; none released yet."""
    employer, worker = stack.client(), stack.client()
    tasks = []
    ready = [await funded(stack, employer) for _ in range(DUE)]  # each funding runs the engine
    for i, task in enumerate(ready):
        await worker.claim(task["task_id"])
        invoice = await payee_of(i).create_invoice(task["payout_msat"], expiry_seconds=86_400)
        await worker.submit_proof(task["task_id"], {"url": "https://example.org/x"}, invoice)
        tasks.append(await employer.approve(task["task_id"]))
    assert {t["state"] for t in tasks} == {"VERIFIED"}
    return tasks


def watch_settles(stack: Stack, payout_of: dict[str, bytes]) -> list[str]:
    """Settles of a hold whose own payout had not landed yet (the escrow's settle_invoice is
    wrapped): must stay empty."""
    early: list[str] = []
    escrow, network = stack.world.escrow, stack.world.network
    settle = escrow.settle_invoice

    async def checked(preimage: bytes) -> None:
        hold_hash = hashlib.sha256(preimage).hexdigest()
        if len(network.payments_to(payout_of[hold_hash])) != 1:
            early.append(hold_hash)
        await settle(preimage)

    escrow.settle_invoice = checked  # type: ignore[method-assign]
    return early


async def test_one_failed_payout_in_a_batch_leaves_only_its_own_hold_unsettled(
    open_custom: Any,
) -> None:
    stack: Stack = await open_custom(max_concurrent_payouts=PARALLEL, **UNLIMITED)
    network = stack.world.network
    unlucky = SimNode(network, "unlucky", balance_msat=0)
    tasks = await due_tasks(stack, lambda i: unlucky if i == 7 else stack.world.worker)
    failing = tasks[7]["task_id"]
    payout_of = {t["funding"]["payment_hash"]: await _payout_hash(stack, t) for t in tasks}
    early = watch_settles(stack, payout_of)
    network.fail_payments_to(unlucky)

    await stack.run_pass()

    employer = stack.client()
    for task in tasks:
        final = await employer.get_task(task["task_id"])
        hold = await stack.world.escrow.lookup_invoice(
            bytes.fromhex(task["funding"]["payment_hash"])
        )
        paid = network.payments_to(payout_of[task["funding"]["payment_hash"]])
        if task["task_id"] == failing:
            assert (final["state"], hold.state, paid) == ("VERIFIED", InvoiceState.ACCEPTED, [])
            assert final["payout_failures"] == 1
        else:
            assert (final["state"], hold.state, len(paid)) == ("PAID", InvoiceState.SETTLED, 1)
    assert early == []
    assert stack.world.worker.balance_msat == (DUE - 1) * tasks[0]["payout_msat"]
    assert unlucky.balance_msat == 0


async def test_a_batch_is_paid_concurrently_within_the_bound_each_once(open_custom: Any) -> None:
    stack: Stack = await open_custom(max_concurrent_payouts=PARALLEL, **UNLIMITED)
    network = stack.world.network
    tasks = await due_tasks(stack, lambda i: stack.world.worker)
    payout_of = {t["funding"]["payment_hash"]: await _payout_hash(stack, t) for t in tasks}
    early = watch_settles(stack, payout_of)
    escrow = stack.world.escrow
    pay = escrow.pay_invoice
    together = asyncio.Barrier(PARALLEL)  # a payment goes out once the bound's worth wait
    paying, most, alone = 0, 0, 0

    async def counted(*args: Any, **kwargs: Any) -> PaymentResult:
        nonlocal paying, most, alone
        paying += 1
        most = max(most, paying)
        try:
            try:
                async with asyncio.timeout(5):  # only so a serial engine fails instead of hanging
                    await together.wait()
            except (TimeoutError, asyncio.BrokenBarrierError):
                alone += 1
            return await pay(*args, **kwargs)
        finally:
            paying -= 1

    escrow.pay_invoice = counted  # type: ignore[method-assign]

    await stack.run_pass()

    states = {(await stack.client().get_task(t["task_id"]))["state"] for t in tasks}
    assert states == {"PAID"}
    assert (most, alone) == (PARALLEL, 0), "the payouts overlap, never more than the bound"
    assert [len(network.payments_to(h)) for h in payout_of.values()] == [1] * DUE
    assert early == []


async def _payout_hash(stack: Stack, task: dict[str, Any]) -> bytes:
    async with stack.services.store.transaction() as tx:
        loaded = await tx.load_task(task["task_id"])
    assert loaded is not None and loaded.payout_request is not None
    return bytes.fromhex(payment_hash_of(loaded.payout_request))
