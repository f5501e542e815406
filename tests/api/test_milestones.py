"""Milestone series over the HTTP API, on both databases and the simulator: each milestone is a
task of its own, funded by its own hold invoice and paid (or refunded) on its own; a sequential
series opens milestone k+1 only once k is PAID and cancels the waiting ones once one ends
unpaid; later milestones go to the first milestone's worker."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest
from support.milestone_flows import AMOUNTS, fund, plan, work_and_approve
from support.stacks import Stack

from taskhold.client import TaskholdAPIError
from taskhold.lightning.base import InvoiceState


async def refused(write: Awaitable[Any]) -> tuple[int, str]:
    with pytest.raises(TaskholdAPIError) as caught:
        await write
    return caught.value.status, caught.value.code


async def test_a_sequential_series_opens_each_milestone_once_the_one_before_is_paid(
    stack: Stack,
) -> None:
    employer, worker = stack.client(), stack.client()
    created = await employer.create_milestones(plan(), funding_mode="sequential")
    ids = created["series"]["task_ids"]
    assert created["task_id"] == ids[0] == created["series"]["series_id"]
    assert [m["state"] for m in created["milestones"]] == ["PENDING_FUNDING", "DRAFT", "DRAFT"]
    assert len(set(ids)) == 3

    # the employer cannot open a later milestone early, nor anyone claim it
    assert await refused(employer.request_funding(ids[1])) == (409, "milestone_funded_by_series")
    await fund(stack, employer, ids[0])
    await worker.claim(ids[0])
    await stack.settle_engine()
    assert (await employer.get_task(ids[1]))["state"] == "DRAFT"

    hashes = set()
    for index, task_id in enumerate(ids):
        if index:
            await stack.settle_engine(1)
            await fund(stack, employer, task_id)
            assigned = await employer.get_task(task_id)
            assert assigned["state"] == "CLAIMED"
            assert assigned["worker_pubkey"] == worker.pubkey_hex
        paid = await work_and_approve(stack, employer, worker, task_id)
        assert paid["state"] == "PAID"
        hashes.add(paid["funding"]["payment_hash"])
        later = [await employer.get_task(i) for i in ids[index + 1 :]]
        assert all(t["state"] == "DRAFT" for t in later[1:])  # never two ahead
    assert len(hashes) == 3

    series = await employer.get_series(ids[0])
    assert [m["state"] for m in series["milestones"]] == ["PAID"] * 3
    assert [m["amount_msat"] for m in series["milestones"]] == AMOUNTS
    view = await employer.get_task(ids[1])
    assert view["series"]["index"] == 1 and view["series"]["count"] == 3
    assert [m["task_id"] for m in view["series"]["milestones"]] == ids


async def test_a_refund_of_milestone_2_leaves_milestone_1_paid_and_cancels_milestone_3(
    stack: Stack,
) -> None:
    employer, worker = stack.client(), stack.client()
    world = stack.world
    created = await employer.create_milestones(plan(), funding_mode="sequential")
    ids = created["series"]["task_ids"]
    await fund(stack, employer, ids[0])
    await worker.claim(ids[0])
    first = await work_and_approve(stack, employer, worker, ids[0])
    assert first["state"] == "PAID"
    worker_after_first = world.worker.balance_msat
    first_hash = bytes.fromhex(first["funding"]["payment_hash"])

    await stack.settle_engine(1)
    second = await fund(stack, employer, ids[1])
    assert (await employer.get_task(ids[1]))["worker_pubkey"] == worker.pubkey_hex
    await worker.propose_agreement(ids[1], 0, note="I cannot finish this one")
    await employer.accept_agreement(ids[1], 0)
    await stack.settle_engine()

    refunded = await employer.get_task(ids[1])
    assert refunded["state"] == "REFUNDED"
    assert (await employer.get_task(ids[2]))["state"] == "CANCELLED"
    again = await employer.get_task(ids[0])
    assert again.pop("series")["milestones"] != first.pop("series")["milestones"]
    assert again == first  # not a field of the paid milestone itself moved
    assert (await world.escrow.lookup_invoice(first_hash)).state is InvoiceState.SETTLED
    second_hash = bytes.fromhex(second["funding"]["payment_hash"])
    assert (await world.escrow.lookup_invoice(second_hash)).state is InvoiceState.CANCELED
    assert world.worker.balance_msat == worker_after_first


async def test_upfront_issues_every_invoice_at_creation(stack: Stack) -> None:
    employer, worker, stranger = stack.client(), stack.client(), stack.client()
    created = await employer.create_milestones(plan(2), funding_mode="upfront")
    assert [m["state"] for m in created["milestones"]] == ["PENDING_FUNDING"] * 2
    ids = created["series"]["task_ids"]
    hashes = {m["payment_hash"] for m in created["milestones"]}
    assert len(hashes) == 2 and None not in hashes
    for task_id in ids:
        await fund(stack, employer, task_id)
    # nobody claims a later milestone: it goes to the first milestone's worker
    assert await refused(stranger.claim(ids[1])) == (403, "series_worker_only")
    assert await refused(worker.claim(ids[1])) == (403, "series_worker_only")
    await worker.claim(ids[0])
    await stack.settle_engine(1)
    assert (await employer.get_task(ids[1]))["worker_pubkey"] == worker.pubkey_hex
    for task_id in reversed(ids):  # each is paid on its own, in any order
        assert (await work_and_approve(stack, employer, worker, task_id))["state"] == "PAID"


async def test_approving_one_milestone_does_not_touch_another(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    created = await employer.create_milestones(plan(2), funding_mode="upfront")
    ids = created["series"]["task_ids"]
    for task_id in ids:
        await fund(stack, employer, task_id)
    await worker.claim(ids[0])
    await stack.settle_engine(1)
    task = await employer.get_task(ids[0])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(ids[0], {"url": "https://example.org/one"}, invoice)
    # the proof is on milestone 1; milestone 2 has none to approve
    assert await refused(employer.approve(ids[1])) == (409, "wrong_state")
    assert (await employer.get_task(ids[1]))["state"] == "CLAIMED"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda ms: [], "bad_milestones"),
        (lambda ms: ms * 4, "bad_milestones"),  # 12 > milestones_max
        (lambda ms: [ms[1], ms[0], ms[2]], "bad_milestones"),
        (lambda ms: [ms[0], {**ms[1], "deadline_at": ms[0]["deadline_at"]}], "bad_milestones"),
        (lambda ms: [{**ms[0], "amount_msat": 1}], "amount_out_of_range"),
        (lambda ms: [{**ms[0], "deadline_at": 1_000}], "deadline_in_past"),
        (lambda ms: [{**ms[0], "title": ""}], "invalid_content"),
        (lambda ms: [{**ms[0], "deadline_at": ms[0]["deadline_at"] + 10**8}], "task_too_long"),
    ],
)
async def test_a_bad_series_is_refused_whole(stack: Stack, change: Any, code: str) -> None:
    employer = stack.client()
    status, got = await refused(
        employer.create_milestones(change(plan()), funding_mode="sequential")
    )
    assert (status // 100, got) == (4, code)
    assert (await employer.list_tasks())["tasks"] == []  # nothing half-written


async def test_a_series_needs_a_funding_mode(stack: Stack) -> None:
    employer = stack.client()
    assert await refused(employer.create_milestones(plan(), funding_mode="lazy")) == (
        422,
        "invalid_content",
    )


async def test_the_series_limit_is_published_and_enforced(stack: Stack) -> None:
    employer = stack.client()
    assert (await employer.info())["limits"]["milestones_max"] == stack.settings.milestones_max
    stack.services.settings.milestones_max = 2
    assert await refused(employer.create_milestones(plan(3), funding_mode="upfront")) == (
        422,
        "bad_milestones",
    )
    created = await employer.create_milestones(plan(2), funding_mode="upfront")
    assert created["series"]["count"] == 2
