"""A payout invoice sealed to the operator (``payout_invoice_sealed``): opened in memory and
checked exactly like a clear one, kept and paid from its sealed form, never shown. An invoice
that is not the signed terms', that does not open for the operator, or that comes with a clear
one too is refused and nothing is written; and a worker cannot turn the operator to another
invoice while the sealed one's payment may still land."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlalchemy import select
from support.payee_holds import held_by_payee
from support.split_flows import split_task
from support.stacks import Stack
from support.task_flows import funded, read_log
from test_proofs import _written

from taskhold.audit import audit_log
from taskhold.client import TaskholdAPIError, TaskholdClient, payout_terms
from taskhold.lightning.base import InvoiceState
from taskhold.nostr import NostrKeys
from taskhold.nostr.confidential import seal
from taskhold.store.models import PayoutRow

URL = {"url": "https://example.org/x"}


async def _claimed(stack: Stack) -> tuple[dict[str, Any], TaskholdClient, NostrKeys]:
    task, _, worker, keys = await _claimed_by(stack)
    return task, worker, keys


async def _claimed_by(
    stack: Stack,
) -> tuple[dict[str, Any], TaskholdClient, TaskholdClient, NostrKeys]:
    employer, keys = stack.client(), NostrKeys.generate()
    worker = stack.client(keys)
    task = await funded(stack, employer)
    return await worker.claim(task["task_id"]), employer, worker, keys


def _sealed(keys: NostrKeys, to: str, invoice: str) -> str:
    return seal(keys, [to], invoice)[to]


async def _prove(
    worker: TaskholdClient, task: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    """A proof with exactly the invoice fields of ``body``, signed against the task's head."""
    return await worker._task_write(
        task["task_id"],
        "proof",
        "proof",
        {"proof": URL, **body},
        None,
        kind=worker._proof_kind,
        extra_tags=[["prev", task["log_head"]]],
    )


async def _refused(stack: Stack, write: Any) -> TaskholdAPIError:
    before = await _written(stack)
    with pytest.raises(TaskholdAPIError) as refused:
        await write
    assert await _written(stack) == before
    return refused.value


async def test_a_sealed_invoice_that_is_not_the_signed_terms_is_refused(stack: Stack) -> None:
    task, worker, keys = await _claimed(stack)
    operator = stack.services.signer.get_public_key()
    signed = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    other = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    body = {"payout_invoice_sealed": _sealed(keys, operator, other), **payout_terms(signed)}
    refused = await _refused(stack, _prove(worker, task, body))
    assert (refused.status, refused.code) == (422, "payout_terms_mismatch")
    assert other not in str(refused.problem)


async def test_a_sealed_invoice_for_another_amount_is_refused(stack: Stack) -> None:
    task, worker, keys = await _claimed(stack)
    operator = stack.services.signer.get_public_key()
    more = await stack.world.worker.create_invoice(task["payout_msat"] + 1, expiry_seconds=86_400)
    body = {"payout_invoice_sealed": _sealed(keys, operator, more), **payout_terms(more)}
    refused = await _refused(stack, _prove(worker, task, body))
    assert refused.status == 422 and refused.code == "wrong_amount", refused.code


@pytest.mark.parametrize("sealer", ["other-recipient", "other-sender", "garbage"])
async def test_a_sealed_invoice_the_operator_cannot_open_is_refused(
    stack: Stack, sealer: str
) -> None:
    task, worker, keys = await _claimed(stack)
    operator = stack.services.signer.get_public_key()
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    stranger = NostrKeys.generate()
    ciphertext = {
        "other-recipient": lambda: _sealed(keys, stranger.pubkey_hex, invoice),
        "other-sender": lambda: _sealed(stranger, operator, invoice),
        "garbage": lambda: "bm90IGEgY2lwaGVydGV4dA==",
    }[sealer]()
    body = {"payout_invoice_sealed": ciphertext, **payout_terms(invoice)}
    refused = await _refused(stack, _prove(worker, task, body))
    assert (refused.status, refused.code) == (422, "sealed_content_invalid")


@pytest.mark.parametrize("given", ["both", "neither"])
async def test_a_proof_gives_exactly_one_of_the_clear_and_the_sealed_invoice(
    stack: Stack, given: str
) -> None:
    task, worker, keys = await _claimed(stack)
    operator = stack.services.signer.get_public_key()
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    body: dict[str, Any] = payout_terms(invoice)
    if given == "both":
        body |= {
            "payout_invoice": invoice,
            "payout_invoice_sealed": _sealed(keys, operator, invoice),
        }
    refused = await _refused(stack, _prove(worker, task, body))
    assert (refused.status, refused.code) == (422, "invalid_content")


async def test_a_sealed_payout_is_paid_to_its_invoice_which_is_shown_and_kept_only_sealed(
    stack: Stack,
) -> None:
    task, employer, worker, _ = await _claimed_by(stack)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    payout_hash = payout_terms(invoice)["payout_hash"]
    submitted = await worker.submit_proof(task["task_id"], URL, invoice, seal_invoice=True)
    assert submitted["payout_invoice"] == f"sealed:{payout_hash}"
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    final = await worker.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert final["payout_payment_hash"] == payout_hash
    status = await stack.world.worker.lookup_invoice(bytes.fromhex(payout_hash))
    assert status.state is InvoiceState.SETTLED
    assert (
        hashlib.sha256(bytes.fromhex(final["preimage"])).hexdigest()
        == task["funding"]["payment_hash"]
    )
    async with stack.services.store.transaction() as tx:
        row = (
            await tx.session.execute(select(PayoutRow).where(PayoutRow.task_id == task["task_id"]))
        ).scalar_one()
    assert row.payment_request.startswith(f"sealed:{payout_hash}:")
    entries = await read_log(stack)
    assert invoice not in str(entries) and invoice not in str(final)
    result = audit_log(entries, stack.services.signer.get_public_key())
    assert result.clean, [f.to_json() for f in result.findings]
    assert result.summary.payout_proven and result.summary.payouts_proven == 1


async def test_a_worker_cannot_turn_a_live_sealed_payout_to_another_invoice(stack: Stack) -> None:
    """The sealed invoice is the worker's own hold invoice: the payout stays in flight. A new
    sealed invoice is taken (the payout may still fail) but never paid while the first may
    land; once the worker takes the first, the task is paid by it alone."""
    task, employer, worker, _ = await _claimed_by(stack)
    preimage, held = await held_by_payee(stack.world.worker, task["payout_msat"])
    await worker.submit_proof(task["task_id"], URL, held.payment_request, seal_invoice=True)
    await employer.approve(task["task_id"])
    await stack.run_pass()
    fresh = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.update_payout_invoice(task["task_id"], fresh, seal_invoice=True)
    stack.services.engine._retry_at.clear()
    await stack.run_pass()
    fresh_hash = bytes.fromhex(payout_terms(fresh)["payout_hash"])
    assert (await stack.world.worker.lookup_invoice(fresh_hash)).state is InvoiceState.OPEN
    assert (await worker.get_task(task["task_id"]))["state"] == "VERIFIED"
    await stack.world.worker.settle_invoice(preimage)
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()
    final = await worker.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert final["payout_payment_hash"] == held.payment_hash.hex()
    assert (await stack.world.worker.lookup_invoice(fresh_hash)).state is InvoiceState.OPEN


async def test_after_the_payout_a_new_sealed_invoice_is_refused(stack: Stack) -> None:
    task, employer, worker, _ = await _claimed_by(stack)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task["task_id"], URL, invoice, seal_invoice=True)
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    fresh = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    refused = await _refused(
        stack, worker.update_payout_invoice(task["task_id"], fresh, seal_invoice=True)
    )
    assert refused.status == 409


async def test_a_split_pays_both_sealed_shares(stack: Stack) -> None:
    """The worker's share and the employer's refund invoice (``refund_invoice_sealed``) both
    go sealed, are shown sealed, and are paid."""
    task, employer, worker = await split_task(stack)
    split = task["split"]
    share = await stack.world.worker.create_invoice(split["worker_msat"])
    refund = await stack.world.employer.create_invoice(split["employer_msat"])
    await worker.update_payout_invoice(task["task_id"], share, seal_invoice=True)
    shown = await employer.update_refund_invoice(task["task_id"], refund, seal_invoice=True)
    assert shown["split"]["refund_invoice"] == "sealed:" + payout_terms(refund)["payout_hash"]
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID", final
    for node, invoice in ((stack.world.worker, share), (stack.world.employer, refund)):
        paid_hash = bytes.fromhex(payout_terms(invoice)["payout_hash"])
        assert (await node.lookup_invoice(paid_hash)).state is InvoiceState.SETTLED
        assert invoice not in str(final)
    result = audit_log(await read_log(stack), stack.services.signer.get_public_key())
    assert result.clean, [f.to_json() for f in result.findings]
    assert result.summary.payout_proven
