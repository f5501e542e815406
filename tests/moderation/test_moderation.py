"""The operator's moderation: a blocked key is refused but never loses money in a task; a
delisted task leaves the board while its escrow runs on; every change is journaled, signed into
one replaceable list, and leaves the log clean for its auditor."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import select
from support.stacks import Stack
from support.task_flows import funded, submitted, tag

from taskhold.audit.checks import audit_log
from taskhold.client import TaskholdAPIError
from taskhold.errors import Invalid, NotFound
from taskhold.journal.chain import verify_chain
from taskhold.moderation import MODERATION_D, Moderator
from taskhold.store.models import AuditRow, OutboxRow

ADMIN = "admin:test"


def _moderator(stack: Stack) -> Moderator:
    audit = stack.services.audit
    assert audit is not None
    return Moderator(
        stack.services.store, stack.services.signer, audit, kind=stack.settings.kind_checkpoint
    )


async def _refused(write: Any) -> TaskholdAPIError:
    with pytest.raises(TaskholdAPIError) as refused:
        await write
    return refused.value


async def _outbox(stack: Stack, kind: int) -> list[dict[str, Any]]:
    async with stack.services.store.transaction() as tx:
        rows = await tx.session.execute(
            select(OutboxRow.raw).where(OutboxRow.kind == kind).order_by(OutboxRow.created_at)
        )
        return [dict(raw) for raw in rows.scalars()]


async def _moderation_lists(stack: Stack) -> list[dict[str, Any]]:
    """The signed moderation lists in the order they were signed (the outbox's queued_at is
    whole seconds: several lists queued in one second tie there)."""
    events = await _outbox(stack, stack.settings.kind_checkpoint)
    lists = [e for e in events if tag(e, "d") == MODERATION_D]
    return sorted(lists, key=lambda e: (e["created_at"], e["id"]))


async def _listing(stack: Stack, task_id: str) -> dict[str, Any]:
    """The newest listing signed for the task (what relays keep)."""
    listings = [
        e for e in await _outbox(stack, stack.settings.kind_listing) if tag(e, "d") == task_id
    ]
    return max(listings, key=lambda e: e["created_at"])


async def _state(stack: Stack, task_id: str) -> str:
    async with stack.services.store.transaction() as tx:
        task = await tx.load_task(task_id)
    assert task is not None
    return task.state.value


async def test_a_blocked_key_is_refused_with_403_until_unblocked(stack: Stack) -> None:
    employer = stack.client()
    await _moderator(stack).block(employer.pubkey_hex, "spam listings", actor=ADMIN)
    refused = await _refused(employer.create_task("t", "d", 100_000, int(time.time()) + 3600))
    assert (refused.status, refused.code) == (403, "blocked_key")
    assert "spam listings" in refused.detail
    other = await stack.client().create_task("t", "d", 100_000, int(time.time()) + 3600)
    assert other["state"] == "DRAFT"  # only that key
    await _moderator(stack).unblock(employer.pubkey_hex, actor=ADMIN)
    assert (await employer.create_task("t", "d", 100_000, int(time.time()) + 3600))[
        "state"
    ] == "DRAFT"


async def test_a_blocked_employer_still_gets_its_refund(stack: Stack) -> None:
    employer = stack.client()
    before = stack.world.employer.balance_msat
    task = await funded(stack, employer)
    await _moderator(stack).block(employer.pubkey_hex, "fraud report", actor=ADMIN)
    assert (await _refused(employer.request_funding(task["task_id"]))).code == "blocked_key"
    await employer.cancel(task["task_id"], reason="leaving")  # an exit: taken
    await stack.settle_engine()
    assert await _state(stack, task["task_id"]) == "REFUNDED"
    assert stack.world.employer.balance_msat == before


async def test_a_blocked_worker_is_still_paid_for_its_submitted_work(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await _moderator(stack).block(worker.pubkey_hex, "abuse", actor=ADMIN)
    refused = await _refused(worker.open_dispute(task["task_id"], "x"))
    assert refused.code == "blocked_key"
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    assert await _state(stack, task["task_id"]) == "PAID"
    assert stack.world.worker.balance_msat == task["payout_msat"]


async def test_a_blocked_employer_cannot_stop_the_release_of_approved_work(stack: Stack) -> None:
    """Blocking the employer after it approved: the engine pays the worker all the same."""
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await employer.approve(task["task_id"])
    await _moderator(stack).block(employer.pubkey_hex, "abuse", actor=ADMIN)
    await stack.settle_engine()
    assert await _state(stack, task["task_id"]) == "PAID"


async def test_a_delisted_task_leaves_the_board_and_its_escrow_runs_on(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer)
    task_id = task["task_id"]
    await _moderator(stack).delist(task_id, "illegal content", actor=ADMIN)

    board = (await stack.http.get("/v1/tasks")).json()["tasks"]
    assert task_id not in [t["task_id"] for t in board]
    mine = await employer.list_tasks(employer=employer.pubkey_hex)
    assert task_id in [t["task_id"] for t in mine["tasks"]]  # its parties still find it
    listing = await _listing(stack, task_id)
    assert tag(listing, "status") == "delisted" and listing["content"] == ""
    assert tag(listing, "title") is None

    await worker.claim(task_id)  # the escrow continues: claim, proof, approval, payout
    assert tag(await _listing(stack, task_id), "status") == "delisted"  # not re-listed by it
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task_id, {"url": "https://example.org/haiku"}, invoice)
    await employer.approve(task_id)
    await stack.settle_engine()
    assert await _state(stack, task_id) == "PAID"

    await _moderator(stack).relist(task_id, actor=ADMIN)
    assert tag(await _listing(stack, task_id), "status") == "paid"
    board = (await stack.http.get("/v1/tasks")).json()["tasks"]
    assert task_id in [t["task_id"] for t in board]


async def test_every_change_is_journaled_and_signed_into_one_growing_list(stack: Stack) -> None:
    moderator = _moderator(stack)
    task = await funded(stack, stack.client())
    key = stack.client().pubkey_hex
    await moderator.block(key, "spam", actor=ADMIN)
    await moderator.delist(task["task_id"], "scam", actor=ADMIN)
    await moderator.unblock(key, actor=ADMIN)

    async with stack.services.store.transaction() as tx:
        rows = (
            await tx.session.execute(
                select(AuditRow.actor, AuditRow.action, AuditRow.subject, AuditRow.details)
                .where(AuditRow.action.like("moderation.%"))
                .order_by(AuditRow.seq)
            )
        ).all()
        chain = await verify_chain(tx.session)
    assert [tuple(row) for row in rows] == [
        (ADMIN, "moderation.block", key, {"reason": "spam"}),
        (ADMIN, "moderation.delist", task["task_id"], {"reason": "scam"}),
        (ADMIN, "moderation.unblock", key, {}),
    ]
    assert chain.ok

    lists = await _moderation_lists(stack)
    assert len(lists) == 3
    where = (await stack.http.get("/v1/info")).json()["moderation"]
    assert (where["kind"], where["d"]) == (lists[0]["kind"], tag(lists[0], "d"))
    assert [e["created_at"] for e in lists] == sorted({e["created_at"] for e in lists})
    assert all(e["pubkey"] == stack.services.signer.get_public_key() for e in lists)
    newest = json.loads(lists[-1]["content"])
    assert newest["blocked_keys"] == []
    assert [(t["task_id"], t["reason"]) for t in newest["delisted_tasks"]] == [
        (task["task_id"], "scam")
    ]
    assert json.loads(lists[0]["content"])["blocked_keys"][0]["pubkey"] == key


async def test_the_log_stays_clean_for_its_auditor(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    moderator = _moderator(stack)
    await moderator.delist(task["task_id"], "scam", actor=ADMIN)
    await moderator.block(worker.pubkey_hex, "abuse", actor=ADMIN)
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    await moderator.relist(task["task_id"], actor=ADMIN)

    async with stack.services.store.transaction() as tx:
        everything = [
            dict(raw) for raw in (await tx.session.execute(select(OutboxRow.raw))).scalars()
        ]
    kinds = stack.settings
    result = audit_log(
        [e for e in everything if e["kind"] == kinds.kind_log_entry],
        stack.services.signer.get_public_key(),
        checkpoints=[e for e in everything if e["kind"] == kinds.kind_checkpoint],
    )
    assert result.clean, [f.to_json() for f in result.findings]
    assert result.summary.tasks == 1 and result.summary.payouts == 1


async def test_bad_moderation_input_is_refused(stack: Stack) -> None:
    moderator = _moderator(stack)
    with pytest.raises(Invalid, match="64 lower-case hex"):
        await moderator.block("npub1xyz", "spam", actor=ADMIN)
    with pytest.raises(Invalid, match="reason"):
        await moderator.block("a" * 64, "  ", actor=ADMIN)
    with pytest.raises(NotFound):
        await moderator.unblock("a" * 64, actor=ADMIN)
    with pytest.raises(NotFound):
        await moderator.delist("0" * 64, "scam", actor=ADMIN)
    with pytest.raises(NotFound):
        await moderator.relist("0" * 64, actor=ADMIN)
    assert await _moderation_lists(stack) == []  # nothing signed for a refused change


async def test_every_replica_refuses_a_key_blocked_on_another(open_custom: Any) -> None:
    first: Stack = await open_custom()
    second: Stack = await open_custom()  # another process on the same database
    employer = second.client()
    await _moderator(first).block(employer.pubkey_hex, "spam", actor=ADMIN)
    refused = await _refused(employer.create_task("t", "d", 100_000, int(time.time()) + 3600))
    assert refused.code == "blocked_key"


async def test_a_blocked_worker_may_still_replace_a_payout_invoice_that_failed(
    stack: Stack,
) -> None:
    """The payout fails after the block: the worker's new invoice (an exit) is taken and paid."""
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await _moderator(stack).block(worker.pubkey_hex, "abuse", actor=ADMIN)
    stack.world.network.fail_next_payments(1)
    await employer.approve(task["task_id"])
    await stack.run_pass()
    fresh = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.update_payout_invoice(task["task_id"], fresh)
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()
    assert await _state(stack, task["task_id"]) == "PAID"
    assert stack.world.worker.balance_msat == task["payout_msat"]
