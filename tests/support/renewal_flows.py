"""Steps the renewal tests share: a task longer than one hold, driven round by round."""

from __future__ import annotations

import time
from typing import Any

from support.stacks import Stack
from support.task_flows import funded
from taskhold.client import TaskholdClient
from taskhold.lightning.base import InvoiceState

LONG_DEADLINE_S = 10 * 86_400
"""Ten days: some five hold windows of the default cap."""


async def long_task(stack: Stack, employer: TaskholdClient, **overrides: Any) -> dict[str, Any]:
    """A funded task whose windows need several holds: its first is sized to the cap."""
    overrides.setdefault("deadline_at", int(time.time()) + LONG_DEADLINE_S)
    task = await funded(stack, employer, **overrides)
    assert task["renewal_needed"] is True
    assert task["funding"]["cltv_expiry_delta"] == stack.settings.max_cltv_expiry_delta
    return task


async def mine_to_renewal(stack: Stack, task: dict[str, Any]) -> None:
    """Mine until the task's current hold is within the renewal lead."""
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    target = expiry - stack.settings.renewal_lead_blocks
    await stack.world.network.mine(max(0, target - stack.world.network.height))


async def mine_to(stack: Stack, task: dict[str, Any], blocks_left: int) -> None:
    """Mine until the task's current hold has ``blocks_left`` blocks left."""
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    await stack.world.network.mine(max(0, expiry - blocks_left - stack.world.network.height))


async def opened_renewal(
    stack: Stack, employer: TaskholdClient, task: dict[str, Any]
) -> dict[str, Any]:
    """Mine to the renewal lead and run a pass: the renewal the employer is asked to pay."""
    await mine_to_renewal(stack, task)
    await stack.run_pass()
    renewal = await employer.renewal(task["task_id"])
    assert renewal is not None
    assert renewal["amount_msat"] == task["amount_msat"]
    return renewal


async def renewed_once(
    stack: Stack, employer: TaskholdClient, task: dict[str, Any]
) -> dict[str, Any]:
    """Open the renewal, pay it, let the engine move the task to the new round."""
    renewal = await opened_renewal(stack, employer, task)
    await stack.world.employer.send_payment(renewal["payment_request"])
    await stack.settle_engine(2)
    after = await employer.get_task(task["task_id"])
    assert after["funding"]["funding_round"] == renewal["funding_round"], after
    return after


async def invoice_state(stack: Stack, payment_hash_hex: str) -> InvoiceState:
    return (await stack.world.escrow.lookup_invoice(bytes.fromhex(payment_hash_hex))).state
