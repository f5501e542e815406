"""Every refund outcome the writer records is one the auditor accepts, and only those."""

from __future__ import annotations

import pytest
from support.audit_logs import Draft, RealLog
from support.stacks import Stack
from support.task_flows import funded, read_log, tag

from taskhold.audit import FindingKind, audit_log
from taskhold.lightning.base import InvoiceNotFound


async def _refund_unknown_to_the_node(stack: Stack) -> RealLog:
    """A funded task cancelled after the node lost its invoice: the refund finds nothing."""
    employer = stack.client()
    task = await funded(stack, employer)

    async def unknown(payment_hash: bytes) -> None:
        raise InvoiceNotFound(f"no invoice with payment hash {payment_hash.hex()}")

    stack.world.escrow.cancel_invoice = unknown  # type: ignore[method-assign]
    await employer.cancel(task["task_id"], reason="no longer needed")
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "REFUNDED"
    return RealLog(stack, stack.services.signer.get_public_key(), await read_log(stack))


async def test_a_refund_of_an_invoice_the_node_lost_is_recorded_and_audits_clean(
    stack: Stack,
) -> None:
    log = await _refund_unknown_to_the_node(stack)

    completed = log.entry("RefundCompleted")
    assert tag(completed, "invoice_state") == "NOT_FOUND"
    result = audit_log(log.entries, log.operator)
    assert result.clean, [f.to_json() for f in result.findings]


@pytest.mark.parametrize("state", ["SETTLED", "ACCEPTED", "canceled"])
async def test_a_refund_claiming_another_invoice_state_is_malformed(
    stack: Stack, state: str
) -> None:
    log = await _refund_unknown_to_the_node(stack)
    gseq = int(tag(log.entry("RefundCompleted"), "gseq") or "")

    def claim(draft: Draft) -> None:
        draft.set_tag("invoice_state", state)
        draft.edit_content(lambda body: body["event"].update(invoice_state=state))

    result = audit_log(log.resigned(gseq, claim), log.operator)
    assert FindingKind.MALFORMED in {f.kind for f in result.findings}
