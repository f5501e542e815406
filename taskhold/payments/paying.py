"""Paying one invoice at most once: the step every payout shares (:mod:`.held` calls it).

The payment's row (``PayoutRow`` or ``DepositPayoutRow``) is written before the first attempt,
and marked sent before each one, so after a crash the node is asked what became of that exact
payment instead of paying again; a payment that may still land (in flight) is never treated as
failed; and every payment obeys the rules of :mod:`.rules`, checked here, once, for
every kind of payout.

The row's ``status`` says what taskhold last knew of its payment: ``SENT`` (asked to pay, no
answer recorded: a crash may have come before the node ever saw it), then the node's own
answer (``IN_FLIGHT``, ``SUCCEEDED``, ``FAILED``). A payment the node once acknowledged in
flight and later says it never saw was forgotten by the node (a restored or pruned payment
database), not failed: the payee may still hold its HTLC and take it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from taskhold.errors import Invalid
from taskhold.lightning.base import (
    InvoiceState,
    InvoiceStatus,
    LightningError,
    PaymentFailed,
    PaymentResult,
    PaymentStatus,
)
from taskhold.store import Tx

from .context import PaymentContext, log
from .invoices import decode_invoice
from .rules import budget_now, check_payout_invoice
from .sealed import SealedContentError, open_invoice

__all__ = [
    "SENT",
    "PaymentRecord",
    "may_land",
    "pay_once",
    "record_result",
    "record_sent",
    "stands",
]

SENT = "SENT"
"""A row's status while the node's answer to its payment is not recorded yet."""


class PaymentRecord(Protocol):
    """The columns both payout tables share (``payment_request`` holds the payout invoice, or
    its sealed form: :mod:`.sealed`)."""

    payment_request: str
    payment_hash_hex: str
    amount_msat: int
    status: str
    attempts: int
    fee_msat: int | None
    last_error: str | None
    updated_at: int


async def stands(ctx: PaymentContext, row: PaymentRecord, payout_invoice: str) -> bool:
    """Whether a written payment row stays, rather than one for a new invoice replacing it:
    it is for this invoice, or its payment succeeded or may still land."""
    if row.payment_request == payout_invoice:
        return True
    return await may_land(ctx, row)


async def may_land(ctx: PaymentContext, row: PaymentRecord) -> bool:
    """The row's payment succeeded or is still in flight, or the node forgot a payment it had
    acknowledged: its hold invoice must be settled, never cancelled, or the operator could
    pay the money out twice."""
    known = await ctx.lightning.lookup_payment(bytes.fromhex(row.payment_hash_hex))
    return known.status in (PaymentStatus.SUCCEEDED, PaymentStatus.IN_FLIGHT) or _forgotten(
        row, known
    )


def _forgotten(row: PaymentRecord, known: PaymentResult) -> bool:
    """The node once answered that the row's payment was in flight, and now says it never saw
    it: only a lost or pruned payment record does that, and the payee may still settle."""
    forgot = row.status == PaymentStatus.IN_FLIGHT.value and known.status is PaymentStatus.UNKNOWN
    if forgot:
        log.error("payment_forgotten_by_node", payment_hash=row.payment_hash_hex)
    return forgot


def record_sent(row: PaymentRecord, now: int) -> None:
    """Mark the row's payment as sent, committed before the node is asked to pay: a success
    the node reports for a row never sent is someone else's payment of the same hash."""
    row.attempts += 1
    row.status = SENT
    row.updated_at = now


def record_result(
    row: PaymentRecord, result: PaymentResult | None, error: str | None, now: int
) -> None:
    """Write what became of the row's payment."""
    row.status = result.status.value if result else PaymentStatus.FAILED.value
    row.fee_msat = result.fee_msat if result and result.status is PaymentStatus.SUCCEEDED else None
    row.last_error = error
    row.updated_at = now


async def pay_once(
    ctx: PaymentContext,
    row: PaymentRecord,
    *,
    task_id: str,
    owner: str,
    hold_hash: bytes,
    hold: InvoiceStatus | None = None,
    max_fee_msat: int,
    failures: int,
    mark_sent: Callable[[Tx], Awaitable[None]],
    mark: Callable[[PaymentResult | None, str | None], Awaitable[None]],
    record_failure: Callable[[str], Awaitable[None]],
) -> PaymentResult | None:
    """The row's payment, succeeded; None if it failed (``record_failure`` was told why), is
    still in flight, or may not be tried now.

    ``hold_hash`` names the hold invoice the payment stands behind; it is read from the node
    right before paying. While it is held, the payment's CLTV limit ends inside it; once it is
    settled (the guardian's declared fallback) the worker is still owed and the payment is
    retried; once cancelled, nothing is paid. ``hold``: that hold as the caller read it from
    the node a moment ago, with no payment made since, so it is not asked twice; the CLTV limit
    still comes from the block height read here, and a hold lnd would cancel by itself near
    its expiry leaves no budget at that height (``guard_blocks`` is lnd's ``holdexpirydelta``
    and a margin more). ``owner`` names the payout for the rules of :mod:`.rules`, checked
    again here whoever accepted the invoice. ``mark_sent`` marks the row sent inside the
    transaction that checked those rules, so nothing commits between the check and the send.
    """
    payment_hash = bytes.fromhex(row.payment_hash_hex)
    known = await ctx.lightning.lookup_payment(payment_hash)
    sent = row.attempts > 0
    if sent and known.status is PaymentStatus.SUCCEEDED:
        await mark(known, None)
        return known
    if known.status in (PaymentStatus.SUCCEEDED, PaymentStatus.IN_FLIGHT) or _forgotten(row, known):
        if not sent and failures < ctx.settings.payout_max_attempts:
            await record_failure(
                "the escrow node already paid this invoice's payment hash for something else;"
                " send a new invoice"
            )
        return None  # ours in flight: follow it, never send a second one
    if failures >= ctx.settings.payout_max_attempts:
        return None
    if hold is None:
        hold = await ctx.lightning.lookup_invoice(hold_hash)
    budget = await _cltv_budget(ctx, hold)
    if budget is None:
        return None  # the hold went back to its payer (or never came): nothing may be paid
    try:
        own = (ctx.operator_keys,) if ctx.operator_keys is not None else ()
        invoice_text = open_invoice((*own, *ctx.previous_operator_keys), row.payment_request)
    except SealedContentError:
        reason = "the sealed invoice does not open with the operator's key; send a new invoice"
        await mark(None, reason)
        await record_failure(reason)
        return None
    # The outbound liquidity is read first, so that the rules' transaction can also mark the
    # payment sent when nothing stops it: one commit right before the node is asked to pay.
    outbound_msat = (await ctx.lightning.capacity(behind=hold_hash)).outbound_msat
    short = outbound_msat < row.amount_msat
    try:
        async with ctx.store.transaction() as tx:
            await check_payout_invoice(
                ctx,
                tx,
                decode_invoice(invoice_text),
                owner=owner,
                budget_blocks=budget,
                accepting=False,
            )
            if not short:
                await mark_sent(tx)
    except Invalid as refused:
        late = refused.code == "payout_cltv_too_long" and hold.state is InvoiceState.ACCEPTED
        reason = f"too late to pay safely: {refused.detail}" if late else refused.detail
        await mark(None, reason)
        await record_failure(reason)
        return None
    if short:
        _alert_short(ctx, owner, row.amount_msat, hold_hash, outbound_msat=outbound_msat)
        return None  # the operator's shortage, not the worker's: wait, retry, never count it
    ctx.liquidity.cleared(owner)
    try:
        result = await ctx.lightning.pay_invoice(
            invoice_text,
            max_fee_msat=max_fee_msat,
            timeout_seconds=ctx.settings.payout_timeout_s,
            cltv_limit=budget,
            behind=hold_hash,
        )
    except PaymentFailed as exc:
        pending = await ctx.lightning.lookup_payment(payment_hash)
        if pending.status is PaymentStatus.IN_FLIGHT:
            await mark(pending, None)
            return None  # timed out waiting, but the HTLC may still land: ask again later
        await mark(None, exc.reason)
        if exc.reason == INSUFFICIENT_BALANCE:
            _alert_short(ctx, owner, row.amount_msat, hold_hash)
            return None  # the escrow node's own channels lacked the money: retried, not counted
        await record_failure(exc.reason)
        return None
    except LightningError as exc:
        log.warning("payout_error", task_id=task_id, error=type(exc).__name__)
        return None
    if result.status is not PaymentStatus.SUCCEEDED:
        log.info("payout_in_flight", task_id=task_id, payment_hash=row.payment_hash_hex)
        await mark(result, None)  # the node took it: from now on it may land
        return None  # still in flight: never settle a hold invoice before its payment landed
    await mark(result, None)
    return result


INSUFFICIENT_BALANCE = "FAILURE_REASON_INSUFFICIENT_BALANCE"
"""The node's own channels could not carry the payment: lnd's reason, the simulator's too."""


def _alert_short(
    ctx: PaymentContext,
    owner: str,
    amount_msat: int,
    hold_hash: bytes,
    *,
    outbound_msat: int | None = None,
) -> None:
    ctx.liquidity.short(owner, amount_msat, behind=hold_hash)
    log.error(
        "payout_short_of_liquidity",
        owner=owner,
        amount_msat=amount_msat,
        outbound_msat=outbound_msat,
        waiting=len(ctx.liquidity.waiting),
        waiting_msat=ctx.liquidity.waiting_msat,
    )


async def _cltv_budget(ctx: PaymentContext, hold: InvoiceStatus) -> int | None:
    """The CLTV limit a payment behind ``hold`` may carry now; None if none may be sent."""
    if hold.state not in (InvoiceState.ACCEPTED, InvoiceState.SETTLED):
        return None
    settled = hold.state is InvoiceState.SETTLED
    return await budget_now(ctx, hold.accepted_htlc_expiry_height, hold_settled=settled)
