"""deposit and deposit-payout: a stranger's deposit instead of proof of work, and the invoice
that pays a forfeited one to its beneficiary. The rules are in ``taskhold.tasks.deposits``.

Like ``fund``, the node call happens while the task row is locked, and the deposit's payment
hash is derived from the key store, so a retry reuses the invoice instead of making a second.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from taskhold.envelope import SignedRequest
from taskhold.errors import Conflict, RefusalCode
from taskhold.escrow.admission import admit, placing
from taskhold.escrow.deposits import ensure_deposit_invoice
from taskhold.escrow.funding import invoice_row
from taskhold.payments.invoices import check_payout_terms, validate_payout_invoice
from taskhold.payments.rules import budget_now, check_payout_invoice
from taskhold.store import Tx
from taskhold.tasks import Task, decide
from taskhold.tasks import commands as c
from taskhold.tasks.deposits import next_deposit_round
from taskhold.tasks.model import deposit_view

from .content import PUBKEY_PATTERN, PayoutTerms, parse_content
from .open_invoices import check_open_invoices
from .pipeline import Outcome, WriteContext, apply_command
from .private import given_invoice

__all__ = ["deposit", "deposit_payout"]


class DepositContent(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DepositPayoutContent(PayoutTerms):
    depositor: str = Field(pattern=PUBKEY_PATTERN)
    payout_invoice: str | None = Field(default=None, min_length=1, max_length=4000)
    payout_invoice_sealed: str | None = Field(default=None, min_length=1, max_length=12_000)
    """The invoice NIP-44 v2 sealed by the beneficiary to the operator key (``.private``)."""


async def deposit(ctx: WriteContext, tx: Tx, request: SignedRequest, task: Task | None) -> Outcome:
    assert task is not None
    parse_content(DepositContent, request.content)
    if ctx.reputation is None:
        raise Conflict(
            "this taskhold runs without the reputation policy, so it asks for no deposits",
            code=RefusalCode.DEPOSITS_DISABLED,
        )
    amount = ctx.reputation.deposit_msat(request.pubkey, task.amount_msat)
    pledged = task.deposit_pledged and request.pubkey == task.employer_pubkey
    if amount == 0 and not pledged:
        raise Conflict(
            "your record needs no proof of work, so no deposit either",
            code=RefusalCode.DEPOSIT_NOT_NEEDED,
        )
    amount = max(amount, ctx.reputation.policy.deposit_min_msat)
    now = ctx.escrow.now()
    deposit_round = next_deposit_round(task, request.pubkey)

    def command(payment_hash_hex: str, payment_request: str, cltv: int) -> c.RequestDeposit:
        return c.RequestDeposit(
            actor=request.pubkey,
            at=now,
            round=deposit_round,
            amount_msat=amount,
            payment_hash_hex=payment_hash_hex,
            payment_request=payment_request,
            cltv_expiry_delta=cltv,
            invoice_expires_at=now + ctx.escrow.settings.invoice_expiry_s,
            max_open_per_task=ctx.escrow.settings.deposit_max_open_per_task,
            max_per_task=ctx.escrow.settings.deposit_max_per_task,
        )

    decide(task, command("", "", 0), ctx.arbiters)  # role and state first: no node call if refused
    await check_open_invoices(
        tx, request.pubkey, task.task_id, ctx.escrow.settings.max_open_invoices_per_key
    )
    await admit(ctx.escrow, tx, request.pubkey, amount, task=False)
    async with placing(ctx.escrow, amount):
        invoice = await ensure_deposit_invoice(
            ctx.escrow, task, request.pubkey, deposit_round, amount
        )
    await ctx.escrow.fault_hook("after_deposit_invoice")
    updated = await apply_command(
        ctx,
        tx,
        request,
        task,
        command(invoice.payment_hash.hex(), invoice.payment_request, invoice.cltv_expiry_delta),
    )
    await tx.put_invoice(invoice_row(task, invoice, deposit_round, now))
    made = updated.deposit_of(request.pubkey)
    assert made is not None
    return Outcome(updated, status=201, extra={"deposit": deposit_view(made)})


async def deposit_payout(
    ctx: WriteContext, tx: Tx, request: SignedRequest, task: Task | None
) -> Outcome:
    assert task is not None
    body = parse_content(DepositPayoutContent, request.content)
    now = ctx.escrow.now()

    def command(payout_invoice: str) -> c.RequestDepositPayout:
        return c.RequestDepositPayout(
            actor=request.pubkey, at=now, depositor=body.depositor, payout_request=payout_invoice
        )

    decide(task, command(""), ctx.arbiters)  # beneficiary and state before the invoice checks
    forfeited = task.deposit_of(body.depositor)
    assert forfeited is not None
    settings = ctx.escrow.settings
    given = given_invoice(
        ctx,
        task,
        signer=request.pubkey,
        field="payout_invoice",
        clear=body.payout_invoice,
        sealed=body.payout_invoice_sealed,
    )
    invoice = validate_payout_invoice(
        given.text,
        expected_msat=forfeited.amount_msat,
        network=ctx.escrow.lightning.network,
        now=now,
        min_validity_s=settings.payout_min_validity_s,
        forbidden_hashes=frozenset({forfeited.payment_hash_hex, task.payment_hash_hex or ""}),
    )
    check_payout_terms(invoice, body.payout_hash, body.payout_msat)
    await check_payout_invoice(
        ctx.escrow,
        tx,
        invoice,
        owner=f"deposit/{forfeited.payment_hash_hex}",
        budget_blocks=await budget_now(
            ctx.escrow, forfeited.expiry_height, hold_settled=forfeited.hold_settled_at is not None
        ),
        accepting=True,
    )
    kept = given.stored(invoice.payment_hash_hex, invoice.payment_request)
    return Outcome(await apply_command(ctx, tx, request, task, command(kept)))
