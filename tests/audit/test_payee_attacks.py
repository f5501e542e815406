"""The payee of a payout is the one the log's own chain names, not the one the payout entry
says: an operator that pays an invoice of its own, signed by a key of its own, and names that
key in the entry's ``p`` tags proves nothing. Only the payee's latest terms count, a settlement
that leaves the payee unpaid is an unproven payout, and one payment proves one payout."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from support.audit_logs import (
    Draft,
    RealLog,
    forged,
    forged_payment,
    paid_with,
    read_real_log,
    request_signed_by,
)
from support.split_flows import paid_split
from support.stacks import Stack
from support.task_flows import submitted, tag

from taskhold.audit import AuditResult, FindingKind, audit_log
from taskhold.nostr import NostrKeys


def _kinds(result: AuditResult) -> set[FindingKind]:
    return {finding.kind for finding in result.findings}


def _findings(result: AuditResult) -> list[dict[str, Any]]:
    return [finding.to_json() for finding in result.findings]


async def _paid_after_a_new_invoice(stack: Stack) -> tuple[RealLog, str]:
    """A task whose first payout failed; the worker sent a new invoice and was paid to it. The
    log and the hash of the worker's first invoice."""
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    stack.world.network.fail_next_payments(1)
    await employer.approve(task["task_id"])
    await stack.run_pass()
    fresh = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.update_payout_invoice(task["task_id"], fresh)
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()
    log = await read_real_log(stack)
    proof = json.loads(json.loads(log.entry("ProofSubmitted")["content"])["request"]["content"])
    return log, proof["payout_hash"]


def _paid_to(
    preimage: str, paid_hash: str, participants: list[str] | None = None
) -> Callable[[Draft], None]:
    """The release names ``paid_hash`` paid with ``preimage`` (and, if given, other p tags)."""

    paid = paid_with(preimage, paid_hash)

    def change(draft: Draft) -> None:
        paid(draft)
        if participants is not None:
            draft.tags = [t for t in draft.tags if t[0] != "p"] + [["p", p] for p in participants]

    return change


def _p_tags(entry: dict[str, Any]) -> list[str]:
    return [t[1] for t in entry["tags"] if t[0] == "p"]


def _signs(paid_hash: str) -> Callable[[dict[str, Any]], None]:
    return lambda content: content.update(payout_hash=paid_hash)


async def test_a_reward_paid_to_a_strangers_invoice_is_unproven(stack: Stack) -> None:
    """The operator's own key S signs a payout invoice of the operator's node in the worker's
    place, and the release names S as the worker: the worker the claim made was never paid."""
    log, _ = await _paid_after_a_new_invoice(stack)
    assert audit_log(log.entries, log.operator).summary.payout_proven
    stranger, (preimage, paid_hash) = NostrKeys.generate(), forged_payment()
    employer, worker = _p_tags(log.entry("ReleaseCompleted"))[:2]
    entries = forged(
        log,
        ("PayoutRequestUpdated", 0, request_signed_by(stranger, _signs(paid_hash))),
        (
            "ReleaseCompleted",
            0,
            _paid_to(preimage, paid_hash, [employer, stranger.pubkey_hex, worker]),
        ),
    )
    result = audit_log(entries, log.operator)
    assert _kinds(result) == {FindingKind.UNPROVEN_PAYOUT}, _findings(result)
    assert worker in result.findings[0].detail
    assert not result.summary.payout_proven


async def test_a_payout_to_an_invoice_the_worker_replaced_is_unproven(stack: Stack) -> None:
    """The worker sent a new invoice; paying the one it replaced proves nothing."""
    log, first_hash = await _paid_after_a_new_invoice(stack)
    record = stack.world.network._invoices[
        (stack.world.worker.pubkey_hex, bytes.fromhex(first_hash))
    ]
    assert record.preimage is not None
    entries = forged(log, ("ReleaseCompleted", 0, _paid_to(record.preimage.hex(), first_hash)))
    result = audit_log(entries, log.operator)
    assert _kinds(result) == {FindingKind.UNPROVEN_PAYOUT}, _findings(result)
    assert "latest" in result.findings[0].detail


async def test_an_employer_share_paid_to_a_strangers_invoice_is_unproven(stack: Stack) -> None:
    await paid_split(stack)
    log = await read_real_log(stack)
    assert audit_log(log.entries, log.operator).summary.payout_proven
    stranger, (preimage, paid_hash) = NostrKeys.generate(), forged_payment()
    share = next(
        n
        for n, entry in enumerate(e for e in log.entries if tag(e, "op") == "SplitSharePaid")
        if tag(entry, "share") == "employer"
    )
    worker = _p_tags(log.entry("SplitSharePaid", share))[1]

    def employer_share(draft: Draft) -> None:
        draft.set_tag("share_hash", paid_hash)
        draft.set_tag("share_preimage", preimage)
        draft.tags = [t for t in draft.tags if t[0] != "p"] + [
            ["p", stranger.pubkey_hex],
            ["p", worker],
        ]

    entries = forged(
        log,
        ("RefundRequestUpdated", 0, request_signed_by(stranger, _signs(paid_hash))),
        ("SplitSharePaid", share, employer_share),
        ("SplitCompleted", 0, lambda draft: draft.set_tag("employer_hash", paid_hash)),
    )
    result = audit_log(entries, log.operator)
    assert _kinds(result) == {FindingKind.UNPROVEN_PAYOUT}, _findings(result)
    assert "employer share" in result.findings[0].detail
    assert not result.summary.payout_proven


async def test_a_hold_settled_with_no_payout_after_it_is_unproven(stack: Stack) -> None:
    """The operator settles the hold under the declared fallback (it has the money) and the
    log never records the worker paid."""
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    log = await read_real_log(stack)

    def settled_only(draft: Draft) -> None:
        draft.set_tag("op", "HoldSettledUnderLivePayout")
        draft.tags = [t for t in draft.tags if t[0] not in ("payout_preimage", "payout_fee_msat")]

        def event(body: dict[str, Any]) -> None:
            event = body["event"]
            for name in ("payout_preimage_hex", "payout_fee_msat"):
                event.pop(name, None)
            event.update(type="HoldSettledUnderLivePayout", blocks_left=10)

        draft.edit_content(event)

    result = audit_log(forged(log, ("ReleaseCompleted", 0, settled_only)), log.operator)
    assert _kinds(result) == {FindingKind.UNPROVEN_PAYOUT}, _findings(result)
    assert "HoldSettledUnderLivePayout" in result.findings[0].detail
    assert (result.summary.payouts, result.summary.payouts_proven) == (1, 0)


async def test_one_payment_proving_two_payouts_is_unproven(stack: Stack) -> None:
    """The worker is paid once; the second task's release reveals the first one's payment and
    the worker's terms for it name the same hash."""
    employer, keys = stack.client(), NostrKeys.generate()
    worker = stack.client(keys)
    for n in range(2):
        task = await submitted(stack, employer, worker, title=f"paid {n}")
        await employer.approve(task["task_id"])
        await stack.settle_engine()
    log = await read_real_log(stack)
    first = log.entry("ReleaseCompleted")
    paid_hash, preimage = tag(first, "payout_hash") or "", tag(first, "payout_preimage") or ""
    entries = forged(
        log,
        ("ProofSubmitted", 1, request_signed_by(keys, _signs(paid_hash))),
        ("ReleaseCompleted", 1, _paid_to(preimage, paid_hash)),
    )
    result = audit_log(entries, log.operator)
    assert _kinds(result) == {FindingKind.UNPROVEN_PAYOUT}, _findings(result)
    assert "already proven" in result.findings[0].detail
    assert result.findings[0].location.gseq == int(
        tag(log.entry("ReleaseCompleted", 1), "gseq") or ""
    )
