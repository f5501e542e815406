"""Group commit (``escrow/grouped.py``): system commands of tasks finishing together are recorded
in fewer transactions, and one that fails never holds back the others."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.stacks import Stack
from support.task_flows import funded, read_log

from taskhold.escrow import grouped
from taskhold.store import Tx
from taskhold.tasks import SYSTEM_ACTOR, Task
from taskhold.tasks import commands as c

UNLIMITED = {"rate_limit_pubkey_per_s": 0, "rate_limit_ip_per_s": 0}


async def verified(stack: Stack, n: int) -> list[str]:
    employer, worker = stack.client(), stack.client()
    ready = [await funded(stack, employer) for _ in range(n)]
    for task in ready:
        await worker.claim(task["task_id"])
        invoice = await stack.world.worker.create_invoice(task["payout_msat"])
        await worker.submit_proof(task["task_id"], {"url": "https://example.org/x"}, invoice)
        await employer.approve(task["task_id"])
    return [t["task_id"] for t in ready]


def failure(task: Task, now: int) -> c.Command:
    return c.RecordPayoutFailure(actor=SYSTEM_ACTOR, at=now, reason="no route")


def transactions_used(monkeypatch: pytest.MonkeyPatch) -> list[Tx]:
    """The transactions the grouped commands were recorded in (kept, so no id is reused)."""
    used: list[Tx] = []
    record = grouped.record_system

    async def spied(ctx: Any, tx: Tx, task_id: str, make: grouped.Make) -> Any:
        if not any(seen is tx for seen in used):
            used.append(tx)
        return await record(ctx, tx, task_id, make)

    monkeypatch.setattr(grouped, "record_system", spied)
    return used


async def test_commands_finishing_together_share_transactions(
    open_custom: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack: Stack = await open_custom(**UNLIMITED)
    task_ids = await verified(stack, 6)
    ctx = stack.services.engine.ctx
    used = transactions_used(monkeypatch)

    done = await asyncio.gather(*(ctx.commits.apply(ctx, t, failure) for t in task_ids))

    assert [t.payout_failures if t else None for t in done] == [1] * 6
    assert 1 <= len(used) < 6, "grouped: fewer transactions than commands"
    for task_id in task_ids:
        assert (await stack.client().get_task(task_id))["payout_failures"] == 1
    log = await read_log(stack)
    assert len({e["id"] for e in log}) == len(log)


async def test_a_command_that_fails_in_a_group_leaves_the_others_recorded(
    open_custom: Any,
) -> None:
    stack: Stack = await open_custom(**UNLIMITED)
    task_ids = await verified(stack, 5)
    ctx = stack.services.engine.ctx
    bad = task_ids[2]

    def sometimes(task: Task, now: int) -> c.Command:
        if task.task_id == bad:
            raise RuntimeError("this task's command cannot be decided")
        return failure(task, now)

    done = await asyncio.gather(
        *(ctx.commits.apply(ctx, t, sometimes) for t in task_ids), return_exceptions=True
    )

    assert isinstance(done[2], RuntimeError)
    for index, task_id in enumerate(task_ids):
        final = await stack.client().get_task(task_id)
        assert final["payout_failures"] == (0 if task_id == bad else 1), index
        assert final["state"] == "VERIFIED"


async def test_a_replayed_command_in_a_group_records_nothing_twice(open_custom: Any) -> None:
    replays = 3
    stack: Stack = await open_custom(**UNLIMITED)
    (task_id,) = await verified(stack, 1)
    ctx = stack.services.engine.ctx
    once_only: dict[str, int] = {}

    def first_time(task: Task, now: int) -> c.Command | None:
        once_only[task.task_id] = once_only.get(task.task_id, 0) + 1
        return failure(task, now) if task.payout_failures == 0 else None

    await asyncio.gather(*(ctx.commits.apply(ctx, task_id, first_time) for _ in range(replays)))

    assert (await stack.client().get_task(task_id))["payout_failures"] == 1
    assert once_only[task_id] == replays
