"""PostgreSQL crashes (``pg_ctl stop -m immediate``) in the middle of a release on the devnet:
right after the worker's payment succeeded, before the hold invoice's settle is recorded. The
running engine rides the outage out (its passes fail and are retried, the pool reconnects) and
converges once the server is back: PAID exactly once, the hold settled, the worker paid once,
the public log complete. The cluster is the test's own; the shared server is never touched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from support.devnet_network import DevnetHandle
from support.private_postgres import PrivatePostgres, private_postgres

from taskhold.client import TaskholdAPIError
from taskhold.lightning.base import InvoiceState
from taskhold.store.models import AuditRow

from .live_stack import balances, funded, hold_state, live_stack, public_log_problems
from .test_escrow_e2e import LndStack, _no_force_closes
from .test_hostile_worker import PROOF

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

__all__ = ["private_postgres"]  # the fixture

DOWN_S = 6.0
"""How long the server stays down: several engine passes and publisher rounds fail meanwhile."""


async def test_postgres_crash_mid_release_converges(
    devnet: DevnetHandle, private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    postgres = private_postgres
    outage: dict[str, asyncio.Task[None]] = {}
    crashed = asyncio.Event()

    async def back_after_a_while() -> None:
        await asyncio.sleep(DOWN_S)
        await asyncio.to_thread(postgres.start)

    async def crash_database(point: str) -> None:
        if point == "after_payout" and not outage:
            await asyncio.to_thread(postgres.stop, "immediate")
            outage["restart"] = asyncio.create_task(back_after_a_while())
            crashed.set()

    async with live_stack(
        devnet, tmp_path / "data", postgres.url, fault_hook=crash_database
    ) as stack:
        employer, worker = stack.client(), stack.client()
        before = await balances(stack)
        task = await funded(stack, employer)
        task_id = task["task_id"]
        await worker.claim(task_id)
        invoice = await stack.worker_wallet.create_invoice(
            task["payout_msat"], expiry_seconds=86_400
        )
        await worker.submit_proof(task_id, PROOF, invoice.payment_request)
        await employer.approve(task_id)

        await asyncio.wait_for(crashed.wait(), timeout=60)
        with pytest.raises(TaskholdAPIError) as refused:
            await employer.get_task(task_id)
        assert (refused.value.status, refused.value.code) == (503, "database_unavailable")
        await outage["restart"]

        final = await employer.wait_for_state(task_id, {"PAID", "REFUNDED"}, timeout_s=90)
        assert final["state"] == "PAID", final
        assert await hold_state(stack, task["funding"]["payment_hash"]) is InvoiceState.SETTLED
        escrow, employer_balance, worker_balance = await balances(stack)
        assert worker_balance - before[2] == task["payout_msat"]  # paid once
        assert before[1] - employer_balance == task["amount_msat"]
        assert escrow - before[0] == task["fee_msat"] - final["payout_fee_msat"]
        assert await _no_force_closes(stack)
        assert await public_log_problems(stack) == []
        assert await audited_actions(stack, task_id) >= {"escrow.payout", "escrow.settle"}
        services = stack.services
        background = [services.engine._runner, services.engine._follower]
        assert all(job is not None and not job.done() for job in background)


async def audited_actions(stack: LndStack, task_id: str) -> set[str]:
    """What the operator's audit log says was done for the task (the settle done while the
    database was away included)."""
    async with stack.services.store.transaction() as tx:
        rows = await tx.session.execute(select(AuditRow.action).where(AuditRow.subject == task_id))
        return {action for (action,) in rows}
