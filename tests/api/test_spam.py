"""Free writes that cost the operator storage or log entries are bounded, per task and per key.

Each test plays a spammer: many deposit requests on one task, refused proofs again and again or
as large as a request may be, and writes whose idempotency records would copy the whole task.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from support.deposit_flows import stranger
from support.stacks import Stack
from support.task_flows import funded

from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.nostr import NostrKeys
from taskhold.store.models import Base, IdempotencyRow, TransitionRow

WRITE_TABLES = frozenset(
    {"tasks", "transitions", "request_events", "idempotency_keys", "invoices", "log_entries"}
    | {"listings", "outbox"}
)
"""What a participant's write fills (background work such as the reputation indexer and the
operator's audit log writes elsewhere, at any moment)."""


async def stored_bytes(stack: Stack) -> int:
    """Roughly what the tables a write fills hold: the JSON of each row, summed."""
    total = 0
    async with stack.services.store.transaction() as tx:
        for table in Base.metadata.sorted_tables:
            if table.name not in WRITE_TABLES:
                continue
            for row in (await tx.session.execute(select(table))).mappings():
                total += len(json.dumps(dict(row), default=str))
    return total


async def transitions(stack: Stack) -> int:
    async with stack.services.store.transaction() as tx:
        return int(
            (await tx.session.execute(select(func.count(TransitionRow.version)))).scalar_one()
        )


async def claimed(stack: Stack) -> tuple[dict[str, Any], TaskholdClient, str]:
    task = await funded(stack, stack.client())
    worker = stack.client()
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    return task, worker, invoice


async def refused(
    worker: TaskholdClient, task_id: str, proof: dict[str, Any], invoice: str
) -> TaskholdAPIError:
    with pytest.raises(TaskholdAPIError) as caught:
        await worker.submit_proof(task_id, proof, invoice)
    return caught.value


# --- deposits ---------------------------------------------------------------------------------


async def test_deposit_requests_beyond_the_per_task_cap_are_refused(open_custom: Any) -> None:
    stack: Stack = await open_custom(
        pow_max_bits=8, reputation_max_staleness_s=0, deposit_max_open_per_task=3
    )
    task = await funded(stack, stack.client())
    for _ in range(3):
        await stranger(stack).lock_deposit(task["task_id"])
    before = await stored_bytes(stack)
    with pytest.raises(TaskholdAPIError) as caught:
        await stranger(stack).lock_deposit(task["task_id"])
    assert (caught.value.status, caught.value.code) == (409, "too_many_deposits")
    assert await stored_bytes(stack) == before
    view = await stack.client().get_task(task["task_id"])
    assert len(view["deposits"]) == 3


# --- refused proofs ---------------------------------------------------------------------------


async def test_refused_proofs_beyond_the_per_task_cap_are_refused(open_custom: Any) -> None:
    stack: Stack = await open_custom(refused_proofs_max_per_task=2)
    task, worker, invoice = await claimed(stack)
    for _ in range(2):
        assert (await refused(worker, task["task_id"], {"url": "no"}, invoice)).status == 422
    count = await transitions(stack)
    over = await refused(worker, task["task_id"], {"url": "no"}, invoice)
    assert (over.status, over.code) == (409, "too_many_refused_proofs")
    assert await transitions(stack) == count
    view = await worker.submit_proof(task["task_id"], {"url": "https://example.org/x"}, invoice)
    assert view["state"] == "SUBMITTED"  # a proof that passes is still taken


async def test_a_large_refused_proof_is_answered_but_not_stored(stack: Stack) -> None:
    task, worker, invoice = await claimed(stack)
    small = await refused(worker, task["task_id"], {"url": "no"}, invoice)
    assert small.code == "proof_rejected"
    before, count = await stored_bytes(stack), await transitions(stack)
    junk = {"url": "no", "notes": "x" * 18_000}
    large = await refused(worker, task["task_id"], junk, invoice)
    assert (large.status, large.code) == (422, "proof_rejected")
    assert "not recorded" in large.detail
    assert await transitions(stack) == count
    growth = await stored_bytes(stack) - before
    assert growth < 2_000, growth  # the request id, replay guard and the answer: no proof


# --- idempotency records ----------------------------------------------------------------------


def _signed(keys: NostrKeys, op: str, content: dict[str, Any], task_id: str) -> dict[str, Any]:
    return keys.sign_event(
        3912, json.dumps(content), [["op", op], ["task", task_id]], int(time.time())
    )


async def test_idempotency_records_are_small_and_replay_the_first_answer(stack: Stack) -> None:
    employer = stack.client()
    task = await funded(stack, employer, description="d" * 9_000)
    worker_keys = NostrKeys.generate()
    claim = _signed(worker_keys, "claim", {}, task["task_id"])
    path = f"/v1/tasks/{task['task_id']}/claim"
    first = await stack.http.post(path, json={"request": claim}, headers={"Idempotency-Key": "c1"})
    assert first.status_code == 200, first.text
    assert first.json()["state"] == "CLAIMED"

    async with stack.services.store.transaction() as tx:
        rows = list((await tx.session.execute(select(IdempotencyRow))).scalars())
    sizes = [len(json.dumps(row.response)) for row in rows]
    assert len(rows) >= 3  # create, fund, claim
    assert max(sizes) < 1_000, sizes  # not a copy of the 9 kB description per write

    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    worker = stack.client(worker_keys)
    await worker.submit_proof(task["task_id"], {"url": "https://example.org/x"}, invoice)
    again = await stack.http.post(path, json={"request": claim}, headers={"Idempotency-Key": "c1"})
    assert again.status_code == 200
    assert again.json() == first.json()  # the first answer, though the task moved on
