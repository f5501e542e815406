"""Worker proofs (kind 3911): only a fresh proof, signed by the claimed worker, naming the log
head the worker saw, is accepted; every other is refused with a clear error and nothing written."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from support.stacks import Stack
from support.task_flows import funded

from taskhold.client import TaskholdAPIError, payout_terms
from taskhold.nostr import NostrKeys
from taskhold.store.models import LogEntryRow, RequestEventRow, TransitionRow


async def _written(stack: Stack) -> tuple[int, int, int]:
    async with stack.services.store.transaction() as tx:
        s = tx.session
        return (
            int((await s.execute(select(func.count()).select_from(TransitionRow))).scalar_one()),
            int((await s.execute(select(func.count()).select_from(RequestEventRow))).scalar_one()),
            int((await s.execute(select(func.count()).select_from(LogEntryRow))).scalar_one()),
        )


async def _claimed(stack: Stack) -> tuple[dict[str, Any], NostrKeys, str]:
    worker_keys = NostrKeys.generate()
    task = await funded(stack, stack.client())
    task = await stack.client(worker_keys).claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    return task, worker_keys, invoice


def _proof(
    keys: NostrKeys,
    task: dict[str, Any],
    invoice: str,
    *,
    head: str | None,
    created_at: int | None = None,
    kind: int = 3911,
    terms: dict[str, Any] | None = None,
) -> dict[str, Any]:
    tags = [["op", "proof"], ["task", task["task_id"]]]
    if head is not None:
        tags.append(["prev", head])
    body = {"proof": {"url": "https://example.org/x"}, "payout_invoice": invoice}
    body |= payout_terms(invoice) if terms is None else terms
    content = json.dumps(body)
    return keys.sign_event(kind, content, tags, created_at or int(time.time()))


async def _submit(
    stack: Stack, task: dict[str, Any], event: dict[str, Any], key: str = "k"
) -> httpx.Response:
    return await stack.http.post(
        f"/v1/tasks/{task['task_id']}/proof",
        json={"request": event},
        headers={"Idempotency-Key": key},
    )


async def test_valid_proof_is_accepted_and_embedded_in_the_log(stack: Stack) -> None:
    task, worker, invoice = await _claimed(stack)
    event = _proof(worker, task, invoice, head=task["log_head"])
    response = await _submit(stack, task, event)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "SUBMITTED"
    async with stack.services.store.transaction() as tx:
        entry = (
            await tx.session.execute(
                select(LogEntryRow.raw).order_by(LogEntryRow.gseq.desc()).limit(1)
            )
        ).scalar_one()
    assert json.loads(entry["content"])["request"] == event
    assert ["e", event["id"], "", worker.pubkey_hex] in entry["tags"]


async def test_forged_proof_is_refused(stack: Stack) -> None:
    task, worker, invoice = await _claimed(stack)
    event = _proof(worker, task, invoice, head=task["log_head"])
    event["content"] = event["content"].replace("example.org", "evil.example")
    before = await _written(stack)
    response = await _submit(stack, task, event)
    assert response.status_code == 401
    assert response.json()["code"] == "bad_signature"
    assert await _written(stack) == before


async def test_proof_by_the_wrong_key_is_refused(stack: Stack) -> None:
    task, _, invoice = await _claimed(stack)
    event = _proof(NostrKeys.generate(), task, invoice, head=task["log_head"])
    before = await _written(stack)
    response = await _submit(stack, task, event)
    assert response.status_code == 403
    assert response.json()["code"] == "wrong_role"
    assert await _written(stack) == before


async def test_replayed_proof_is_refused(stack: Stack) -> None:
    task, worker, invoice = await _claimed(stack)
    event = _proof(worker, task, invoice, head=task["log_head"])
    assert (await _submit(stack, task, event, "one")).status_code == 200
    await stack.client().get_task(task["task_id"])
    before = await _written(stack)
    response = await _submit(stack, task, event, "two")
    assert response.status_code == 409
    assert response.json()["code"] == "replayed_request"
    assert await _written(stack) == before


async def test_stale_proof_is_refused(stack: Stack) -> None:
    task, worker, invoice = await _claimed(stack)
    event = _proof(worker, task, invoice, head=task["log_head"], created_at=int(time.time()) - 3600)
    before = await _written(stack)
    response = await _submit(stack, task, event)
    assert response.status_code == 422
    assert response.json()["code"] == "stale_request"
    assert await _written(stack) == before


async def test_proof_signed_against_an_old_log_head_is_refused(stack: Stack) -> None:
    task, worker, invoice = await _claimed(stack)
    old_head = (await stack.client().transitions(task["task_id"]))["transitions"]
    assert len(old_head) >= 2
    async with stack.services.store.transaction() as tx:
        first_entry = (
            await tx.session.execute(
                select(LogEntryRow.event_id).where(
                    LogEntryRow.task_id == task["task_id"], LogEntryRow.seq == 1
                )
            )
        ).scalar_one()
    before = await _written(stack)
    response = await _submit(stack, task, _proof(worker, task, invoice, head=first_entry))
    assert response.status_code == 409
    assert response.json()["code"] == "stale_head"
    response = await _submit(stack, task, _proof(worker, task, invoice, head=None), "k2")
    assert response.status_code == 422
    assert response.json()["code"] == "missing_head"
    assert await _written(stack) == before


async def test_proof_with_the_request_kind_is_refused(stack: Stack) -> None:
    task, worker, invoice = await _claimed(stack)
    response = await _submit(
        stack, task, _proof(worker, task, invoice, head=task["log_head"], kind=3912)
    )
    assert response.status_code == 422
    assert response.json()["code"] == "wrong_kind"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"payout_hash": "ab" * 32}, "payout_terms_mismatch"),
        ({"payout_msat": -1}, "invalid_content"),
        ("more", "payout_terms_mismatch"),
        ("less", "payout_terms_mismatch"),
        ("missing", "invalid_content"),
    ],
    ids=["other-hash", "negative", "more", "less", "missing"],
)
async def test_payout_terms_that_are_not_the_invoices_are_refused(
    stack: Stack, change: Any, code: str
) -> None:
    """The worker signs the invoice's hash and amount in clear (the log proves the payout
    against them): terms that are not the invoice's own, or none, are refused."""
    task, worker, invoice = await _claimed(stack)
    terms = payout_terms(invoice)
    if change == "missing":
        terms = {}
    elif isinstance(change, str):
        terms["payout_msat"] += 1 if change == "more" else -1
    else:
        terms |= change
    before = await _written(stack)
    response = await _submit(
        stack, task, _proof(worker, task, invoice, head=task["log_head"], terms=terms)
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert await _written(stack) == before


async def test_a_new_payout_invoice_with_other_terms_is_refused(stack: Stack) -> None:
    """The payout-invoice update carries the same signed terms, checked the same way."""
    task, worker_keys, invoice = await _claimed(stack)
    worker = stack.client(worker_keys)
    await worker.submit_proof(task["task_id"], {"url": "https://example.org/x"}, invoice)
    fresh = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    other = payout_terms(await stack.world.worker.create_invoice(task["payout_msat"]))
    with pytest.raises(TaskholdAPIError) as refused:
        await worker._task_write(
            task["task_id"],
            "payout-invoice",
            "payout-invoice",
            {"payout_invoice": fresh, **other},
            None,
        )
    assert refused.value.status == 422
    assert refused.value.code == "payout_terms_mismatch"
