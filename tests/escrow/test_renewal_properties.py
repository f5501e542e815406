"""Random interleavings of renewals, payments, work, approvals, cancels, block expiry and
crashes inside a renewal step, on the simulator: at every step at most one hold of the task is
held outside the overlap of a renewal (two within it), never two rounds are settled, and at
the end every hold is settled or cancelled and the money adds up (paid plus refunded is what
was funded)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.renewal_flows import long_task, mine_to
from support.stacks import Stack, close_stack, new_database, open_stack, stack_settings

from taskhold.client import TaskholdClient
from taskhold.lightning.base import InvoiceNotFound, InvoiceState
from taskhold.tasks import Task

ACTIONS = (
    "renew", "lead", "pay", "work", "approve", "cancel", "guard", "reserve", "crash", "pass",
)  # fmt: skip
CRASH_POINTS = ("after_renewal_htlc_accepted", "after_round_cancel", "after_renewal_invoice")


class SimulatedCrash(Exception):
    """Stands for the process dying at a fault point."""


async def _stored(stack: Stack, task_id: str) -> Task:
    async with stack.services.store.transaction() as tx:
        task = await tx.load_task(task_id)
    assert task is not None
    return task


async def _hold_states(stack: Stack, task: Task) -> dict[str, InvoiceState]:
    """The node's state of every round's hold invoice the task ever had."""
    keys = stack.services.engine.ctx.keys
    states = {}
    for funding_round in range(1, task.next_round + 1):
        payment_hash = keys.payment_hash(task.task_id, funding_round)
        try:
            status = await stack.world.escrow.lookup_invoice(payment_hash)
        except InvoiceNotFound:
            continue
        states[payment_hash.hex()] = status.state
    return states


async def _check_holds(stack: Stack, task_id: str) -> None:
    task = await _stored(stack, task_id)
    states = await _hold_states(stack, task)
    held = [h for h, state in states.items() if state is InvoiceState.ACCEPTED]
    settled = [h for h, state in states.items() if state is InvoiceState.SETTLED]
    overlap = task.retiring_payment_hash_hex is not None or (task.renewal_payment_hash_hex in held)
    assert len(held) <= (2 if overlap else 1), (task.state, states)
    assert len(settled) <= 1, states
    if settled:
        assert settled == [task.payment_hash_hex], "only the current round is ever settled"


async def _act(
    stack: Stack, employer: TaskholdClient, worker: TaskholdClient, task_id: str, action: str
) -> None:
    view = await employer.get_task(task_id)
    lead, guard = stack.settings.renewal_lead_blocks, stack.settings.guard_blocks
    match action:
        case "renew":  # mined to the lead, the renewal opened, and paid at once
            await mine_to(stack, view, lead)
            await stack.run_pass()
            renewal = await employer.renewal(task_id)
            if renewal is not None:
                await stack.world.employer.send_payment(renewal["payment_request"])
        case "lead":
            await mine_to(stack, view, lead)
        case "guard":
            await mine_to(stack, view, guard)
        case "reserve":
            await mine_to(stack, view, stack.settings.hold_reserve_blocks)
        case "pay" if view["renewal"] is not None:
            await stack.world.employer.send_payment(view["renewal"]["payment_request"])
        case "work" if view["state"] == "FUNDED":
            await worker.claim(task_id)
            invoice = await stack.world.worker.create_invoice(
                view["payout_msat"], expiry_seconds=86_400
            )
            await worker.submit_proof(task_id, {"url": "https://example.org/p"}, invoice)
        case "approve" if view["state"] == "SUBMITTED":
            await employer.approve(task_id)
        case "cancel" if view["state"] == "FUNDED":
            await employer.cancel(task_id, reason="changed my mind")
        case "crash":
            stack.faults[CRASH_POINTS[stack.world.network.height % len(CRASH_POINTS)]] = (
                SimulatedCrash()
            )


async def _run(kind: str, directory: Path, actions: list[str]) -> None:
    async with new_database(kind, directory / "db") as url:
        stack = await open_stack(stack_settings(directory, url))
        try:
            employer, worker = stack.client(), stack.client()
            employer_before = stack.world.employer.balance_msat
            worker_before = stack.world.worker.balance_msat
            view = await long_task(stack, employer)
            task_id = view["task_id"]
            for action in actions:
                await _act(stack, employer, worker, task_id, action)
                await stack.settle_engine(1)  # the node's reports, then a pass
                await _check_holds(stack, task_id)
            stack.faults.clear()
            guard_blocks = stack.settings.guard_blocks
            await _act(stack, employer, worker, task_id, "work")  # the worker turns up late
            for _ in range(12):  # no more renewals paid: the guardian ends the task
                view = await employer.get_task(task_id)
                if view["state"] in ("PAID", "REFUNDED"):
                    break
                for blocks_left in (stack.settings.hold_reserve_blocks, guard_blocks):
                    await mine_to(stack, view, blocks_left)
                    await stack.settle_engine(2)
                    await _check_holds(stack, task_id)
            await stack.settle_engine(2)
            task = await _stored(stack, task_id)
            assert task.state.value in ("PAID", "REFUNDED"), task.state
            states = await _hold_states(stack, task)
            assert set(states.values()) <= {InvoiceState.SETTLED, InvoiceState.CANCELED}, states
            paid = task.state.value == "PAID"
            assert list(states.values()).count(InvoiceState.SETTLED) == int(paid)
            worker_got = stack.world.worker.balance_msat - worker_before
            employer_paid = employer_before - stack.world.employer.balance_msat
            assert worker_got == (task.payout_msat if paid else 0)
            assert employer_paid == (task.amount_msat if paid else 0)
        finally:
            await close_stack(stack)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=st.lists(st.sampled_from(ACTIONS), min_size=4, max_size=14))
def test_rounds_keep_one_live_hold_and_the_money_adds_up(
    database_kind: str, actions: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(_run(database_kind, Path(directory), actions))
