"""The auditor's checks on real logs: tasks run through taskhold on every path, the signed
entries read back, then withheld, forged, tampered or re-signed the way a relay or a dishonest
operator could — and each fault is reported as what it is, and only that."""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

import pytest
from support.audit_logs import Draft, RealLog, build_real_log, canonical_json, tag
from support.stacks import Stack

from taskhold.audit import AuditResult, FindingKind, audit_log
from taskhold.nostr import NostrKeys

DOCUMENTED_OPS = {
    "TaskCreated", "FundingRequested", "FundingAccepted", "FundingExpired", "TaskClaimed",
    "ProofSubmitted", "SubmissionApproved", "ReviewWindowElapsed", "SubmissionRejected",
    "DisputeOpened", "DisputeResolved", "RefundOrdered", "TaskCancelled", "PayoutFailed",
    "PayoutRequestUpdated", "ReleaseCompleted", "RefundCompleted",
}  # fmt: skip


@pytest.fixture
async def real_log(stack: Stack) -> RealLog:
    return await build_real_log(stack)


def audit(log: RealLog, entries: list[dict[str, Any]], **kwargs: Any) -> AuditResult:
    return audit_log(entries, log.operator, **kwargs)


def kinds(result: AuditResult) -> set[FindingKind]:
    return {finding.kind for finding in result.findings}


def only(result: AuditResult, kind: FindingKind) -> list[Any]:
    assert kinds(result) == {kind}, [f.to_json() for f in result.findings]
    return list(result.findings)


async def test_a_real_log_over_every_path_is_clean(real_log: RealLog) -> None:
    entries = real_log.entries
    assert {tag(e, "op") for e in entries} == DOCUMENTED_OPS
    result = audit(real_log, entries)
    assert result.clean, [f.to_json() for f in result.findings]
    summary = result.summary
    assert summary.entries == len(entries)
    assert summary.head_gseq == len(entries) - 1
    assert summary.head_id == entries[-1]["id"]
    assert summary.tasks == len({tag(e, "task") for e in entries})
    assert summary.tasks_by_final_op == {
        "ReleaseCompleted": 4,  # approved, paid after a retry, dispute won, review window
        "RefundCompleted": 2,  # dispute lost, cancelled after funding
        "TaskCancelled": 1,
        "FundingExpired": 1,
    }


async def test_order_and_copies_from_several_relays_do_not_matter(real_log: RealLog) -> None:
    shuffled = real_log.entries * 2
    random.Random(7).shuffle(shuffled)
    assert audit(real_log, shuffled).clean


async def test_a_dropped_entry_is_a_gap_at_its_gseq(real_log: RealLog) -> None:
    dropped = real_log.entry("ProofSubmitted")
    gseq = int(tag(dropped, "gseq") or "")
    result = audit(real_log, [e for e in real_log.entries if e is not dropped])

    gaps = [f for f in result.findings if f.kind is FindingKind.GAP]
    assert [(f.location.gseq, f.location.gseq_last) for f in gaps] == [(gseq, gseq)]
    # The task's own chain shows the hole too, and the payout the dropped proof signed the
    # terms of is no longer proven; nothing else is wrong.
    assert kinds(result) == {FindingKind.GAP, FindingKind.SEQ_GAP, FindingKind.UNPROVEN_PAYOUT}


async def test_a_withheld_tail_is_a_gap_when_a_checkpoint_names_the_head(
    real_log: RealLog,
) -> None:
    head = real_log.entries[-1]
    gseq = len(real_log.entries) - 1
    tags = [["d", "taskhold-log-head"], ["gseq", str(gseq)], ["head", head["id"]],
            ["count", str(gseq + 1)]]  # fmt: skip
    checkpoint = real_log.stack.services.signer.sign_event(30078, "", tags, head["created_at"])

    assert audit(real_log, real_log.entries, checkpoints=[checkpoint]).clean
    result = audit(real_log, real_log.entries[:-3], checkpoints=[checkpoint])
    (gap,) = only(result, FindingKind.GAP)
    assert (gap.location.gseq, gap.location.gseq_last) == (gseq - 2, gseq)


async def test_a_checkpoint_naming_another_head_is_reported(real_log: RealLog) -> None:
    gseq = len(real_log.entries) - 1
    other = real_log.entries[0]["id"]
    tags = [["d", "taskhold-log-head"], ["gseq", str(gseq)], ["head", other],
            ["count", str(gseq + 1)]]  # fmt: skip
    checkpoint = real_log.stack.services.signer.sign_event(30078, "", tags, 1)
    (finding,) = only(
        audit(real_log, real_log.entries, checkpoints=[checkpoint]),
        FindingKind.CHECKPOINT_MISMATCH,
    )
    assert other in finding.event_ids


async def test_a_second_signed_entry_for_a_used_gseq_is_equivocation(real_log: RealLog) -> None:
    original = real_log.entry("FundingAccepted")
    gseq = int(tag(original, "gseq") or "")
    # One forgery whose id sorts before the original's and one after: the report must not
    # depend on which twin the auditor happens to meet first.
    # (When the original's id is extreme, one side may take very long to hit: then the one
    # forgery found is still checked in both input orders below.)
    forgeries: dict[bool, dict[str, Any]] = {}
    for n in range(4096):
        forged = real_log.sign(
            original["content"],
            [["state", f"{n:064x}"] if t[0] == "state" else t for t in original["tags"]],
            original["created_at"],
        )
        forgeries.setdefault(forged["id"] < original["id"], forged)
        if len(forgeries) == 2:
            break
    assert forgeries

    for forged in forgeries.values():
        for events in ([*real_log.entries, forged], [forged, *real_log.entries]):
            result = audit(real_log, events)
            (finding,) = only(result, FindingKind.EQUIVOCATION)
            assert finding.location.gseq == gseq
            assert set(finding.event_ids) == {original["id"], forged["id"]}


async def test_a_flipped_content_byte_is_a_bad_id(real_log: RealLog) -> None:
    original = real_log.entry("TaskClaimed")
    tampered = {
        **original,
        "content": original["content"].replace('"TaskClaimed"', '"TaskClaimeD"'),
    }
    assert tampered["content"] != original["content"]

    # Served next to the genuine copy (another relay has it): only the altered copy is wrong.
    (finding,) = only(audit(real_log, [*real_log.entries, tampered]), FindingKind.BAD_ID)
    assert finding.event_ids == (original["id"],)
    assert finding.location.gseq == int(tag(original, "gseq") or "")
    # Served alone, the entry is also missing from the log, and with it the worker the claim
    # made: nothing left in the log says the task's payout went to its worker.
    alone = [tampered if e is original else e for e in real_log.entries]
    assert kinds(audit(real_log, alone)) == {FindingKind.BAD_ID, FindingKind.GAP,
                                             FindingKind.SEQ_GAP,
                                             FindingKind.UNPROVEN_PAYOUT}  # fmt: skip


async def test_a_bad_signature_and_a_foreign_signer_are_reported(real_log: RealLog) -> None:
    original = real_log.entries[3]
    sig = original["sig"]
    flipped = {**original, "sig": sig[:-1] + ("0" if sig[-1] != "0" else "1")}
    foreign = NostrKeys.generate().sign_event(
        3910, original["content"], original["tags"], original["created_at"]
    )
    result = audit(real_log, [*real_log.entries, flipped, foreign])
    assert kinds(result) == {FindingKind.BAD_SIGNATURE, FindingKind.WRONG_AUTHOR}
    assert (
        audit(real_log, [*real_log.entries, {"id": "x"}]).findings[0].kind is FindingKind.MALFORMED
    )


async def test_created_at_going_backwards_is_reported(real_log: RealLog) -> None:
    gseq = 10
    earlier = real_log.entries[gseq - 1]["created_at"] - 60

    def backdate(draft: Draft) -> None:
        draft.created_at = earlier

    (finding,) = only(
        audit(real_log, real_log.resigned(gseq, backdate)), FindingKind.TIME_WENT_BACKWARDS
    )
    assert finding.location.gseq == gseq


def _swap_e_author(draft: Draft) -> None:
    e_tag = next(t for t in draft.tags if t[0] == "e")
    e_tag[3] = NostrKeys.generate().pubkey_hex


def _empty_e_tag(draft: Draft) -> None:
    """The e tag stripped to its name: a request is embedded, and no tag value names it."""
    e_tag = next(t for t in draft.tags if t[0] == "e")
    del e_tag[1:]


def _alter_request_body(draft: Draft) -> None:
    def edit(body: dict[str, Any]) -> None:
        body["request"]["content"] = body["request"]["content"].replace("five", "six")

    draft.edit_content(edit)


@pytest.mark.parametrize(
    ("op", "tamper"),
    [
        pytest.param("DisputeOpened", _alter_request_body, id="request-body-altered"),
        pytest.param("SubmissionApproved", _swap_e_author, id="e-tag-names-another-author"),
    ],
)
async def test_a_tampered_embedded_request_is_reported(
    real_log: RealLog, op: str, tamper: Any
) -> None:
    gseq = int(tag(real_log.entry(op), "gseq") or "")
    (finding,) = only(
        audit(real_log, real_log.resigned(gseq, tamper)), FindingKind.BAD_EMBEDDED_REQUEST
    )
    assert finding.location.gseq == gseq


async def test_an_e_tag_without_a_value_beside_a_request_is_reported_not_a_crash(
    real_log: RealLog,
) -> None:
    """A dishonest operator's entry embeds a valid request but strips its e tag to the name:
    the auditor reports the entry instead of failing on the missing value."""
    gseq = int(tag(real_log.entry("SubmissionApproved"), "gseq") or "")
    result = audit(real_log, real_log.resigned(gseq, _empty_e_tag))
    assert [(f.kind, f.detail) for f in result.findings] == [
        (FindingKind.MALFORMED, "tag 'e' has no value"),
        (FindingKind.BAD_EMBEDDED_REQUEST, "request embedded without an e tag"),
    ]
    assert result.findings[1].location.gseq == gseq


async def test_a_request_embedded_in_the_wrong_entry_is_reported(real_log: RealLog) -> None:
    """A genuine, valid request from another task, with the e tag made to match it."""
    approve = real_log.entry("SubmissionApproved", 1)
    other_request = _embedded(real_log.entry("SubmissionApproved", 0))
    gseq = int(tag(approve, "gseq") or "")

    def replace(draft: Draft) -> None:
        draft.edit_content(lambda body: body.update(request=other_request))
        e_tag = next(t for t in draft.tags if t[0] == "e")
        e_tag[1], e_tag[3] = other_request["id"], other_request["pubkey"]

    (finding,) = only(
        audit(real_log, real_log.resigned(gseq, replace)), FindingKind.BAD_EMBEDDED_REQUEST
    )
    assert "another task" in finding.detail


async def test_a_paid_task_with_a_wrong_preimage_is_reported(real_log: RealLog) -> None:
    release = real_log.entry("ReleaseCompleted")
    gseq = int(tag(release, "gseq") or "")
    wrong = os.urandom(32).hex()

    def reveal_wrong_preimage(draft: Draft) -> None:
        draft.set_tag("preimage", wrong)
        draft.edit_content(lambda body: body["event"].update(preimage_hex=wrong))

    log = real_log.resigned(gseq, reveal_wrong_preimage)
    (finding,) = only(audit(real_log, log), FindingKind.PREIMAGE_MISMATCH)
    assert (finding.location.gseq, finding.location.task) == (gseq, tag(release, "task"))
    funding = next(
        e for e in real_log.entries
        if tag(e, "op") == "FundingRequested" and tag(e, "task") == tag(release, "task")
    )  # fmt: skip
    correct = tag(release, "preimage") or ""
    assert hashlib.sha256(bytes.fromhex(correct)).hexdigest() == tag(funding, "payment_hash")


async def test_broken_links_are_reported_per_chain(real_log: RealLog) -> None:
    claimed = real_log.entry("TaskClaimed")
    gseq = int(tag(claimed, "gseq") or "")
    unrelated = real_log.entries[0]["id"]

    def wrong_prev(draft: Draft) -> None:
        draft.set_tag("prev", unrelated)

    def wrong_gprev(draft: Draft) -> None:
        draft.set_tag("gprev", unrelated)

    only(audit(real_log, real_log.resigned(gseq, wrong_prev)), FindingKind.BROKEN_PREV)
    only(audit(real_log, real_log.resigned(gseq, wrong_gprev)), FindingKind.BROKEN_GPREV)


async def test_an_entry_skipping_a_seq_is_a_seq_gap(real_log: RealLog) -> None:
    """The claim signed as seq n+1: the task's chain jumps, then seq n+1 is signed twice (the
    proof after it keeps its number). The chain goes on from the proof, one of the twins."""
    claimed = real_log.entry("TaskClaimed")
    gseq, seq = int(tag(claimed, "gseq") or ""), int(tag(claimed, "seq") or "")

    def skip(draft: Draft) -> None:
        draft.set_tag("seq", str(seq + 1))

    result = audit(real_log, real_log.resigned(gseq, skip))
    found = {(f.kind, f.location.seq) for f in result.findings}
    assert found == {
        (FindingKind.SEQ_GAP, seq + 1),
        (FindingKind.EQUIVOCATION, seq + 1),
    }
    assert all(f.location.task == tag(claimed, "task") for f in result.findings)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d.tags.remove(["o", _value(d, "o")]), id="no-o-tag"),
        pytest.param(lambda d: d.tags.append(["preimage", "11" * 32]), id="preimage-too-early"),
        pytest.param(lambda d: d.set_tag("a", "30402:" + "0" * 64 + ":x"), id="foreign-listing"),
        pytest.param(lambda d: setattr(d, "content", d.content + " "), id="content-not-canonical"),
        pytest.param(lambda d: d.set_tag("op", "Teleported"), id="unknown-op"),
    ],
)
async def test_ill_formed_entries_are_malformed(real_log: RealLog, change: Any) -> None:
    gseq = int(tag(real_log.entry("FundingAccepted"), "gseq") or "")
    result = audit(real_log, real_log.resigned(gseq, change))
    assert FindingKind.MALFORMED in kinds(result), [f.to_json() for f in result.findings]


async def test_an_operator_deletion_request_is_reported(real_log: RealLog) -> None:
    from taskhold.keys.signer import load_or_create_key_file

    keys = load_or_create_key_file(real_log.stack.settings.data_dir / "keys" / "operator.key")
    assert keys.pubkey_hex == real_log.operator
    target = real_log.entries[5]
    deletion = keys.sign_event(5, "", [["e", target["id"]], ["k", "3910"]], 1)
    (finding,) = only(
        audit(real_log, real_log.entries, deletions=[deletion]), FindingKind.OPERATOR_DELETION
    )
    assert finding.location.gseq == 5
    assert target["id"] in finding.event_ids


def _value(draft: Draft, name: str) -> str:
    return next(t[1] for t in draft.tags if t[0] == name)


def _embedded(event: dict[str, Any]) -> dict[str, Any]:
    import json

    request: dict[str, Any] = json.loads(event["content"])["request"]
    assert canonical_json(json.loads(event["content"])) == event["content"]
    return request
