"""Reputation assertions (kind 30382): signed by the reputation key, queued only when a score
changed, served by GET /v1/reputation, and reproduced by ``score.recompute`` from the log."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.reputation_flows import paid, refunded_after_dispute
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import tag

from taskhold.keys.signer import load_or_create_key_file
from taskhold.nostr import NostrKeys, verify_event
from taskhold.reputation.metrics import Indexer, IndexerKinds
from taskhold.reputation.score import SCORE_VERSION, RecomputeReport, recompute, score_card
from taskhold.store.models import LogEntryRow, OutboxRow, ReputationAssertionRow, ReviewRow


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


async def _published(stack: Stack) -> tuple[list[dict[str, Any]], list[OutboxRow]]:
    async with stack.services.store.transaction() as tx:
        entries = list(
            (await tx.session.execute(select(LogEntryRow.raw).order_by(LogEntryRow.gseq))).scalars()
        )
        records = list(
            (await tx.session.execute(select(ReviewRow.record).order_by(ReviewRow.rseq))).scalars()
        )
        rows = list(
            (
                await tx.session.execute(
                    select(OutboxRow)
                    .where(OutboxRow.kind == stack.settings.kind_reputation)
                    .order_by(OutboxRow.created_at)
                )
            ).scalars()
        )
    return entries + records, rows


def _recompute(stack: Stack, log: list[dict[str, Any]], assertions: list[Any]) -> RecomputeReport:
    settings = stack.settings
    return recompute(
        [e for e in log if e["kind"] == settings.kind_log_entry],
        assertions,
        review_records=[e for e in log if e["kind"] == settings.kind_review_record],
        operator_pubkey=stack.services.signer.get_public_key(),
        reputation_pubkey=_reputation_keys(stack).pubkey_hex,
        kinds=IndexerKinds(),
        verify=verify_event,
    )


def _reputation_keys(stack: Stack) -> NostrKeys:
    return load_or_create_key_file(stack.settings.data_dir / "keys" / "reputation.key")


async def _history(stack: Stack, arbiter_keys: NostrKeys) -> dict[str, Any]:
    employer, worker, loser = stack.client(), stack.client(), stack.client()
    first = await paid(stack, employer, worker)
    await paid(stack, employer, worker)
    await refunded_after_dispute(stack, employer, loser, stack.client(arbiter_keys))
    await worker.review(first["task_id"], 5, "prompt and fair")
    await employer.review(first["task_id"], 4)
    return {"employer": employer, "worker": worker, "loser": loser}


async def test_assertions_are_signed_by_the_reputation_key_and_served(
    stack: Stack, arbiter_keys: NostrKeys
) -> None:
    people = await _history(stack, arbiter_keys)
    await stack.services.reputation.sync()
    assert (await stack.services.reputation.sync()).published == 0
    log, rows = await _published(stack)
    operator = stack.services.signer.get_public_key()
    reputation_key = _reputation_keys(stack).pubkey_hex
    assert reputation_key != operator
    by_subject = {tag(row.raw, "d"): row.raw for row in rows}
    employer = people["employer"].pubkey_hex
    # employer and worker, the loser's score is 0; a slow write's admission may have synced
    # (and published) before the sync above, so the count of that sync is not the point
    assert set(by_subject) == {employer, people["worker"].pubkey_hex}
    assertion = by_subject[employer]
    assert verify_event(assertion) and assertion["pubkey"] == reputation_key
    assert tag(assertion, "v") == "2"
    assert tag(assertion, "operator") == operator
    assert tag(assertion, "gseq_from") == "0"
    assert tag(assertion, "gseq_to") == str(len([e for e in log if e["kind"] == 3910]) - 1)
    # the worker's review (rseq 0) is the last record that changed the employer's score
    assert tag(assertion, "rseq_to") in ("0", "1")
    assert tag(assertion, "employer_reviews") == "1"
    assert tag(assertion, "employer_completed") == "2"
    assert tag(assertion, "employer_disputes_won") == "1"

    served = await people["worker"].reputation(employer)
    assert served["score"] == int(tag(assertion, "score") or "")
    assert served["published"]["event_id"] == assertion["id"]
    assert served["roles"]["employer"]["completed"] == 2
    assert served["roles"]["employer"]["reviews"] == 1
    assert (served["gseq_from"], served["gseq_to"]) == (0, int(tag(assertion, "gseq_to") or ""))
    assert served["version"] == "2" and served["has_record"]
    stranger = await people["worker"].reputation(NostrKeys.generate().pubkey_hex)
    assert (stranger["score"], stranger["has_record"], stranger["published"]) == (0, False, None)


async def test_an_unchanged_score_is_not_published_again_and_a_changed_one_replaces_it(
    stack: Stack, arbiter_keys: NostrKeys
) -> None:
    people = await _history(stack, arbiter_keys)
    await stack.services.reputation.sync()
    assert (await stack.services.reputation.sync()).published == 0
    _, before = await _published(stack)
    await paid(stack, people["employer"], stack.client())
    assert (await stack.services.reputation.sync()).published >= 1
    _, after = await _published(stack)
    employer = people["employer"].pubkey_hex
    # the outbox's own created_at is the second an event was queued, shared by assertions
    # queued in one second; the assertion's created_at orders a subject's assertions
    mine = sorted(
        (row for row in after if tag(row.raw, "d") == employer),
        key=lambda row: int(row.raw["created_at"]),
    )
    assert len(mine) >= 2
    for old, new in itertools.pairwise(mine):
        assert new.raw["created_at"] > old.raw["created_at"]
        assert old.done and old.last_error == f"not sent: replaced by assertion {new.event_id}"
    assert not mine[-1].done
    assert len(after) > len(before)


async def test_recompute_reproduces_every_published_score(
    stack: Stack, arbiter_keys: NostrKeys
) -> None:
    people = await _history(stack, arbiter_keys)
    await stack.services.reputation.sync()
    await paid(stack, people["worker"], people["employer"])  # roles swapped: more assertions
    await stack.services.reputation.sync()
    log, rows = await _published(stack)
    assertions = [row.raw for row in rows]
    assert len(assertions) >= 4
    report = _recompute(stack, log, assertions)
    assert report.clean, report.mismatches
    assert report.checked == len(assertions)
    shuffled = list(log)
    random.Random(7).shuffle(shuffled)
    assert _recompute(stack, shuffled, assertions).clean


async def test_recompute_detects_a_tampered_score(stack: Stack, arbiter_keys: NostrKeys) -> None:
    people = await _history(stack, arbiter_keys)
    await stack.services.reputation.sync()
    log, rows = await _published(stack)
    employer = people["employer"].pubkey_hex
    genuine = next(row.raw for row in rows if tag(row.raw, "d") == employer)
    score = int(tag(genuine, "score") or "")
    tags = [
        ["score", str(score + 150)]
        if t[0] == "score"
        else ["rank", str((score + 150) // 10)]
        if t[0] == "rank"
        else t
        for t in genuine["tags"]
    ]
    # Signed with the real reputation key: the signature is fine, the number is not.
    forged = _reputation_keys(stack).sign_event(
        genuine["kind"], genuine["content"], tags, genuine["created_at"] + 1
    )
    report = _recompute(stack, log, [genuine, forged])
    assert report.checked == 2
    assert {(m.event_id, m.field) for m in report.mismatches} == {
        (forged["id"], "score"),
        (forged["id"], "rank"),
    }
    wrong = next(m for m in report.mismatches if m.field == "score")
    assert (wrong.published, wrong.recomputed) == (str(score + 150), str(score))

    unsigned = {**genuine, "tags": [*genuine["tags"][:-1], ["worker_tasks", "99"]]}
    report = _recompute(stack, log, [unsigned])
    assert [(m.field, m.recomputed) for m in report.mismatches] == [
        ("sig", "the assertion does not verify")
    ]
    beyond = _reputation_keys(stack).sign_event(
        genuine["kind"],
        "",
        [["gseq_to", "99999"] if t[0] == "gseq_to" else t for t in genuine["tags"]],
        genuine["created_at"] + 2,
    )
    assert [m.field for m in _recompute(stack, log, [beyond]).mismatches] == ["range"]


def test_recompute_imports_none_of_the_writer() -> None:
    code = (
        "import sys, taskhold.reputation.score\n"
        "bad = [m for m in sys.modules if m.startswith(('nostr_sdk', 'taskhold.nostr',"
        " 'taskhold.store', 'taskhold.tasks', 'taskhold.keys', 'sqlalchemy'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_a_restarted_indexer_catches_up_without_republishing(
    tmp_path: Path, database_url: str, arbiter_keys: NostrKeys
) -> None:
    settings = stack_settings(tmp_path, database_url, arbiters=[arbiter_keys.pubkey_hex])
    first = await open_stack(settings)
    try:
        people = await _history(first, arbiter_keys)
        await first.services.reputation.sync()
        before = await people["worker"].reputation(people["employer"].pubkey_hex)
    finally:
        await close_stack(first)
    again = await open_stack(settings, world=first.world)
    try:
        service = again.services.reputation
        assert service.indexer.head_gseq == -1
        result = await service.sync()
        assert result.entries == before["gseq_to"] + 1 and result.reviews == 2
        assert result.published == 0
        after = await again.client().reputation(people["employer"].pubkey_hex)
        assert after == before
    finally:
        await close_stack(again)


async def test_a_restart_after_the_version_bump_republishes_and_both_versions_recompute(
    tmp_path: Path, database_url: str, arbiter_keys: NostrKeys
) -> None:
    """Subjects last published under version 1 (as a taskhold before the bump left them) are
    published again under the new version on the first sync after a restart, and the version 1
    assertions already on relays still recompute by version 1's rules."""
    settings = stack_settings(tmp_path, database_url, arbiters=[arbiter_keys.pubkey_hex])
    first = await open_stack(settings)
    try:
        await _history(first, arbiter_keys)
        await first.services.reputation.sync()
        log, _ = await _published(first)
        old = Indexer(operator_pubkey=None, kinds=IndexerKinds(), version="1")
        old.add_many(log)
        publisher = first.services.reputation.publisher
        assert publisher is not None
        async with first.services.store.transaction() as tx:
            cards = [score_card(old, subject) for subject in old.subjects()]
            queued = await publisher.publish_changed(tx.session, cards)
        assert {tag(event, "v") for event in queued} == {"1"} and len(queued) == 2
    finally:
        await close_stack(first)
    again = await open_stack(settings, world=first.world)
    try:
        result = await again.services.reputation.sync()
        assert result.published == 2
        async with again.services.store.transaction() as tx:
            rows = list((await tx.session.execute(select(ReputationAssertionRow))).scalars())
        assert {row.version for row in rows} == {SCORE_VERSION} and len(rows) == 2
        log, outbox = await _published(again)
        assertions = [row.raw for row in outbox]
        assert {tag(a, "v") for a in assertions} == {"1", SCORE_VERSION}
        report = _recompute(again, log, assertions)
        assert report.clean, report.mismatches
        assert report.checked == len(assertions)
    finally:
        await close_stack(again)


async def test_the_independent_auditor_recomputes_scores_and_catches_a_tampered_one(
    stack: Stack, arbiter_keys: NostrKeys
) -> None:
    from taskhold.audit.findings import FindingKind
    from taskhold.audit.scores import score_findings

    await _history(stack, arbiter_keys)
    await stack.services.reputation.sync()
    log, rows = await _published(stack)
    entries = [e for e in log if e["kind"] == stack.settings.kind_log_entry]
    records = [e for e in log if e["kind"] == stack.settings.kind_review_record]
    assertions = [row.raw for row in rows if not row.done or row.last_error is None]
    operator = stack.services.signer.get_public_key()
    reputation_keys = _reputation_keys(stack)

    checked, findings = score_findings(
        entries, assertions, records, operator=operator, reputation=reputation_keys.pubkey_hex
    )
    assert checked == len(assertions) >= 2
    assert findings == []

    forged = dict(assertions[0])
    tags = [list(t) for t in forged["tags"]]
    for pair in tags:
        if pair[0] == "score":
            pair[1] = str(int(pair[1]) + 100)
    resigned = reputation_keys.sign_event(
        forged["kind"], forged["content"], tags, forged["created_at"]
    )
    checked, findings = score_findings(
        entries,
        [resigned, *assertions[1:]],
        records,
        operator=operator,
        reputation=reputation_keys.pubkey_hex,
    )
    assert [f.kind for f in findings] == [FindingKind.SCORE_MISMATCH]
    assert "score" in findings[0].detail
