"""Swap reports in the public log: a task whose parties reported their swaps (the worker's
claim after the task was PAID) audits clean and still ends on its release; an operator that
embeds a report signed by the wrong party, or forges its txids, is caught."""

from __future__ import annotations

from typing import Any

from support.audit_logs import Draft, RealLog, read_real_log, request_signed_by
from support.stacks import Stack
from support.task_flows import submitted, tag

from taskhold.audit import FindingKind, audit_log
from taskhold.nostr import NostrKeys

API = "https://boltz.example/v2"
LOCKUP, CLAIM, REFUND = "a1" * 32, "c1" * 32, "e1" * 32


async def _reported(stack: Stack) -> RealLog:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    task_id = task["task_id"]
    await employer.report_swap(
        task_id, role="funding", swap_id="f1", swap_api=API, lockup_txid=LOCKUP
    )
    await employer.approve(task_id)
    await stack.settle_engine()
    await worker.report_swap(task_id, role="payout", swap_id="p1", swap_api=API, claim_txid=CLAIM)
    assert (await employer.get_task(task_id))["state"] == "PAID"
    return await read_real_log(stack)


def _gseq(entry: dict[str, Any]) -> int:
    return int(tag(entry, "gseq") or "")


async def test_swap_reports_audit_clean_and_the_task_still_ends_released(stack: Stack) -> None:
    log = await _reported(stack)
    ops = [tag(entry, "op") for entry in log.entries]
    assert ops.count("SwapReported") == 2 and ops[-1] == "SwapReported"
    result = audit_log(log.entries, log.operator)
    assert result.clean, [f.to_json() for f in result.findings]
    assert result.summary.tasks_by_final_op == {"ReleaseCompleted": 1}


async def test_a_payout_swap_embedded_with_a_strangers_signature_is_reported(
    stack: Stack,
) -> None:
    log = await _reported(stack)
    payout = log.entry("SwapReported", 1)
    forged = log.resigned(_gseq(payout), request_signed_by(NostrKeys.generate(), lambda c: None))
    found = [
        f for f in audit_log(forged, log.operator).findings
        if f.kind is FindingKind.BAD_EMBEDDED_REQUEST
    ]  # fmt: skip
    assert found and "payout swap must be reported by the worker" in found[0].detail


async def test_a_funding_swap_relabelled_as_the_workers_is_reported(stack: Stack) -> None:
    log = await _reported(stack)
    funding = log.entry("SwapReported", 0)

    def relabel(draft: Draft) -> None:
        draft.set_tag("swap_role", "payout")
        draft.edit_content(lambda body: body["event"].update(role="payout"))

    found = [
        f for f in audit_log(log.resigned(_gseq(funding), relabel), log.operator).findings
        if f.kind is FindingKind.BAD_EMBEDDED_REQUEST
    ]  # fmt: skip
    assert found and "must be reported by the worker" in found[0].detail


async def test_forged_swap_tags_are_reported(stack: Stack) -> None:
    log = await _reported(stack)
    payout = log.entry("SwapReported", 1)

    def bad_txid(draft: Draft) -> None:
        draft.set_tag("claim_txid", "not-a-txid")

    def both_ways(draft: Draft) -> None:
        draft.tags.append(["refund_txid", REFUND])

    for change, words in ((bad_txid, "claim_txid"), (both_ways, "claimed or refunded")):
        found = [
            f for f in audit_log(log.resigned(_gseq(payout), change), log.operator).findings
            if f.kind is FindingKind.MALFORMED
        ]  # fmt: skip
        assert found and words in found[0].detail, words
