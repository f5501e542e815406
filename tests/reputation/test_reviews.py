"""Reviews through the API: receipts at PAID and REFUNDED, and a review counts only with the
reviewer's own valid receipt, once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.reputation_flows import paid, refunded_after_dispute
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import funded

from taskhold.client import TaskholdAPIError
from taskhold.nostr import NostrKeys, verify_event


@pytest.fixture
async def arbiter_keys() -> NostrKeys:
    return NostrKeys.generate()


@pytest.fixture
async def stack(tmp_path: Path, database_url: str, arbiter_keys: NostrKeys) -> AsyncIterator[Stack]:
    settings = stack_settings(tmp_path, database_url, arbiters=[arbiter_keys.pubkey_hex])
    opened = await open_stack(settings)
    try:
        yield opened
    finally:
        await close_stack(opened)


async def test_receipts_are_issued_to_both_parties_when_a_task_is_paid(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await paid(stack, employer, worker)
    receipts = (await employer.receipts(task["task_id"]))["receipts"]
    assert [(r["reviewer"], r["role"]) for r in receipts] == [
        (employer.pubkey_hex, "employer"),
        (worker.pubkey_hex, "worker"),
    ]
    operator = stack.services.signer.get_public_key()
    for item in receipts:
        receipt = item["receipt"]
        assert verify_event(receipt)
        assert receipt["kind"] == stack.settings.kind_receipt == 3913
        assert receipt["pubkey"] == operator
        assert ["task", task["task_id"]] in receipt["tags"]
        assert ["p", item["reviewer"]] in receipt["tags"]


async def test_no_receipts_before_the_task_closes_nor_without_a_worker(stack: Stack) -> None:
    employer = stack.client()
    task = await funded(stack, employer)
    assert (await employer.receipts(task["task_id"]))["receipts"] == []
    await employer.cancel(task["task_id"], "no longer needed")
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "REFUNDED"
    assert (await employer.receipts(task["task_id"]))["receipts"] == []


async def test_a_review_with_its_receipt_is_accepted_once(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await paid(stack, employer, worker)
    answer = await worker.review(task["task_id"], 5, "clear brief, paid on time")
    review = answer["review"]
    assert (review["reviewer"], review["subject"], review["rating"]) == (
        worker.pubkey_hex,
        employer.pubkey_hex,
        5,
    )
    record = review["record"]
    assert verify_event(record)
    assert record["kind"] == stack.settings.kind_review_record
    assert ["rseq", "0"] in record["tags"]
    with pytest.raises(TaskholdAPIError) as again:
        await worker.review(task["task_id"], 1, "changed my mind")
    assert (again.value.status, again.value.code) == (409, "already_reviewed")
    await employer.review(task["task_id"], 4)
    reviews = (await employer.reviews(task["task_id"]))["reviews"]
    assert [(r["rseq"], r["rating"]) for r in reviews] == [(0, 5), (1, 4)]

    await stack.services.reputation.sync()
    about_employer = await worker.reputation(employer.pubkey_hex)
    assert about_employer["roles"]["employer"]["reviews"] == 1
    assert about_employer["roles"]["employer"]["rating_avg_milli"] == 5000
    assert about_employer["rseq_to"] == 1


async def test_a_review_after_a_refund_is_accepted(stack: Stack, arbiter_keys: NostrKeys) -> None:
    employer, worker = stack.client(), stack.client()
    task = await refunded_after_dispute(stack, employer, worker, stack.client(arbiter_keys))
    assert len((await employer.receipts(task["task_id"]))["receipts"]) == 2
    answer = await employer.review(task["task_id"], 2, "did not follow the brief")
    assert answer["review"]["subject"] == worker.pubkey_hex


async def test_a_review_without_a_valid_receipt_is_refused(stack: Stack) -> None:
    employer, worker, stranger = stack.client(), stack.client(), stack.client()
    task = await paid(stack, employer, worker)
    task_id = task["task_id"]
    mine = await worker.my_receipt(task_id)
    theirs = await employer.my_receipt(task_id)
    forged = NostrKeys.generate().sign_event(3913, "", mine["tags"], int(time.time()))
    tampered = {**mine, "tags": [*mine["tags"], ["x", "y"]]}

    cases = {
        "someone else's receipt": (worker, theirs, "invalid_receipt"),
        "a receipt not signed by the operator": (worker, forged, "invalid_receipt"),
        "a tampered receipt": (worker, tampered, "invalid_receipt"),
        "a stranger with a party's receipt": (stranger, mine, "not_a_party"),
    }
    for name, (client, receipt, code) in cases.items():
        with pytest.raises(TaskholdAPIError) as refused:
            await client.review(task_id, 5, receipt=receipt)
        assert (refused.value.status, refused.value.code) == (403, code), name
    with pytest.raises(TaskholdAPIError) as missing:
        await worker._task_write(task_id, "review", "review", {"rating": 5}, None)
    assert (missing.value.status, missing.value.code) == (422, "invalid_content")
    assert "receipt" in missing.value.detail
    assert (await worker.reviews(task_id))["reviews"] == []
    # the refusals wrote nothing; the real receipt still works
    await worker.review(task_id, 5, receipt=mine)


async def test_a_review_before_the_task_closes_is_refused(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    fake = {"id": "0" * 64, "kind": 3913, "tags": [], "content": "", "sig": "0" * 128}
    with pytest.raises(TaskholdAPIError) as refused:
        await worker.review(task["task_id"], 5, receipt=fake)
    assert (refused.value.status, refused.value.code) == (409, "task_not_closed")
