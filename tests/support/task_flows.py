"""Steps most API and engine tests share: drive a task to a given state over the API."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from sqlalchemy import select

from support.stacks import Stack
from taskhold.client import TaskholdClient
from taskhold.store.models import LogEntryRow, RequestEventRow, TaskRow, TransitionRow

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


HELD_PAYOUT_DAY_S = 86_400


async def submitted_with_held_payout(
    stack: Stack, employer: TaskholdClient
) -> tuple[dict[str, Any], bytes, bytes]:
    """A task submitted by a worker whose node will hold the payout's HTLC until told to settle
    it: the task, the payout's preimage and its payment hash."""
    worker = stack.client()
    task = await funded(stack, employer, deadline_at=int(time.time()) + HELD_PAYOUT_DAY_S)
    await worker.claim(task["task_id"])
    preimage = os.urandom(32)
    invoice = await stack.world.worker.create_hold_invoice(
        hashlib.sha256(preimage).digest(),
        task["payout_msat"],
        memo="payout",
        expiry_seconds=HELD_PAYOUT_DAY_S,
        cltv_expiry_delta=80,
    )
    await worker.submit_proof(
        task["task_id"], {"url": "https://example.org/held"}, invoice.payment_request
    )
    return task, preimage, invoice.payment_hash


def tag(event: dict[str, Any], name: str) -> str | None:
    """The first value of an event's ``name`` tag."""
    return next((t[1] for t in event["tags"] if t[0] == name), None)


async def read_log(stack: Stack) -> list[dict[str, Any]]:
    """Every signed log entry the database holds, in gseq order."""
    async with stack.services.store.transaction() as tx:
        rows = await tx.session.execute(select(LogEntryRow.raw).order_by(LogEntryRow.gseq))
        return [dict(raw) for raw in rows.scalars()]


async def projection(stack: Stack) -> dict[str, Any]:
    """What a rebuild must reproduce: tasks, transitions, replay guards and the log."""
    async with stack.services.store.transaction() as tx:
        session = tx.session
        tasks = (await session.execute(select(TaskRow).order_by(TaskRow.task_id))).scalars()
        transitions = (
            await session.execute(
                select(TransitionRow).order_by(TransitionRow.task_id, TransitionRow.version)
            )
        ).scalars()
        requests = (await session.execute(select(RequestEventRow.event_id))).scalars()
        return {
            "tasks": [(t.task_id, t.state, t.version, t.pending_action, t.data) for t in tasks],
            "transitions": [
                (t.task_id, t.version, t.event_type, t.state_after, t.event, t.request)
                for t in transitions
            ],
            "requests": sorted(requests),
            "log": [
                dict(raw)
                for raw in (
                    await session.execute(select(LogEntryRow.raw).order_by(LogEntryRow.gseq))
                ).scalars()
            ],
        }
