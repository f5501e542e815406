"""An approval starts its release's payment job itself, and the worker is still paid once.

Until issue #17's third round the approval woke the engine and the pass it woke started the
job; now the approval's write starts it (``EscrowEngine.release_now``) and wakes no pass. The
job is the pass's own, so the money rules hold whoever starts it: one job per task at a time,
so a pass (or a retried approval) that comes while it runs sends nothing more, and a guard
leaves a task alone while its payout may land. Here the engine runs its loop, with its tick
and reconcile an hour apart: every pass is one the test runs or a wake it lets through.
``HANG_GUARD_S`` only turns a hang into a failure; nothing here measures time.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import submitted, submitted_with_held_payout

from taskhold.escrow import EscrowEngine
from taskhold.lightning.base import InvoiceState, PaymentStatus
from taskhold.tasks import Task

HOUR_S = 3600
HANG_GUARD_S = 30.0


class _Running(EscrowEngine):
    """An engine that runs its loop but follows no invoice, and counts the passes it makes and
    the payments it sends. While ``lookups`` is clear its node keeps back every answer to
    "was this payment ever sent?": two jobs of one payout would both hear "never" before
    either sent it, so only the claim on the job keeps the payment single."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passes = 0
        self.sent: list[str] = []
        self.passes_at_send: list[int] = []
        self.lookups = asyncio.Event()
        self.lookups.set()
        node = self.ctx.lightning
        pay_invoice, lookup_payment = node.pay_invoice, node.lookup_payment

        async def counted(invoice: str, **options: Any) -> Any:
            self.sent.append(invoice)
            self.passes_at_send.append(self.passes)
            return await pay_invoice(invoice, **options)

        async def slow(payment_hash: bytes) -> Any:
            await self.lookups.wait()
            return await lookup_payment(payment_hash)

        node.pay_invoice = counted  # type: ignore[method-assign]
        node.lookup_payment = slow  # type: ignore[method-assign]

    def watch(self, task_id: str, payment_hash_hex: str) -> None:
        return None

    def watch_deposits(self, task: Task) -> None:
        return None

    async def run_once(self) -> None:
        self.passes += 1
        await super().run_once()


@pytest.fixture
async def stack(tmp_path: Path, database_url: str) -> AsyncIterator[Stack]:
    settings = stack_settings(
        tmp_path,
        database_url,
        engine_tick_s=HOUR_S,
        reconcile_interval_s=HOUR_S,
        payout_timeout_s=HOUR_S,  # a held payout stays in flight until the test settles it
    )
    opened = await open_stack(settings)
    try:
        yield opened
    finally:
        try:
            # A test that failed may leave its payout held: its job would wait for it for the
            # payout timeout (an hour), so stopping gets the guard too, and the failure shows.
            async with asyncio.timeout(HANG_GUARD_S):
                await opened.services.engine.stop()
        finally:
            await close_stack(opened)


async def _running(stack: Stack) -> _Running:
    """Swap the hand-driven engine for a running one (after the test's setup passes)."""
    engine = _Running(stack.services.engine.ctx)
    stack.services.engine = stack.services.writes.engine = engine
    await engine.start()  # its reconcile finds nothing due; then it waits for a wake
    return engine


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(HANG_GUARD_S):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def _state_is(stack: Stack, task_id: str, state: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await stack.client().get_task(task_id))["state"] == state

    return check


async def _held_payout(stack: Stack) -> tuple[dict[str, Any], bytes, Any]:
    """A submitted task whose worker's node holds the payout's HTLC until told to settle."""
    employer = stack.client()
    task, preimage, _ = await submitted_with_held_payout(stack, employer)
    return task, preimage, employer


async def test_an_approval_pays_the_worker_without_waking_a_pass(stack: Stack) -> None:
    employer = stack.client()
    task = await submitted(stack, employer, stack.client())
    engine = await _running(stack)
    passes_before = engine.passes

    await employer.approve(task["task_id"])
    await _until(_state_is(stack, task["task_id"], "PAID"))

    # The approval's own job sent the payout before any pass ran (the job wakes one when it
    # ends, which may already have run by the time PAID is read).
    assert engine.passes_at_send == [passes_before]
    assert len(engine.sent) == 1


async def test_a_stopped_engine_starts_no_payment_from_an_approval(stack: Stack) -> None:
    """A hand-driven engine (never started) leaves the release to the pass its test runs."""
    employer = stack.client()
    task = await submitted(stack, employer, stack.client())

    await employer.approve(task["task_id"])
    await asyncio.sleep(0)

    assert (await employer.get_task(task["task_id"]))["state"] == "VERIFIED"
    await stack.run_pass()
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"


async def test_a_pass_racing_the_approvals_job_sends_no_second_payment(stack: Stack) -> None:
    task, preimage, employer = await _held_payout(stack)
    engine = await _running(stack)

    engine.lookups.clear()  # the approval's job stops before its payment, at the lookup

    await employer.approve(task["task_id"])
    await asyncio.gather(engine.run_once(), engine.run_once())  # while the job waits there
    await asyncio.sleep(0.1)  # a job they started would reach the lookup too
    engine.lookups.set()
    payout_hash = hashlib.sha256(preimage).digest()

    async def in_flight() -> bool:
        known = await stack.world.escrow.lookup_payment(payout_hash)
        return known.status is PaymentStatus.IN_FLIGHT

    await _until(in_flight)
    await engine.run_once()  # while the worker holds it

    assert len(engine.sent) == 1
    async with engine.ctx.store.transaction() as tx:
        loaded = await tx.load_task(task["task_id"])
    assert loaded is not None and loaded.payment_hash_hex is not None
    hold = await stack.world.escrow.lookup_invoice(bytes.fromhex(loaded.payment_hash_hex))
    assert hold.state is InvoiceState.ACCEPTED  # no guard gave the money back under it
    await stack.world.worker.settle_invoice(preimage)
    await _until(_state_is(stack, task["task_id"], "PAID"))
    assert len(engine.sent) == 1


async def test_a_retried_approval_while_the_worker_holds_the_payout_sends_nothing_more(
    stack: Stack,
) -> None:
    task, preimage, employer = await _held_payout(stack)
    engine = await _running(stack)
    payout_hash = hashlib.sha256(preimage).digest()

    await employer.approve(task["task_id"], idempotency_key="approve-once")

    async def in_flight() -> bool:
        known = await stack.world.escrow.lookup_payment(payout_hash)
        return known.status is PaymentStatus.IN_FLIGHT

    await _until(in_flight)
    again = await employer.approve(task["task_id"], idempotency_key="approve-once")
    await engine.run_once()

    assert again["state"] == "VERIFIED"
    assert len(engine.sent) == 1
    await stack.world.worker.settle_invoice(preimage)
    await _until(_state_is(stack, task["task_id"], "PAID"))
    assert len(engine.sent) == 1
