"""A stack whose engine the test drives by hand runs nothing in the background: no invoice
watcher races the test's own reconcile passes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from support.deposit_flows import give_worker_wallet_money, locked_deposit, stranger
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import funded, submitted


def _watchers() -> list[str]:
    """Background invoice followers: the engine's one subscription, or a per-invoice watcher."""
    return [
        t.get_name()
        for t in asyncio.all_tasks()
        if t.get_name() == "taskhold-invoices" or t.get_name().startswith("watch-")
    ]


async def test_a_hand_driven_stack_starts_no_invoice_watcher(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)  # fund, pay, reconcile, claim, submit
    assert _watchers() == []
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    await stack.services.engine.run_once()
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    assert _watchers() == []


async def test_node_changes_reach_a_hand_driven_stack_through_reconcile(stack: Stack) -> None:
    employer = stack.client()
    task = await funded(stack, employer)  # the HTLC was seen by the reconcile pass alone
    assert task["state"] == "FUNDED"
    assert _watchers() == []


async def test_deposits_are_followed_by_reconcile_without_a_watcher(
    tmp_path: Path, database_url: str
) -> None:
    opened = await open_stack(stack_settings(tmp_path, database_url, pow_max_bits=8))
    try:
        await give_worker_wallet_money(opened)
        task = await funded(opened, opened.client())
        await locked_deposit(opened, stranger(opened), task["task_id"], opened.world.worker)
        assert _watchers() == []
    finally:
        await close_stack(opened)
