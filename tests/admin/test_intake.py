"""Pausing intake: new tasks are refused with 503 intake_paused, everything in flight goes on.

Hostile first: a paused server still releases a funded task (proof, approve, PAID) while a
create and a first funding are refused; the pause is in the database, so a second replica on
it refuses too; a pause twice is one pause (and two journal entries); a resume restores
intake; a create accepted before the pause, retried under its key, still gets its first
answer; and there is no HTTP path to pause at all, so no key can pause it from outside.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import AMOUNT_MSAT, created, funded, submitted

from taskhold.admin.controls import intake_status, set_intake
from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.nostr import NostrKeys
from taskhold.store.models import AuditRow

OPERATOR = "admin:tester"


async def pause(stack: Stack, **kwargs: object) -> bool:
    change = await set_intake(stack.services.store, paused=True, actor=OPERATOR, **kwargs)  # type: ignore[arg-type]
    return change.changed


async def resume(stack: Stack) -> bool:
    return (await set_intake(stack.services.store, paused=False, actor=OPERATOR)).changed


async def refused_create(stack: Stack, employer: TaskholdClient) -> TaskholdAPIError:
    with pytest.raises(TaskholdAPIError) as refused:
        await created(stack, employer)
    return refused.value


async def journal(stack: Stack) -> list[AuditRow]:
    async with stack.services.store.transaction() as tx:
        rows = await tx.session.execute(
            select(AuditRow).where(AuditRow.action.like("admin.%")).order_by(AuditRow.seq)
        )
        return list(rows.scalars())


async def test_a_paused_server_releases_a_funded_task_and_refuses_new_ones(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    draft = await created(stack, employer)

    assert await pause(stack, reason="node maintenance")

    refused = await refused_create(stack, employer)
    assert (refused.status, refused.code, refused.retry_after_s) == (503, "intake_paused", 300)
    assert refused.problem["retry_after_s"] == 300
    assert "paused intake" in refused.detail
    with pytest.raises(TaskholdAPIError) as no_funding:
        await employer.request_funding(draft["task_id"])
    assert (no_funding.value.status, no_funding.value.code) == (503, "intake_paused")

    await employer.approve(task["task_id"])
    await stack.run_pass()
    await stack.settle_engine()
    paid = await employer.get_task(task["task_id"])
    assert paid["state"] == "PAID"
    assert stack.world.worker.balance_msat == task["payout_msat"]
    assert (await employer.get_task(draft["task_id"]))["state"] == "DRAFT"  # nothing written


async def test_cancel_and_refund_go_on_while_paused(stack: Stack) -> None:
    employer = stack.client()
    task = await funded(stack, employer)
    await pause(stack)

    await employer.cancel(task["task_id"])
    await stack.settle_engine()

    assert (await employer.get_task(task["task_id"]))["state"] == "REFUNDED"


async def test_the_refusal_is_problem_json_with_retry_after(stack: Stack) -> None:
    await pause(stack)
    keys = NostrKeys.generate()
    content = json.dumps(
        {"title": "t", "amount_msat": AMOUNT_MSAT, "deadline_at": int(time.time()) + 3600}
    )
    event = keys.sign_event(3912, content, [["op", "create"], ["key", "k-1"]], int(time.time()))

    answer = await stack.http.post(
        "/v1/tasks", json={"request": event}, headers={"Idempotency-Key": "k-1"}
    )

    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "300"
    problem = answer.json()
    assert (problem["code"], problem["status"], problem["retry_after_s"]) == (
        "intake_paused",
        503,
        300,
    )


async def test_a_pause_twice_is_one_pause_and_two_journal_entries(stack: Stack) -> None:
    assert await pause(stack) is True
    assert await pause(stack) is False

    switch = await intake_status(stack.services.store)
    assert switch is not None and switch.value == 1 and switch.changed_by == OPERATOR
    entries = await journal(stack)
    assert [(e.actor, e.action, e.subject) for e in entries] == [
        (OPERATOR, "admin.pause_intake", "intake")
    ] * 2
    assert [e.details["changed"] for e in entries] == [True, False]
    assert entries[0].details == {"before": False, "after": True, "changed": True}
    assert (await refused_create(stack, stack.client())).code == "intake_paused"


async def test_resume_restores_intake(stack: Stack) -> None:
    employer = stack.client()
    await pause(stack)
    await refused_create(stack, employer)

    assert await resume(stack) is True
    assert await resume(stack) is False

    task = await funded(stack, employer)  # create and fund are taken again
    assert task["state"] == "FUNDED"
    actions = [(e.action, e.details["changed"]) for e in await journal(stack)]
    assert actions == [
        ("admin.pause_intake", True),
        ("admin.resume_intake", True),
        ("admin.resume_intake", False),
    ]


async def test_every_replica_on_the_database_sees_the_pause(open_custom: object) -> None:
    first: Stack = await open_custom()  # type: ignore[operator]
    second: Stack = await open_custom()  # type: ignore[operator]
    await pause(first)

    assert (await refused_create(second, second.client())).code == "intake_paused"

    await resume(first)
    assert (await created(second, second.client()))["state"] == "DRAFT"


async def test_a_create_accepted_before_the_pause_is_answered_on_retry(stack: Stack) -> None:
    employer = stack.client()
    args = {"title": "t", "description": "", "amount_msat": AMOUNT_MSAT}
    deadline = int(time.time()) + 3600
    first = await employer.create_task(**args, deadline_at=deadline, idempotency_key="once")
    await pause(stack)

    again = await employer.create_task(**args, deadline_at=deadline, idempotency_key="once")

    assert again["task_id"] == first["task_id"]
    assert (await refused_create(stack, employer)).code == "intake_paused"


async def test_no_http_path_pauses_intake(stack: Stack) -> None:
    """The switch is reached through the database only: no route takes it from outside."""
    app = stack.http._transport.app  # type: ignore[attr-defined]
    paths = " ".join(str(getattr(route, "path", "")) for route in app.routes)
    assert "admin" not in paths and "intake" not in paths and "pause" not in paths
    for path in ("/v1/admin/pause", "/admin/pause", "/v1/intake"):
        answer = await stack.http.post(path, json={})
        assert answer.status_code in (404, 405)
    assert await intake_status(stack.services.store) is None


async def test_the_pause_survives_a_restart(tmp_path: Path, database_url: str) -> None:
    settings = stack_settings(tmp_path, database_url)
    before = await open_stack(settings)
    try:
        await pause(before)
    finally:
        await close_stack(before)

    after = await open_stack(settings)
    try:
        assert (await refused_create(after, after.client())).code == "intake_paused"
    finally:
        await close_stack(after)
