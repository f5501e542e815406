"""The auditor on a real log with deposits: every Deposit* entry reads clean, the embedded
deposit requests check out, and a paid-out deposit with a wrong preimage is caught."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.audit_logs import (
    Draft,
    RealLog,
    forged,
    forged_payment,
    paid_with,
    request_signed_by,
    without_payout_preimage,
)
from support.deposit_flows import deposits_log
from support.task_flows import tag

from taskhold.audit import FindingKind, audit_log
from taskhold.nostr import NostrKeys

DEPOSIT_OPS = {
    "DepositRequested", "DepositLocked", "DepositReturnOrdered", "DepositForfeited",
    "DepositPayoutRequested", "DepositReturned", "DepositPaidOut",
}  # fmt: skip


@pytest.fixture
async def deposit_log(tmp_path: Path, database_url: str) -> AsyncIterator[RealLog]:
    """One deposit returned after a paid task, one forfeited and paid to the employer."""
    async with deposits_log(tmp_path, database_url) as log:
        yield log


async def test_a_log_with_deposits_is_clean(deposit_log: RealLog) -> None:
    ops = {tag(e, "op") for e in deposit_log.entries}
    assert ops >= DEPOSIT_OPS
    result = audit_log(deposit_log.entries, deposit_log.operator)
    assert result.clean, [f.to_json() for f in result.findings]
    paid = deposit_log.entry("DepositPaidOut")
    requested = next(
        e
        for e in deposit_log.entries
        if tag(e, "op") == "DepositRequested" and tag(e, "depositor") == tag(paid, "depositor")
    )
    preimage = bytes.fromhex(tag(paid, "preimage") or "")
    assert hashlib.sha256(preimage).hexdigest() == tag(requested, "deposit_hash")
    # Both payouts (the task's reward, the forfeited deposit) are proven.
    assert (result.summary.payouts, result.summary.payouts_proven) == (2, 2)
    proof = bytes.fromhex(tag(paid, "payout_preimage") or "")
    assert hashlib.sha256(proof).hexdigest() == tag(paid, "payout_hash")


async def test_a_paid_out_deposit_without_its_payout_preimage_is_unproven(
    deposit_log: RealLog,
) -> None:
    gseq = int(tag(deposit_log.entry("DepositPaidOut"), "gseq") or "")

    result = audit_log(deposit_log.resigned(gseq, without_payout_preimage), deposit_log.operator)
    assert {f.kind for f in result.findings} == {FindingKind.UNPROVEN_PAYOUT}
    assert "deposit's payout" in result.findings[0].detail


async def test_a_paid_out_deposit_with_a_wrong_preimage_is_reported(deposit_log: RealLog) -> None:
    paid = deposit_log.entry("DepositPaidOut")
    gseq = int(tag(paid, "gseq") or "")
    wrong = os.urandom(32).hex()

    def reveal_wrong_preimage(draft: Draft) -> None:
        draft.set_tag("preimage", wrong)
        draft.edit_content(lambda body: body["event"].update(preimage_hex=wrong))

    log = deposit_log.resigned(gseq, reveal_wrong_preimage)
    result = audit_log(log, deposit_log.operator)
    assert {f.kind for f in result.findings} == {FindingKind.PREIMAGE_MISMATCH}
    assert "deposit payment hash" in result.findings[0].detail


async def test_a_deposit_entry_without_its_depositor_tag_is_malformed(
    deposit_log: RealLog,
) -> None:
    locked = deposit_log.entry("DepositLocked")
    gseq = int(tag(locked, "gseq") or "")

    def drop_depositor(draft: Draft) -> None:
        draft.tags[:] = [t for t in draft.tags if t[0] != "depositor"]

    result = audit_log(deposit_log.resigned(gseq, drop_depositor), deposit_log.operator)
    assert {f.kind for f in result.findings} == {FindingKind.MALFORMED}
    assert "depositor" in result.findings[0].detail


async def test_a_forfeit_paid_to_a_strangers_invoice_is_unproven(deposit_log: RealLog) -> None:
    """The operator names a key of its own as the forfeit's beneficiary, has it sign a payout
    invoice of the operator's node and records that paid: the employer, whom the worker's
    abandonment forfeits the deposit to, was never paid."""
    stranger, (preimage, paid_hash) = NostrKeys.generate(), forged_payment()

    def to_stranger(draft: Draft) -> None:
        draft.set_tag("beneficiary", stranger.pubkey_hex)
        draft.edit_content(lambda body: body["event"].update(beneficiary=stranger.pubkey_hex))

    entries = forged(
        deposit_log,
        ("DepositForfeited", 0, to_stranger),
        (
            "DepositPayoutRequested",
            0,
            request_signed_by(stranger, lambda content: content.update(payout_hash=paid_hash)),
        ),
        ("DepositPaidOut", 0, paid_with(preimage, paid_hash)),
    )
    result = audit_log(entries, deposit_log.operator)
    assert {f.kind for f in result.findings} == {FindingKind.UNPROVEN_PAYOUT}, [
        f.to_json() for f in result.findings
    ]
    employer = next(t[1] for t in deposit_log.entries[0]["tags"] if t[0] == "p")
    assert employer in result.findings[0].detail
    assert not result.summary.payout_proven
