"""Agreements in the public log: a cooperative cancel audits clean, and an entry claiming that a
party accepted their own proposal is reported."""

from __future__ import annotations

from support.audit_logs import Draft, RealLog
from support.stacks import Stack
from support.task_flows import read_log, submitted, tag

from taskhold.audit import FindingKind, audit_log


async def _cancelled_by_agreement(stack: Stack) -> RealLog:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await employer.propose_agreement(task["task_id"], 0, "let us part")
    await worker.accept_agreement(task["task_id"], 0)
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "REFUNDED"
    return RealLog(stack, stack.services.signer.get_public_key(), await read_log(stack))


async def test_a_cooperative_cancel_audits_clean(stack: Stack) -> None:
    log = await _cancelled_by_agreement(stack)
    ops = [tag(entry, "op") for entry in log.entries]
    assert ops[-4:] == [
        "AgreementProposed",
        "AgreementAccepted",
        "RefundOrdered",
        "RefundCompleted",
    ]
    result = audit_log(log.entries, log.operator)
    assert result.clean, [f.to_json() for f in result.findings]


async def test_an_agreement_accepted_by_its_own_proposer_is_reported(stack: Stack) -> None:
    log = await _cancelled_by_agreement(stack)
    accepted = log.entry("AgreementAccepted")
    gseq = int(tag(accepted, "gseq") or "")
    author = accepted["tags"][[t[0] for t in accepted["tags"]].index("e")][3]

    def self_accepted(draft: Draft) -> None:
        draft.edit_content(lambda body: body["event"].update(proposed_by=author))

    result = audit_log(log.resigned(gseq, self_accepted), log.operator)
    found = [f for f in result.findings if f.kind is FindingKind.BAD_EMBEDDED_REQUEST]
    assert found and "its own author's proposal" in found[0].detail
