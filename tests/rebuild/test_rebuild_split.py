"""A database lost in the middle of paying a split, rebuilt from the log: each share ends paid
exactly once, whether the crash came after the worker's share or after both."""

from __future__ import annotations

from pathlib import Path

import pytest
from rebuild.test_rebuild_payouts import Crash, hold_state, payout_hash, rebuilt
from support.split_flows import split_task
from support.stacks import open_stack, stack_settings

from taskhold.lightning.base import InvoiceState


@pytest.mark.parametrize("point", ["after_worker_share", "after_employer_share"])
async def test_a_split_rebuilt_mid_payment_pays_each_share_once(
    tmp_path: Path, database_url: str, database_kind: str, point: str
) -> None:
    original = await open_stack(stack_settings(tmp_path, database_url))
    task, employer, worker = await split_task(original)
    split = task["split"]
    worker_invoice = await original.world.worker.create_invoice(split["worker_msat"])
    employer_invoice = await original.world.employer.create_invoice(split["employer_msat"])
    await worker.update_payout_invoice(task["task_id"], worker_invoice)
    await employer.update_refund_invoice(task["task_id"], employer_invoice)
    employer_before = original.world.employer.balance_msat
    original.faults[point] = Crash()
    await original.run_pass()
    assert len(original.world.network.payments_to(payout_hash(worker_invoice))) == 1

    async with rebuilt(original, tmp_path, database_kind) as stack:
        await stack.settle_engine()
        final = await stack.client().get_task(task["task_id"])
        assert final["state"] == "PAID"
        for invoice in (worker_invoice, employer_invoice):
            assert len(stack.world.network.payments_to(payout_hash(invoice))) == 1
        assert stack.world.worker.balance_msat == split["worker_msat"]
        assert stack.world.employer.balance_msat == employer_before + split["employer_msat"]
        assert final["payout_failures"] == final["split"]["refund_failures"] == 0
        assert await hold_state(stack, task["funding"]["payment_hash"]) is InvoiceState.SETTLED
