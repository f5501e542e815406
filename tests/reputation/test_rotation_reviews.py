"""Reviews across an operator key rotation (``keys rotate``): a receipt the old key signed with
its task's final entry still takes a review after the rotation, and that review counts in the
live indexer, in ``score.recompute`` from the starting key and in ``taskhold audit
--reputation``, which reads receipts and records from every key of the chain; a rebuild restores
them all. A receipt signed by any other key is refused everywhere."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.rebuild_support import (
    rebuild_cli,
    reputation_keys,
    reputation_state,
    signed_events,
    taskhold_cli,
)
from support.relays import drain
from support.reputation_flows import paid
from support.stacks import close_stack, new_database, open_stack, stack_settings
from support.task_flows import tag
from typer.testing import CliRunner

from taskhold.cli import cli
from taskhold.client import TaskholdAPIError
from taskhold.nostr import NostrKeys, verify_event
from taskhold.nostr.embedded import EmbeddedRelay
from taskhold.nostr.entries import canonical_json
from taskhold.nostr.relays import RelayPool
from taskhold.publiclog.rotation import rotate_operator
from taskhold.reputation.metrics import Indexer
from taskhold.reputation.score import recompute

pytestmark = pytest.mark.slow


@pytest.fixture
async def relay_url(tmp_path: Path) -> AsyncIterator[str]:
    relay = EmbeddedRelay(tmp_path / "relay")
    url = await relay.start()
    try:
        yield url
    finally:
        await relay.stop()


async def _audit(relay: str, operator: str, reputation: str) -> tuple[int, dict[str, Any]]:
    args = ["audit", "--relay", relay, "--operator", operator, "--reputation", reputation]
    result = await asyncio.to_thread(CliRunner().invoke, cli, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def _receipt_of(receipts: list[dict[str, Any]], task_id: str, reviewer: str) -> dict[str, Any]:
    return next(r for r in receipts if tag(r, "task") == task_id and tag(r, "p") == reviewer)


def _record(
    operator: Any, reviewer: NostrKeys, task_id: str, subject: str, rseq: int, receipt: Any
) -> dict[str, Any]:
    """A review record as the operator would sign it, around a review the reviewer signed."""
    now = int(time.time())
    body = canonical_json({"rating": 5, "comment": "", "receipt": receipt})
    review = reviewer.sign_event(3912, body, [["op", "review"], ["task", task_id]], now)
    tags = [
        ["task", task_id], ["p", subject], ["role", "employer"], ["rseq", str(rseq)],
        ["e", review["id"], "", reviewer.pubkey_hex],
    ]  # fmt: skip
    return dict(operator.sign_event(3914, canonical_json(review), tags, now))


async def test_reviews_with_receipts_of_the_old_key_count_after_a_rotation(
    tmp_path: Path, database_url: str, database_kind: str, relay_url: str
) -> None:
    settings = stack_settings(tmp_path, database_url, relays=[relay_url])
    employer_keys, worker_keys = NostrKeys.generate(), NostrKeys.generate()
    stack = await open_stack(settings)
    try:
        original = stack.services.signer.get_public_key()
        first = (await paid(stack, stack.client(employer_keys), stack.client(worker_keys)))[
            "task_id"
        ]
        await stack.client(worker_keys).review(first, 5, "before the rotation")
        assert stack.services.reputation is not None
        await stack.services.reputation.sync()
        assert stack.services.publisher is not None
        await drain(stack.services.publisher)
    finally:
        await close_stack(stack)

    old, new = await rotate_operator(settings)
    assert old.pubkey_hex == original

    stack = await open_stack(settings, world=stack.world)
    try:
        employer, worker = stack.client(employer_keys), stack.client(worker_keys)
        assert stack.services.signer.get_public_key() == new.pubkey_hex
        mine = await employer.my_receipt(first)
        assert mine["pubkey"] == original  # issued before the rotation
        answer = await employer.review(first, 4, "after the rotation", receipt=mine)
        record = answer["review"]["record"]
        assert record["pubkey"] == new.pubkey_hex and verify_event(record)

        second = (await paid(stack, employer, worker))["task_id"]
        genuine = await worker.my_receipt(second)
        assert genuine["pubkey"] == new.pubkey_hex
        now = int(time.time())
        by_stranger = NostrKeys.generate().sign_event(3913, "", genuine["tags"], now)
        by_old_key = old.sign_event(3913, "", genuine["tags"], genuine["created_at"])
        for receipt in (by_stranger, by_old_key):
            with pytest.raises(TaskholdAPIError) as refused:
                await worker.review(second, 1, receipt=receipt)
            assert (refused.value.status, refused.value.code) == (403, "invalid_receipt")
            assert "signed the task's final entry" in refused.value.detail
        await worker.review(second, 5, receipt=genuine)

        # the live indexer
        service = stack.services.reputation
        assert service is not None
        await service.sync()
        assert service.indexer.operator_keys == (original, new.pubkey_hex)
        assert service.indexer.rejected_reviews == {}
        about_worker = await employer.reputation(worker_keys.pubkey_hex)
        assert about_worker["roles"]["worker"]["reviews"] == 1
        assert about_worker["roles"]["worker"]["rating_avg_milli"] == 4000
        about_employer = await worker.reputation(employer_keys.pubkey_hex)
        assert about_employer["roles"]["employer"]["reviews"] == 2
        assert about_employer["rseq_to"] == 2
        assert stack.services.publisher is not None
        await drain(stack.services.publisher)
        before = await reputation_state(stack)
        events = await signed_events(stack)
    finally:
        await close_stack(stack)
    reputation = reputation_keys(stack).pubkey_hex

    # recompute from the starting key reproduces every assertion, old and new operator tag
    assert {tag(a, "operator") for a in events["assertions"]} == {original, new.pubkey_hex}
    report = recompute(
        events["entries"],
        events["assertions"],
        review_records=events["records"],
        operator_pubkey=original,
        reputation_pubkey=reputation,
        verify=verify_event,
    )
    assert report.clean, report.mismatches
    assert report.checked == len(events["assertions"]) >= 3

    # a record the operator signed around a review whose receipt a stranger signed: refused
    forged = _record(new, employer_keys, second, worker_keys.pubkey_hex, 3, {**by_stranger})
    reissued = _record(new, employer_keys, second, worker_keys.pubkey_hex, 4, {**by_old_key})
    indexer = Indexer(operator_pubkey=original)
    indexer.add_many([*events["entries"], *events["records"], forged, reissued])
    assert indexer.head_rseq == 4 and set(indexer.rejected_reviews) == {3, 4}
    for reason in indexer.rejected_reviews.values():
        assert "not signed by the operator key that signed the task's final entry" in reason
    counted = indexer.role(worker_keys.pubkey_hex, "worker")
    assert counted is not None and counted.reviews == 1

    # the independent auditor, from the starting key, reads every key of the chain
    code, audited = await _audit(relay_url, original, reputation)
    assert code == 0, audited["findings"]
    assert audited["scores_checked"] >= 2 and audited["findings"] == []
    # a receipt the new key signed for a task the old key closed is not one the log allows
    first_receipt = _receipt_of(events["receipts"], first, employer_keys.pubkey_hex)
    moved = new.sign_event(3913, "", first_receipt["tags"], first_receipt["created_at"])
    pool = RelayPool()
    try:
        await pool.connect([relay_url])
        assert (await pool.publish(moved))[relay_url] is None
    finally:
        await pool.close()
    code, audited = await _audit(relay_url, original, reputation)
    assert code == 1
    assert [(f["kind"], f["event_ids"]) for f in audited["findings"]] == [
        ("bad_receipt", [moved["id"]])
    ]

    # a rebuild from the relay, starting from the old key, gives back the same reputation
    async with new_database(database_kind, tmp_path / "rebuilt") as fresh:
        summary = await rebuild_cli(relay_url, original, str(tmp_path / "data"), fresh)
        assert summary["operator_keys"] == [original, new.pubkey_hex]
        assert (summary["receipts"], summary["reviews"]) == (4, 3)
        assert [r["event_id"] for r in summary["rejected"]] == [moved["id"]]
        rebuilt = await open_stack(stack_settings(tmp_path, fresh), world=stack.world)
        try:
            assert await reputation_state(rebuilt) == before
        finally:
            await close_stack(rebuilt)


async def test_rebuild_cli_reports_nothing_to_restore_without_reviews(
    tmp_path: Path, relay_url: str
) -> None:
    """An operator with no log at all: the summary still says what was restored."""
    async with new_database("sqlite", tmp_path / "empty") as fresh:
        code, out, err = await taskhold_cli(
            "rebuild", "--relay", relay_url, "--operator", NostrKeys.generate().pubkey_hex,
            "--data-dir", str(tmp_path / "data"), "--database-url", fresh, "--json",
        )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["entries"], summary["receipts"], summary["reviews"]) == (0, 0, 0)
    assert summary["rejected"] == [] and summary["head_rseq"] == -1
