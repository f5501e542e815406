"""Funding rounds in the log: a task renewed twice and paid audits clean; the auditor finds a
round taken under a hash no renewal opened, and a second round settled."""

from __future__ import annotations

from support.audit_logs import Draft, RealLog
from support.renewal_flows import long_task, renewed_once
from support.stacks import Stack
from support.task_flows import read_log, tag

from taskhold.audit import FindingKind, audit_log


async def _renewed_log(stack: Stack) -> tuple[RealLog, str]:
    employer, worker = stack.client(), stack.client()
    task = await long_task(stack, employer)
    for _ in range(2):
        task = await renewed_once(stack, employer, task)
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task["task_id"], {"url": "https://example.org/x"}, invoice)
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    log = RealLog(stack, stack.services.signer.get_public_key(), await read_log(stack))
    return log, task["task_id"]


async def test_a_task_renewed_twice_and_paid_audits_clean(stack: Stack) -> None:
    log, _ = await _renewed_log(stack)
    opened = [log.entry("RenewalOpened", n) for n in (0, 1)]
    renewed = [log.entry("Renewed", n) for n in (0, 1)]
    assert [tag(e, "round") for e in opened] == [tag(e, "round") for e in renewed] == ["2", "3"]
    assert [tag(e, "renewal_hash") for e in opened] == [tag(e, "payment_hash") for e in renewed]
    result = audit_log(log.entries, log.operator)
    assert result.clean, [f.to_json() for f in result.findings]


async def test_a_round_taken_under_a_hash_no_renewal_opened_is_found(stack: Stack) -> None:
    log, _ = await _renewed_log(stack)
    gseq = int(tag(log.entry("Renewed"), "gseq") or -1)

    def change(draft: Draft) -> None:
        draft.set_tag("payment_hash", "ab" * 32)

    result = audit_log(log.resigned(gseq, change), log.operator)
    kinds = {finding.kind for finding in result.findings}
    assert FindingKind.BAD_ROUND in kinds, [f.to_json() for f in result.findings]


async def test_a_second_round_settled_is_found(stack: Stack) -> None:
    """The operator settles the first round too (it can derive that preimage) and logs it:
    the auditor finds two rounds settled, besides a preimage of a round no longer current."""
    log, task_id = await _renewed_log(stack)
    first_preimage = stack.services.engine.ctx.keys.derive_preimage(task_id, 1).hex()
    gseq = int(tag(log.entry("RoundCancelled"), "gseq") or -1)

    def change(draft: Draft) -> None:
        draft.set_tag("op", "HoldSettledUnderLivePayout")
        draft.tags.append(["preimage", first_preimage])

    result = audit_log(log.resigned(gseq, change), log.operator)
    kinds = {finding.kind for finding in result.findings}
    assert {FindingKind.BAD_ROUND, FindingKind.PREIMAGE_MISMATCH} <= kinds, [
        f.to_json() for f in result.findings
    ]
