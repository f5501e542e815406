"""Milestone series in the escrow engine, on the simulator and both databases: a restart
between "milestone k PAID" and "milestone k+1 opened" converges, as does a crash after the node
made k+1's invoice; and, for random outcomes per milestone, each milestone ends paid or
refunded (or cancelled unfunded) exactly once, the money adds up, and paid milestones never
change afterwards."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.deposit_flows import share_clock
from support.milestone_flows import fund, plan, work_and_approve
from support.stacks import (
    PG_ADMIN_URL,
    REQUIRE_PG,
    Stack,
    close_stack,
    new_database,
    open_stack,
    stack_settings,
)

from taskhold.client import TaskholdClient
from taskhold.lightning.base import InvoiceState
from taskhold.nostr import NostrKeys

DATABASES = ["sqlite", *(["postgresql"] if PG_ADMIN_URL or REQUIRE_PG else [])]


class Crash(Exception):
    """Stands for the process dying at a crash point."""


async def _first_paid(
    stack: Stack, employer_keys: NostrKeys | None = None, worker_keys: NostrKeys | None = None
) -> tuple[TaskholdClient, TaskholdClient, list[str]]:
    employer, worker = stack.client(employer_keys), stack.client(worker_keys)
    created = await employer.create_milestones(plan(2), funding_mode="sequential")
    ids = created["series"]["task_ids"]
    await fund(stack, employer, ids[0])
    await worker.claim(ids[0])
    task = await employer.get_task(ids[0])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(ids[0], {"url": "https://example.org/one"}, invoice)
    await employer.approve(ids[0])
    return employer, worker, ids


async def test_a_restart_between_paid_and_opened_opens_the_next_milestone(
    tmp_path: Path, database_url: str
) -> None:
    settings_ = stack_settings(tmp_path, database_url)
    stack = await open_stack(settings_)
    employer_keys, worker_keys = NostrKeys.generate(), NostrKeys.generate()
    try:
        employer, worker, ids = await _first_paid(stack, employer_keys, worker_keys)
        await stack.run_pass()  # the release job pays milestone 0; the series step ran before
        assert (await employer.get_task(ids[0]))["state"] == "PAID"
        assert (await employer.get_task(ids[1]))["state"] == "DRAFT"
    finally:
        await close_stack(stack)  # the process dies here: nothing in memory survives

    restarted = await open_stack(settings_, world=stack.world)
    try:
        await restarted.services.engine.reconcile()  # what start() runs
        employer = restarted.client(employer_keys)
        opened = await employer.get_task(ids[1])
        assert opened["state"] == "PENDING_FUNDING"
        await fund(restarted, employer, ids[1])
        worker = restarted.client(worker_keys)
        paid = await work_and_approve(restarted, employer, worker, ids[1])
        assert paid["state"] == "PAID" and paid["worker_pubkey"] == worker.pubkey_hex
    finally:
        await close_stack(restarted)


async def test_a_crash_after_the_next_invoice_was_made_reuses_it(stack: Stack) -> None:
    employer, worker, ids = await _first_paid(stack)
    await stack.run_pass()
    stack.faults["after_milestone_invoice"] = Crash()
    await stack.run_pass()  # the node made milestone 1's invoice; the step died before recording
    assert not stack.faults
    assert (await employer.get_task(ids[1]))["state"] == "DRAFT"
    await stack.run_pass()
    opened = await employer.get_task(ids[1])
    assert opened["state"] == "PENDING_FUNDING" and opened["funding"]["funding_round"] == 1
    payment_hash = bytes.fromhex(opened["funding"]["payment_hash"])
    status = await stack.world.escrow.lookup_invoice(payment_hash)
    assert (
        status.state is InvoiceState.OPEN
        and status.payment_request == opened["funding"]["payment_request"]
    )
    await fund(stack, employer, ids[1])
    assert (await work_and_approve(stack, employer, worker, ids[1]))["state"] == "PAID"


async def test_a_waiting_milestone_whose_deadline_passed_is_cancelled_not_opened(
    stack: Stack,
) -> None:
    now = [1_900_000_000.0]
    employer, worker = stack.client(), stack.client()
    share_clock(stack, now, employer, worker)
    created = await employer.create_milestones(
        plan(2, start=int(now[0])), funding_mode="sequential"
    )
    ids = created["series"]["task_ids"]
    await fund(stack, employer, ids[0])
    await worker.claim(ids[0])
    task = await employer.get_task(ids[0])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(ids[0], {"url": "https://example.org/one"}, invoice)
    await employer.approve(ids[0])
    await stack.run_pass()
    assert (await employer.get_task(ids[0]))["state"] == "PAID"
    now[0] = float((await employer.get_task(ids[1]))["deadline_at"])
    await stack.run_pass()
    late = await employer.get_task(ids[1])
    assert late["state"] == "CANCELLED" and late["funding"] is None


OUTCOMES = st.sampled_from(["paid", "parted", "given_back"])


@pytest.mark.parametrize("database", DATABASES)
def test_random_outcomes_pay_or_refund_each_milestone_once(database: str) -> None:
    @settings(
        max_examples=6,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        mode=st.sampled_from(["upfront", "sequential"]),
        outcomes=st.lists(OUTCOMES, min_size=1, max_size=3),
    )
    def check(mode: str, outcomes: list[str]) -> None:
        with tempfile.TemporaryDirectory() as directory:
            asyncio.run(_outcomes_hold(Path(directory), database, mode, outcomes))

    check()


async def _outcomes_hold(directory: Path, database: str, mode: str, outcomes: list[str]) -> None:
    async with new_database(database, directory / "db") as url:
        stack = await open_stack(stack_settings(directory, url))
        try:
            await _run_series(stack, mode, outcomes)
        finally:
            await close_stack(stack)


async def _run_series(stack: Stack, mode: str, outcomes: list[str]) -> None:
    world = stack.world
    employer, worker = stack.client(), stack.client()
    before = (world.employer.balance_msat, world.worker.balance_msat, world.escrow.balance_msat)
    created = await employer.create_milestones(plan(len(outcomes)), funding_mode=mode)
    ids = created["series"]["task_ids"]
    paid_views: dict[str, dict[str, Any]] = {}
    stopped = False  # sequential: a milestone ended unpaid, the rest are cancelled
    for index, (task_id, outcome) in enumerate(zip(ids, outcomes, strict=True)):
        await stack.settle_engine(1)
        if stopped:
            break
        await fund(stack, employer, task_id)
        if index == 0:
            await worker.claim(task_id)
        await stack.settle_engine(1)
        if outcome == "paid":
            paid_views[task_id] = await work_and_approve(stack, employer, worker, task_id)
            assert paid_views[task_id]["state"] == "PAID"
        else:  # the parties part by agreement: the milestone is refunded
            proposer, accepter = (employer, worker) if outcome == "parted" else (worker, employer)
            await proposer.propose_agreement(task_id, 0, note="stop here")
            await accepter.accept_agreement(task_id, 0)
        await stack.settle_engine()
        stopped = mode == "sequential" and outcome != "paid"
    await stack.settle_engine()

    finals = [await employer.get_task(task_id) for task_id in ids]
    funded = [task for task in finals if task["funding"] is not None]
    for task in finals:
        history = await employer.transitions(task["task_id"])
        types = [t["event_type"] for t in history["transitions"]]
        endings = [
            t for t in types if t in ("ReleaseCompleted", "RefundCompleted", "TaskCancelled")
        ]
        assert len(endings) == 1, types
        assert task["state"] in ("PAID", "REFUNDED", "CANCELLED")
        if task["state"] == "CANCELLED":
            assert mode == "sequential" and task["funding"] is None
        view = paid_views.get(task["task_id"])
        if view is not None:  # a paid milestone never changes afterwards
            assert {k: v for k, v in task.items() if k != "series"} == {
                k: v for k, v in view.items() if k != "series"
            }
    paid = [task for task in funded if task["state"] == "PAID"]
    refunded = [task for task in funded if task["state"] == "REFUNDED"]
    assert len(paid) + len(refunded) == len(funded)
    leading = next((i for i, outcome in enumerate(outcomes) if outcome != "paid"), len(outcomes))
    assert len(paid) == (outcomes.count("paid") if mode == "upfront" else leading)
    employer_spent = before[0] - world.employer.balance_msat
    worker_got = world.worker.balance_msat - before[1]
    escrow_kept = world.escrow.balance_msat - before[2]
    assert employer_spent == sum(task["amount_msat"] for task in paid)
    assert worker_got == sum(task["payout_msat"] for task in paid)
    routing = sum(task["payout_fee_msat"] or 0 for task in paid)
    assert escrow_kept == sum(task["fee_msat"] for task in paid) - routing
    for task in refunded:
        status = await world.escrow.lookup_invoice(bytes.fromhex(task["funding"]["payment_hash"]))
        assert status.state is InvoiceState.CANCELED
