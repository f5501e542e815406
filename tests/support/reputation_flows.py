"""Driving tasks to PAID and REFUNDED over the API, for the reputation tests."""

from __future__ import annotations

from typing import Any

from support.stacks import Stack
from support.task_flows import submitted
from taskhold.client import TaskholdClient


async def paid(stack: Stack, employer: TaskholdClient, worker: TaskholdClient) -> dict[str, Any]:
    task = await submitted(stack, employer, worker)
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID", final
    return final


async def refunded_after_dispute(
    stack: Stack, employer: TaskholdClient, worker: TaskholdClient, arbiter: TaskholdClient
) -> dict[str, Any]:
    """The worker submits, the employer disputes and the arbiter sides with the employer."""
    task = await submitted(stack, employer, worker)
    await employer.open_dispute(task["task_id"], "the haiku has six syllables in line one")
    await arbiter.resolve_dispute(task["task_id"], "employer", "line one is too long")
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED", final
    return final
