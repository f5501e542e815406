"""``taskhold rebuild`` restores review receipts (kind 3913) and review records (kind 3914) from
the relays with the log: the same receipts, reviews and reputation as before, receipts that still
work for a review; forged or misplaced ones are reported and not written."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from support.rebuild_support import rebuild_cli, reputation_state, signed_events
from support.relays import drain
from support.reputation_flows import paid, refunded_after_dispute
from support.stacks import Stack, close_stack, new_database, open_stack, stack_settings
from support.task_flows import funded, projection, tag

from taskhold.client import TaskholdClient
from taskhold.keys.signer import load_or_create_key_file
from taskhold.nostr import NostrKeys
from taskhold.nostr.embedded import EmbeddedRelay
from taskhold.nostr.entries import canonical_json
from taskhold.nostr.relays import RelayPool
from taskhold.rebuild.replay import LogRejected, rebuild_from_entries
from taskhold.store.models import LogEntryRow, ReceiptRow, ReviewRow, TaskRow


@pytest.fixture
async def relay_url(tmp_path: Path) -> AsyncIterator[str]:
    relay = EmbeddedRelay(tmp_path / "relay")
    url = await relay.start()
    try:
        yield url
    finally:
        await relay.stop()


async def _deployment(stack: Stack) -> dict[str, Any]:
    """Two paid tasks, one refunded after a dispute, one refunded before anyone claimed it
    (no receipts), and three reviews; the second paid task's worker has not reviewed yet."""
    arbiter = stack.client()
    stack.services.settings.arbiters = [arbiter.pubkey_hex]
    later_keys = NostrKeys.generate()
    employer, worker, later = stack.client(), stack.client(), stack.client(later_keys)
    first = await paid(stack, employer, worker)
    second = await paid(stack, employer, later)
    disputed = await refunded_after_dispute(stack, employer, worker, arbiter)
    unclaimed = await funded(stack, employer)
    await employer.cancel(unclaimed["task_id"], "no longer needed")
    await stack.settle_engine()
    await worker.review(first["task_id"], 5, "prompt and fair")
    await employer.review(first["task_id"], 4, "good haiku")
    await employer.review(disputed["task_id"], 1, "six syllables")
    return {
        "first": first["task_id"],
        "second": second["task_id"],
        "disputed": disputed["task_id"],
        "unclaimed": unclaimed["task_id"],
        "later": later_keys,
    }


def _final_entry(entries: list[dict[str, Any]], task_id: str) -> dict[str, Any]:
    return next(
        e
        for e in entries
        if tag(e, "task") == task_id and tag(e, "op") in ("ReleaseCompleted", "RefundCompleted")
    )


def _operator(stack: Stack) -> NostrKeys:
    """The operator's key pair from the file key store, to sign what taskhold never would."""
    keys = load_or_create_key_file(stack.settings.data_dir / "keys" / "operator.key")
    assert keys.pubkey_hex == stack.services.signer.get_public_key()
    return keys


def _tampered_record(operator: NostrKeys, record: dict[str, Any]) -> dict[str, Any]:
    """The record re-signed by the operator with the reviewer's rating changed: the outer
    signature is fine, the embedded review no longer verifies."""
    review = json.loads(record["content"])
    body = json.loads(review["content"])
    review["content"] = canonical_json({**body, "rating": 1 if body["rating"] != 1 else 5})
    return operator.sign_event(
        record["kind"], canonical_json(review), record["tags"], record["created_at"] + 1
    )


def _misplaced_receipt(
    operator: NostrKeys, receipt: dict[str, Any], other_final: dict[str, Any]
) -> dict[str, Any]:
    """An operator-signed receipt of one task that names another task's final entry."""
    tags = [["e", other_final["id"]] if t[0] == "e" else t for t in receipt["tags"]]
    return operator.sign_event(receipt["kind"], "", tags, receipt["created_at"])


def _renumbered(operator: NostrKeys, record: dict[str, Any], rseq: int) -> dict[str, Any]:
    tags = [["rseq", str(rseq)] if t[0] == "rseq" else t for t in record["tags"]]
    return operator.sign_event(record["kind"], record["content"], tags, record["created_at"])


async def test_rebuild_from_relays_restores_receipts_reviews_and_reputation(
    tmp_path: Path, database_url: str, database_kind: str, relay_url: str
) -> None:
    settings = stack_settings(tmp_path, database_url, relays=[relay_url])
    original = await open_stack(settings)
    try:
        ids = await _deployment(original)
        assert original.services.publisher is not None
        await drain(original.services.publisher)
        before = await reputation_state(original)
        before_projection = await projection(original)
        events = await signed_events(original)
        operator = original.services.signer.get_public_key()
        second_receipts = (await original.client().receipts(ids["second"]))["receipts"]
        keys = _operator(original)
        tampered = _tampered_record(keys, events["records"][1])
        genuine = next(r for r in events["receipts"] if tag(r, "task") == ids["second"])
        misplaced = _misplaced_receipt(keys, genuine, _final_entry(events["entries"], ids["first"]))
    finally:
        await close_stack(original)
    assert len(before["receipts"]) == 6 and len(before["reviews"]) == 3
    assert {tag(r, "task") for r in events["receipts"]} == {
        ids["first"], ids["second"], ids["disputed"]
    }  # fmt: skip
    pool = RelayPool()
    try:
        await pool.connect([relay_url])
        for event in (tampered, misplaced):
            assert (await pool.publish(event))[relay_url] is None
    finally:
        await pool.close()

    async with new_database(database_kind, tmp_path / "rebuilt") as fresh:
        summary = await rebuild_cli(relay_url, operator, str(tmp_path / "data"), fresh)
        assert (summary["receipts"], summary["reviews"], summary["head_rseq"]) == (6, 3, 2)
        assert summary["missing_receipts"] == [] and summary["operator_keys"] == [operator]
        rejected = {r["event_id"]: r for r in summary["rejected"]}
        assert set(rejected) == {tampered["id"], misplaced["id"]}
        assert rejected[tampered["id"]]["kind"] == 3914
        assert "does not verify" in rejected[tampered["id"]]["reason"]
        assert rejected[misplaced["id"]]["kind"] == 3913
        assert "does not name the task's final entry" in rejected[misplaced["id"]]["reason"]

        rebuilt = await open_stack(stack_settings(tmp_path, fresh), world=original.world)
        try:
            assert await reputation_state(rebuilt) == before
            assert await projection(rebuilt) == before_projection
            assert before["cards"] and all(c["has_record"] for c in before["cards"].values())
            served = (await rebuilt.client().receipts(ids["second"]))["receipts"]
            assert served == second_receipts
            # the receipt issued before the rebuild still works, and takes the next rseq
            later: TaskholdClient = rebuilt.client(ids["later"])
            answer = await later.review(ids["second"], 5, "paid on time")
            assert answer["review"]["rseq"] == 3
            employer = (await later.get_task(ids["second"]))["employer_pubkey"]
            card = await later.reputation(employer)
            assert card["rseq_to"] == 3 and card["roles"]["employer"]["reviews"] == 2
            assert before["cards"][employer]["roles"]["employer"]["reviews"] == 1
        finally:
            await close_stack(rebuilt)


async def test_rebuild_reports_forged_records_and_refuses_a_hole_in_rseq(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    original = await open_stack(stack_settings(tmp_path, database_url))
    try:
        ids = await _deployment(original)
        events = await signed_events(original)
        keys = _operator(original)
        operator = keys.pubkey_hex
        before = await reputation_state(original)
    finally:
        await close_stack(original)
    entries, receipts, records = events["entries"], events["receipts"], events["records"]
    stranger = NostrKeys.generate()
    foreign = stranger.sign_event(
        records[0]["kind"], records[0]["content"], records[0]["tags"], records[0]["created_at"]
    )
    altered = {**records[2], "content": records[2]["content"].replace("six", "five")}
    assert altered["content"] != records[2]["content"]
    stray_tags = [["task", ids["unclaimed"]], *receipts[0]["tags"][1:]]
    stray = keys.sign_event(3913, "", stray_tags, receipts[0]["created_at"])

    async with new_database(database_kind, tmp_path / "rebuilt") as fresh:
        rebuilt = await open_stack(stack_settings(tmp_path / "other", fresh))
        try:
            report = await rebuild_from_entries(
                rebuilt.services.store,
                reversed(entries),
                operator_pubkey=operator,
                receipts=[*receipts, stray, receipts[1]],
                review_records=[foreign, altered, *reversed(records)],
            )
            assert (report.receipts, report.reviews, report.head_rseq) == (6, 3, 2)
            reasons = {r.event_id: r.reason for r in report.rejected}
            assert set(reasons) == {foreign["id"], altered["id"], stray["id"]}
            assert altered["id"] == records[2]["id"]  # same id, other body: both looked at
            assert "no operator key" in reasons[foreign["id"]]
            assert "does not verify" in reasons[altered["id"]]
            assert "did not close PAID or REFUNDED with a worker" in reasons[stray["id"]]
            state = await reputation_state(rebuilt)
            assert (state["receipts"], state["reviews"]) == (before["receipts"], before["reviews"])
        finally:
            await close_stack(rebuilt)

    # a record missing, or only forged, in the middle: nothing is written, the log included
    async with new_database(database_kind, tmp_path / "holed") as fresh:
        holed = await open_stack(stack_settings(tmp_path / "holed-data", fresh))
        try:
            with pytest.raises(LogRejected, match=r"rseq 1 is missing \(no relay returned it"):
                await rebuild_from_entries(
                    holed.services.store,
                    entries,
                    operator_pubkey=operator,
                    receipts=receipts,
                    review_records=[records[0], records[2]],
                )
            with pytest.raises(LogRejected, match=r"rseq 2 is missing \(the review or its"):
                await rebuild_from_entries(
                    holed.services.store,
                    entries,
                    operator_pubkey=operator,
                    receipts=receipts,
                    review_records=[
                        *records[:2],
                        _tampered_record(keys, records[2]),
                        _renumbered(keys, records[2], 3),
                    ],
                )
            async with holed.services.store.transaction() as tx:
                for table in (TaskRow, LogEntryRow, ReceiptRow, ReviewRow):
                    count = select(func.count()).select_from(table)
                    assert (await tx.session.execute(count)).scalar_one() == 0, table
        finally:
            await close_stack(holed)
