"""Payouts the payee holds must not hold up the engine: every other task's refund, guardian and
timers go on while they are in flight, and a task's payment is followed by one job at a time.

Each payee here is a hold invoice on the worker's node that the test settles only at the end,
so the payouts stay in flight for as long as the test wants (``payout_timeout_s`` is an hour).
``HANG_GUARD_S`` only turns a hang into a failure; nothing here measures time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import funded, submitted_with_held_payout

from taskhold.client import TaskholdClient
from taskhold.lightning.base import PaymentStatus

HELD = 3
HANG_GUARD_S = 30.0


@dataclass(frozen=True)
class HeldPayout:
    task_id: str
    preimage: bytes
    payout_hash: bytes


async def held_payout(stack: Stack, employer: TaskholdClient) -> HeldPayout:
    """A task submitted by a worker whose node will hold the payout until told to settle it."""
    task, preimage, payout_hash = await submitted_with_held_payout(stack, employer)
    return HeldPayout(task["task_id"], preimage, payout_hash)


async def payout_status(stack: Stack, held: HeldPayout) -> PaymentStatus:
    return (await stack.world.escrow.lookup_payment(held.payout_hash)).status


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait for the engine's background payments to get somewhere (they report no event)."""
    async with asyncio.timeout(HANG_GUARD_S):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def one_pass(stack: Stack) -> None:
    """One engine pass; it must return while payouts are held."""
    async with asyncio.timeout(HANG_GUARD_S):
        await stack.services.engine.run_once()


@pytest.fixture
async def patient(tmp_path: Path, database_url: str) -> AsyncIterator[Stack]:
    """A stack that follows each payout for an hour and at most two at once."""
    settings = stack_settings(
        tmp_path, database_url, payout_timeout_s=3600, max_concurrent_payouts=2
    )
    opened = await open_stack(settings)
    try:
        yield opened
    finally:
        await close_stack(opened)


async def start_held_payouts(stack: Stack, employer: TaskholdClient) -> list[HeldPayout]:
    """Approve ``HELD`` tasks and run one pass: two payouts go out and stay held, one waits.
    (Every other task of a test is made before: the helpers that make one drain the engine.)"""
    held = [await held_payout(stack, employer) for _ in range(HELD)]
    for h in held:
        await employer.approve(h.task_id)
    await one_pass(stack)

    async def two_in_flight() -> bool:
        statuses = [await payout_status(stack, h) for h in held]
        return statuses.count(PaymentStatus.IN_FLIGHT) == 2

    await until(two_in_flight)
    return held


async def test_a_refund_goes_through_while_payouts_are_held(patient: Stack) -> None:
    employer = patient.client()
    other = await funded(patient, employer)
    held = await start_held_payouts(patient, employer)
    before = patient.world.employer.balance_msat

    await employer.cancel(other["task_id"], reason="changed my mind")
    await one_pass(patient)

    assert (await employer.get_task(other["task_id"]))["state"] == "REFUNDED"
    assert patient.world.employer.balance_msat == before + other["amount_msat"]
    statuses = [await payout_status(patient, h) for h in held]
    assert statuses.count(PaymentStatus.IN_FLIGHT) == 2  # still held, and still bounded


async def test_the_guardian_acts_while_payouts_are_held(patient: Stack) -> None:
    employer = patient.client()
    nearing = await funded(patient, employer)
    await patient.client().claim(nearing["task_id"])
    network = patient.world.network
    network.keep_holds_past_expiry(patient.world.worker)  # payouts stay held through the blocks
    held = await start_held_payouts(patient, employer)
    expiry = nearing["funding"]["accepted_htlc_expiry_height"]

    while network.height < expiry - patient.settings.guard_blocks:
        await network.mine(1)
        await one_pass(patient)

    final = await employer.get_task(nearing["task_id"])
    assert final["state"] == "REFUNDED"
    assert "expiry" in final["refund_reason"]
    escrow = patient.world.escrow.pubkey_hex  # the guardian acted before the escrow node had to
    assert [c for c in network.auto_cancelled if c.issuer_pubkey_hex == escrow] == []
    for h in held:
        assert (await employer.get_task(h.task_id))["state"] == "VERIFIED"
    assert PaymentStatus.IN_FLIGHT in [await payout_status(patient, h) for h in held]


async def test_held_payouts_complete_once_released_each_paid_once(patient: Stack) -> None:
    employer = patient.client()
    held = await start_held_payouts(patient, employer)
    for _ in range(5):  # passes while held start no second payment for the same task
        await one_pass(patient)
    assert len(patient.services.engine._payments) == HELD

    settled: set[str] = set()

    async def held_now() -> list[HeldPayout]:
        return [
            h
            for h in held
            if h.task_id not in settled
            and await payout_status(patient, h) is PaymentStatus.IN_FLIGHT
        ]

    async def some_held() -> bool:
        return bool(await held_now())

    while len(settled) < HELD:  # the third payout goes out once a slot frees
        await until(some_held)
        for h in await held_now():
            await patient.world.worker.settle_invoice(h.preimage)
            settled.add(h.task_id)
    await patient.services.engine.drain()
    await patient.settle_engine(1)

    for h in held:
        task: dict[str, Any] = await employer.get_task(h.task_id)
        assert task["state"] == "PAID"
        assert len(patient.world.network.payments_to(h.payout_hash)) == 1
