"""proof: the claimed worker submits a signed proof (kind 3911) and the invoice to be paid with.

The proof is checked against the task's acceptance spec and the payout invoice against the
payout amount before anything is written; a failing proof is refused with every reason.

A refused proof is recorded (the verdict is public, with the worker's signed proof embedded so
anyone can check it) within bounds: ``refused_proofs_max_per_task`` per task (the machine's
rule) and ``refused_proof_max_bytes`` of content each. A larger failing proof gets the same
answer but is not stored: it would cost the operator storage and relays space for nothing.
"""

from __future__ import annotations

import asyncio
from types import MappingProxyType
from typing import Any

from pydantic import Field

from taskhold.envelope import SignedRequest
from taskhold.errors import Conflict, Invalid, RefusalCode
from taskhold.payments.invoices import check_payout_terms, validate_payout_invoice
from taskhold.payments.rules import budget_now, check_payout_invoice
from taskhold.store import Tx
from taskhold.tasks import Task, decide
from taskhold.tasks import commands as c
from taskhold.verification import check_proof, parse_spec

from .content import PayoutTerms, parse_content
from .pipeline import Outcome, WriteContext, apply_command
from .private import (
    HASH_PATTERN,
    OpenedProof,
    Recipient,
    SealedText,
    given_invoice,
    open_sealed_proof,
)

__all__ = ["submit_proof", "update_payout_invoice", "update_refund_invoice"]


InvoiceText = Field(default=None, min_length=1, max_length=4000)
SealedInvoice = Field(default=None, min_length=1, max_length=12_000)
"""An invoice NIP-44 v2 sealed by the request's signer to the operator key, base64."""


class ProofContent(PayoutTerms):
    proof: dict[str, Any] = Field(default_factory=dict)
    payout_invoice: str | None = InvoiceText
    payout_invoice_sealed: str | None = SealedInvoice
    proof_hash: str | None = Field(default=None, pattern=HASH_PATTERN)
    proof_sealed: dict[Recipient, SealedText] | None = Field(default=None, max_length=32)
    """A sealed proof (see ``.private``): recipient pubkey -> the proof payload NIP-44 v2
    encrypted by the worker; ``proof`` is then left out."""


class PayoutInvoiceContent(PayoutTerms):
    payout_invoice: str | None = InvoiceText
    payout_invoice_sealed: str | None = SealedInvoice


class RefundInvoiceContent(PayoutTerms):
    refund_invoice: str | None = InvoiceText
    refund_invoice_sealed: str | None = SealedInvoice


async def _check_head_seen(tx: Tx, task: Task, request: SignedRequest) -> None:
    """The proof names the log entry the worker saw last (``["prev", id]``): a proof signed
    against an older state of the task is refused instead of being applied to a newer one."""
    seen = [tag[1] for tag in request.raw["tags"] if len(tag) > 1 and tag[0] == "prev"]
    head = await tx.log_head(task.task_id)
    if head is None:
        return
    if not seen:
        raise Invalid(
            "a proof must carry a prev tag with the task's log_head (GET the task to read it)",
            code=RefusalCode.MISSING_HEAD,
        )
    if seen != [head]:
        raise Conflict(
            "the task changed since this proof was signed (its prev is not the current"
            " log_head); read the task again and sign a new proof",
            code=RefusalCode.STALE_HEAD,
        )


async def _checked_invoice(
    ctx: WriteContext,
    tx: Tx,
    task: Task,
    request: SignedRequest,
    terms: PayoutTerms,
    *,
    employer_share: bool = False,
) -> str:
    """The worker's invoice, if it is for the payout (a split's worker share once split), its
    signed ``terms`` are its own, and paying it cannot lose money (the rules of
    :mod:`taskhold.payments.rules`, checked again before paying); with ``employer_share``, the
    employer's invoice for their share. Given sealed, it is opened and checked the same way,
    and what is returned to keep is its sealed form."""
    settings = ctx.escrow.settings
    if employer_share:
        assert task.split_employer_msat is not None
        expected, field, what = task.split_employer_msat, "refund_invoice", "your share"
        owner = f"refund/{task.task_id}"
    else:
        what = "the worker's share" if task.is_split else "the task amount minus the operator fee"
        expected, field, owner = task.payout_msat, "payout_invoice", f"task/{task.task_id}"
    given = given_invoice(
        ctx,
        task,
        signer=request.pubkey,
        field=field,
        clear=getattr(terms, field),
        sealed=getattr(terms, f"{field}_sealed"),
    )
    invoice = validate_payout_invoice(
        given.text,
        expected_msat=expected,
        network=ctx.escrow.lightning.network,
        now=ctx.escrow.now(),
        min_validity_s=settings.payout_min_validity_s,
        forbidden_hashes=frozenset({task.payment_hash_hex or ""}),
        field=field,
        what=what,
    )
    check_payout_terms(invoice, terms.payout_hash, terms.payout_msat, field=field)
    await check_payout_invoice(
        ctx.escrow,
        tx,
        invoice,
        owner=owner,
        budget_blocks=await budget_now(
            ctx.escrow,
            task.accepted_htlc_expiry_height,
            hold_settled=task.hold_settled_at is not None,
        ),
        accepting=True,
    )
    return given.stored(invoice.payment_hash_hex, invoice.payment_request)


async def submit_proof(
    ctx: WriteContext, tx: Tx, request: SignedRequest, task: Task | None
) -> Outcome:
    assert task is not None
    body = parse_content(ProofContent, request.content)
    now = ctx.escrow.now()
    sealed: OpenedProof | None = None

    def command(payout_invoice: str) -> c.SubmitProof:
        return c.SubmitProof(
            actor=request.pubkey,
            at=now,
            proof_event_id=request.event_id,
            proof=body.proof,
            payout_request=payout_invoice,
            proof_hash=None if sealed is None else sealed.proof_hash,
            proof_sealed=None if sealed is None else sealed.copies,
        )

    decide(task, command(""), ctx.arbiters)  # role, state and deadline before content checks
    await _check_head_seen(tx, task, request)
    sealed = open_sealed_proof(
        ctx,
        task,
        worker=request.pubkey,
        clear_proof=body.proof,
        proof_hash=body.proof_hash,
        proof_sealed=body.proof_sealed,
    )
    checked = body.proof if sealed is None else sealed.proof
    # Off the event loop: other requests are served while a proof is checked (RE2 bounds it).
    problems = await asyncio.to_thread(check_proof, parse_spec(task.acceptance), checked)
    if problems:
        return await _refused(ctx, tx, request, task, problems, now)
    payout_invoice = await _checked_invoice(ctx, tx, task, request, body)
    return Outcome(await apply_command(ctx, tx, request, task, command(payout_invoice)))


async def _refused(
    ctx: WriteContext,
    tx: Tx,
    request: SignedRequest,
    task: Task,
    problems: list[str],
    now: int,
) -> Outcome:
    """The verdict on a proof that fails the spec is public: it is logged with the proof
    embedded, and the worker gets a 422 that lists every problem."""
    problems = [problem[:_MAX_PROBLEM_CHARS] for problem in problems[:_MAX_PROBLEMS]]
    detail = "the proof does not meet the task's acceptance spec: " + "; ".join(problems)
    settings = ctx.escrow.settings
    size = len(request.raw["content"].encode())
    if size > settings.refused_proof_max_bytes:
        raise ProofRejected(
            f"{detail} (not recorded: {size} bytes is over the {settings.refused_proof_max_bytes}"
            " a refused proof may take)",
            problems,
        )
    command = c.RefuseProof(
        actor=request.pubkey,
        at=now,
        proof_event_id=request.event_id,
        problems=problems,
        max_refused=settings.refused_proofs_max_per_task,
    )
    refused = await apply_command(ctx, tx, request, task, command)
    verdict = ProofRejected(detail, problems, recorded=True)
    return Outcome(refused, status=verdict.status, problem=verdict.problem())


_MAX_PROBLEMS = 20
_MAX_PROBLEM_CHARS = 300
"""A verdict's size is bounded whatever the spec and the proof: it is logged and stored."""


class ProofRejected(Invalid):
    """A failing proof. Raised when it is not recorded (its answer says ``recorded: false``);
    a recorded one is not raised, since its verdict is written, but answers with its body."""

    code = RefusalCode.PROOF_REJECTED

    def __init__(self, detail: str, problems: list[str], *, recorded: bool = False) -> None:
        super().__init__(detail)
        extra: dict[str, Any] = {"problems": problems}
        if not recorded:
            extra["recorded"] = False
        self.extra = MappingProxyType(extra)


async def update_payout_invoice(
    ctx: WriteContext, tx: Tx, request: SignedRequest, task: Task | None
) -> Outcome:
    assert task is not None
    body = parse_content(PayoutInvoiceContent, request.content)
    now = ctx.escrow.now()

    def command(payout_invoice: str) -> c.UpdatePayoutRequest:
        return c.UpdatePayoutRequest(actor=request.pubkey, at=now, payout_request=payout_invoice)

    decide(task, command(""), ctx.arbiters)
    payout_invoice = await _checked_invoice(ctx, tx, task, request, body)
    return Outcome(await apply_command(ctx, tx, request, task, command(payout_invoice)))


async def update_refund_invoice(
    ctx: WriteContext, tx: Tx, request: SignedRequest, task: Task | None
) -> Outcome:
    """The employer's invoice for their share of a split: exactly that share, checked like a
    payout invoice; replaceable until the share is paid (a payment to the old one that may
    still land is followed, never doubled)."""
    assert task is not None
    body = parse_content(RefundInvoiceContent, request.content)
    now = ctx.escrow.now()

    def command(refund_invoice: str) -> c.UpdateRefundRequest:
        return c.UpdateRefundRequest(actor=request.pubkey, at=now, refund_request=refund_invoice)

    decide(task, command(""), ctx.arbiters)
    invoice = await _checked_invoice(ctx, tx, task, request, body, employer_share=True)
    return Outcome(await apply_command(ctx, tx, request, task, command(invoice)))
