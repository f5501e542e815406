"""Steps most API and engine tests share: drive a task to a given state over the API."""

from __future__ import annotations

import time
from typing import Any

from conftest import Stack

from taskhold.client import TaskholdClient

AMOUNT_MSAT = 150_000_000
ACCEPTANCE = {"required_fields": ["url"], "url_fields": ["url"]}


async def created(stack: Stack, employer: TaskholdClient, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "title": "Write a haiku",
        "description": "Five, seven, five.",
        "amount_msat": AMOUNT_MSAT,
        "deadline_at": int(time.time()) + 3600,
        "acceptance": ACCEPTANCE,
    }
    args.update(overrides)
    return await employer.create_task(**args)


async def funded(stack: Stack, employer: TaskholdClient, **overrides: Any) -> dict[str, Any]:
    task = await created(stack, employer, **overrides)
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    await stack.world.employer.send_payment(funding["payment_request"])
    await stack.settle_engine(1)
    task = await employer.get_task(task["task_id"])
    assert task["state"] == "FUNDED", task
    return task


async def submitted(
    stack: Stack, employer: TaskholdClient, worker: TaskholdClient, **overrides: Any
) -> dict[str, Any]:
    task = await funded(stack, employer, **overrides)
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    return await worker.submit_proof(task["task_id"], {"url": "https://example.org/haiku"}, invoice)
