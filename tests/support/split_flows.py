"""A task split by the arbiter over the API, on the simulator: the shared start of the split
tests (escrow, audit)."""

from __future__ import annotations

from typing import Any

from support.stacks import Stack
from support.task_flows import submitted
from taskhold.client import TaskholdClient

WORKER_PERCENT = 60


async def split_task(stack: Stack) -> tuple[dict[str, Any], TaskholdClient, TaskholdClient]:
    """A submitted task, rejected, disputed and split 60/40 by the arbiter; the task, employer
    and worker clients."""
    arbiter, employer, worker = stack.client(), stack.client(), stack.client()
    stack.services.settings.arbiters = [arbiter.pubkey_hex]
    task = await submitted(stack, employer, worker)
    task_id = task["task_id"]
    await employer.reject(task_id, "half of it is missing")
    await worker.open_dispute(task_id, "most of it is there")
    worker_msat = (task["amount_msat"] - task["fee_msat"]) * WORKER_PERCENT // 100
    await arbiter.resolve_dispute(task_id, "split", "60/40", worker_msat=worker_msat)
    return await employer.get_task(task_id), employer, worker


async def invoice_both_shares(
    stack: Stack, task: dict[str, Any], employer: TaskholdClient, worker: TaskholdClient
) -> None:
    """The worker and the employer each send an invoice for exactly their share."""
    split = task["split"]
    await worker.update_payout_invoice(
        task["task_id"], await stack.world.worker.create_invoice(split["worker_msat"])
    )
    await employer.update_refund_invoice(
        task["task_id"], await stack.world.employer.create_invoice(split["employer_msat"])
    )


async def paid_split(stack: Stack) -> dict[str, Any]:
    """A split paid in full: both sides sent their invoices and the engine paid both shares."""
    task, employer, worker = await split_task(stack)
    await invoice_both_shares(stack, task, employer, worker)
    await stack.settle_engine()
    return await employer.get_task(task["task_id"])
