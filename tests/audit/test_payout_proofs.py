"""The public proof that the payee was paid: each payout the log records paid reveals its
preimage, which must hash to an invoice hash the payee signed, for the amount owed. The
auditor reports anything else as ``unproven_payout``; a log from before the proof audits clean
but says its payouts are not proven, and an operator that writes the new form once cannot go
back to the old one."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from support.audit_logs import (
    Draft,
    RealLog,
    forged_payment,
    paid_with,
    read_real_log,
    request_signed_by,
    without_payout_preimage,
)
from support.split_flows import paid_split
from support.stacks import Stack
from support.task_flows import submitted, tag

from taskhold.audit import AuditResult, FindingKind, audit_log
from taskhold.nostr import NostrKeys


@dataclass
class PaidLog:
    log: RealLog
    worker: NostrKeys


async def _paid_log(stack: Stack, tasks: int = 1) -> PaidLog:
    """``tasks`` tasks approved and paid to one worker."""
    employer, keys = stack.client(), NostrKeys.generate()
    worker = stack.client(keys)
    for n in range(tasks):
        task = await submitted(stack, employer, worker, title=f"paid {n}")
        await employer.approve(task["task_id"])
        await stack.settle_engine()
    log = await read_real_log(stack)
    return PaidLog(log, keys)


def _kinds(result: AuditResult) -> set[FindingKind]:
    return {finding.kind for finding in result.findings}


def _gseq(entry: dict[str, Any]) -> int:
    return int(tag(entry, "gseq") or -1)


def _reveal(preimage: str) -> Callable[[Draft], None]:
    def change(draft: Draft) -> None:
        draft.set_tag("payout_preimage", preimage)
        draft.edit_content(lambda body: body["event"].update(payout_preimage_hex=preimage))

    return change


async def test_a_paid_task_audits_clean_with_its_payout_proven(stack: Stack) -> None:
    paid = await _paid_log(stack)
    result = audit_log(paid.log.entries, paid.log.operator)
    assert result.clean, [f.to_json() for f in result.findings]
    assert (result.summary.payouts, result.summary.payouts_proven) == (1, 1)
    assert result.summary.payout_proven
    released = paid.log.entry("ReleaseCompleted")
    proof = bytes.fromhex(tag(released, "payout_preimage") or "")
    assert hashlib.sha256(proof).hexdigest() == tag(released, "payout_hash")
    request = json.loads(
        json.loads(paid.log.entry("ProofSubmitted")["content"])["request"]["content"]
    )
    assert request["payout_hash"] == tag(released, "payout_hash")


async def test_a_missing_wrong_or_unsigned_payout_preimage_is_unproven(stack: Stack) -> None:
    paid = await _paid_log(stack)
    gseq = _gseq(paid.log.entry("ReleaseCompleted"))
    for change in (
        without_payout_preimage,  # missing
        _reveal(os.urandom(32).hex()),  # not the preimage of the payout hash
        paid_with(*forged_payment()),  # a payment the worker never asked for
    ):
        result = audit_log(paid.log.resigned(gseq, change), paid.log.operator)
        assert _kinds(result) == {FindingKind.UNPROVEN_PAYOUT}, [
            f.to_json() for f in result.findings
        ]
        assert not result.summary.payout_proven


async def test_a_payout_for_less_than_owed_is_unproven(stack: Stack) -> None:
    """The worker signed terms for less than the task's payout_msat (the server refuses such an
    invoice; an operator that took one would pay the worker short)."""
    paid = await _paid_log(stack)
    proof = paid.log.entry("ProofSubmitted")

    def less(content: dict[str, Any]) -> None:
        content["payout_msat"] -= 1_000

    log = paid.log.resigned(_gseq(proof), request_signed_by(paid.worker, less))
    result = audit_log(log, paid.log.operator)
    assert _kinds(result) == {FindingKind.UNPROVEN_PAYOUT}, [f.to_json() for f in result.findings]
    assert "were owed" in result.findings[0].detail


async def test_a_split_share_paid_to_an_unsigned_invoice_is_unproven(stack: Stack) -> None:
    """The worker's share is recorded paid with a preimage of its hash, and the settlement names
    it: consistent, but no invoice the worker signed has that hash."""
    task = await paid_split(stack)
    assert task["state"] == "PAID"
    log = await read_real_log(stack)
    assert audit_log(log.entries, log.operator).summary.payouts_proven == 2
    preimage = os.urandom(32).hex()
    paid = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()

    def share(draft: Draft) -> None:
        draft.set_tag("share_hash", paid)
        draft.set_tag("share_preimage", preimage)

    entries = log.resigned(_gseq(log.entry("SplitSharePaid")), share)
    forged = RealLog(stack, log.operator, entries)
    entries = forged.resigned(
        _gseq(forged.entry("SplitCompleted")), lambda d: d.set_tag("worker_hash", paid)
    )
    result = audit_log(entries, log.operator)
    assert _kinds(result) == {FindingKind.UNPROVEN_PAYOUT}, [f.to_json() for f in result.findings]
    assert "worker share" in result.findings[0].detail


def _old_form(keys: NostrKeys) -> Callable[[Draft], None]:
    def strip(content: dict[str, Any]) -> None:
        del content["payout_hash"], content["payout_msat"]

    return request_signed_by(keys, strip)


async def test_an_old_log_audits_clean_but_its_payout_is_not_proven(stack: Stack) -> None:
    """A log from before the payout proof: the proof request signs no terms, the release reveals
    no payout preimage. Not a fault, but not proven either."""
    paid = await _paid_log(stack)
    log = paid.log.resigned(_gseq(paid.log.entry("ProofSubmitted")), _old_form(paid.worker))
    old = RealLog(stack, paid.log.operator, log)
    log = old.resigned(_gseq(old.entry("ReleaseCompleted")), without_payout_preimage)
    result = audit_log(log, paid.log.operator)
    assert result.clean, [f.to_json() for f in result.findings]
    assert (result.summary.payouts, result.summary.payouts_proven) == (1, 0)
    assert not result.summary.payout_proven


async def test_a_release_in_the_old_form_after_the_new_one_is_unproven(stack: Stack) -> None:
    """Once the log proves payouts, it must prove all later ones: a second task's proof request
    and release written in the old form do not escape the check. A payout from an old request
    (terms read from the invoice the worker signed) still proves with its preimage."""
    paid = await _paid_log(stack, tasks=2)
    second_proof = paid.log.entry("ProofSubmitted", 1)
    log = paid.log.resigned(_gseq(second_proof), _old_form(paid.worker))
    upgraded = audit_log(log, paid.log.operator)
    assert upgraded.clean and upgraded.summary.payout_proven, [
        f.to_json() for f in upgraded.findings
    ]
    old = RealLog(stack, paid.log.operator, log)
    log = old.resigned(_gseq(old.entry("ReleaseCompleted", 1)), without_payout_preimage)
    result = audit_log(log, paid.log.operator)
    assert _kinds(result) == {FindingKind.UNPROVEN_PAYOUT}, [f.to_json() for f in result.findings]
    assert result.findings[0].location.gseq == _gseq(paid.log.entry("ReleaseCompleted", 1))
