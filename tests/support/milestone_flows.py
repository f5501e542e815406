"""Steps the milestone tests share: a plan of milestones, funding one, working one through."""

from __future__ import annotations

import time
from typing import Any

from support.stacks import Stack
from support.task_flows import ACCEPTANCE
from taskhold.client import TaskholdClient

AMOUNTS = [40_000_000, 50_000_000, 60_000_000]


def plan(count: int = 3, *, start: int | None = None) -> list[dict[str, Any]]:
    start = int(time.time()) if start is None else start
    return [
        {
            "title": f"Chapter {index + 1}",
            "amount_msat": AMOUNTS[index % len(AMOUNTS)],
            "deadline_at": start + 3600 * (index + 1),
            "acceptance": ACCEPTANCE,
        }
        for index in range(count)
    ]


async def fund(stack: Stack, employer: TaskholdClient, task_id: str) -> dict[str, Any]:
    """Pay the milestone's open hold invoice and let the engine see it."""
    task = await employer.get_task(task_id)
    assert task["state"] == "PENDING_FUNDING", task
    await stack.world.employer.send_payment(task["funding"]["payment_request"])
    await stack.settle_engine(1)
    task = await employer.get_task(task_id)
    assert task["state"] in ("FUNDED", "CLAIMED"), task  # CLAIMED: the series' worker took it
    return task


async def work_and_approve(
    stack: Stack, employer: TaskholdClient, worker: TaskholdClient, task_id: str
) -> dict[str, Any]:
    task = await employer.get_task(task_id)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task_id, {"url": "https://example.org/chapter"}, invoice)
    await employer.approve(task_id)
    await stack.settle_engine()
    return await employer.get_task(task_id)


async def paid_sequential_series(
    stack: Stack, employer: TaskholdClient, worker: TaskholdClient
) -> list[str]:
    """A sequential series of three milestones, each funded after the one before was PAID,
    worked and approved to PAID by ``worker``; the milestones' task ids."""
    created = await employer.create_milestones(plan(), funding_mode="sequential")
    ids: list[str] = created["series"]["task_ids"]
    await fund(stack, employer, ids[0])
    await worker.claim(ids[0])
    for index, task_id in enumerate(ids):
        if index:
            await stack.settle_engine(1)
            await fund(stack, employer, task_id)
        assert (await work_and_approve(stack, employer, worker, task_id))["state"] == "PAID"
    return ids
