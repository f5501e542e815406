"""Paying one invoice at most once: the step a release and a forfeited deposit share.

The payment's row (``PayoutRow`` or ``DepositPayoutRow``) is written before the first attempt,
so after a crash the node is asked what became of that exact payment instead of paying again;
and a payment that may still land (in flight) is never treated as failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from taskhold.errors import Fault
from taskhold.lightning.base import LightningError, PaymentFailed, PaymentResult, PaymentStatus

from .context import EscrowContext, log

__all__ = ["PaymentRecord", "max_fee_msat", "may_land", "pay_once", "record_result", "stands"]


class PaymentRecord(Protocol):
    """The columns both payout tables share."""

    payment_request: str
    payment_hash_hex: str
    amount_msat: int
    status: str
    attempts: int
    fee_msat: int | None
    last_error: str | None
    updated_at: int


def max_fee_msat(ctx: EscrowContext, amount_msat: int) -> int:
    return max(ctx.settings.payout_min_fee_msat, amount_msat * ctx.settings.payout_fee_ppm // 10**6)


async def stands(ctx: EscrowContext, row: PaymentRecord, payment_request: str) -> bool:
    """Whether a written payment row stays, rather than one for a new invoice replacing it:
    it is for this invoice, or its payment succeeded or may still land."""
    if row.payment_request == payment_request:
        return True
    previous = await ctx.lightning.lookup_payment(bytes.fromhex(row.payment_hash_hex))
    return previous.status in (PaymentStatus.SUCCEEDED, PaymentStatus.IN_FLIGHT)


async def may_land(ctx: EscrowContext, row: PaymentRecord) -> bool:
    """The row's payment succeeded or is still in flight: its hold invoice must be settled,
    never cancelled, or the operator could pay the money out twice."""
    known = await ctx.lightning.lookup_payment(bytes.fromhex(row.payment_hash_hex))
    return known.status in (PaymentStatus.SUCCEEDED, PaymentStatus.IN_FLIGHT)


def record_result(
    row: PaymentRecord, result: PaymentResult | None, error: str | None, now: int
) -> None:
    """Write one attempt's outcome into its row (a confirmed success is not an attempt)."""
    row.attempts += 1 if result is None or row.status != PaymentStatus.SUCCEEDED.value else 0
    row.status = result.status.value if result else PaymentStatus.FAILED.value
    row.fee_msat = result.fee_msat if result else None
    row.last_error = error
    row.updated_at = now


async def pay_once(
    ctx: EscrowContext,
    row: PaymentRecord,
    *,
    task_id: str,
    invoice_settled: bool,
    failures: int,
    mark: Callable[[PaymentResult | None, str | None], Awaitable[None]],
    record_failure: Callable[[str], Awaitable[None]],
    too_late: Callable[[], Awaitable[bool]] | None = None,
) -> PaymentResult | None:
    """The row's payment, succeeded; None if it failed (``record_failure`` was told why), is
    still in flight, or may not be tried now. ``invoice_settled``: the hold invoice this payment
    stands behind is already settled, so the payment must have succeeded."""
    payment_hash = bytes.fromhex(row.payment_hash_hex)
    known = await ctx.lightning.lookup_payment(payment_hash)
    if known.status is PaymentStatus.SUCCEEDED:
        await mark(known, None)
        return known
    if invoice_settled:
        raise Fault(f"task {task_id}: invoice settled but the payment is {known.status}")
    if failures >= ctx.settings.payout_max_attempts:
        return None
    if too_late is not None and await too_late():
        await record_failure("too close to the hold invoice's expiry to pay safely")
        return None
    try:
        result = await ctx.lightning.pay_invoice(
            row.payment_request,
            max_fee_msat=max_fee_msat(ctx, row.amount_msat),
            timeout_seconds=ctx.settings.payout_timeout_s,
        )
    except PaymentFailed as exc:
        if (await ctx.lightning.lookup_payment(payment_hash)).status is PaymentStatus.IN_FLIGHT:
            return None  # timed out waiting, but the HTLC may still land: ask again later
        await mark(None, exc.reason)
        await record_failure(exc.reason)
        return None
    except LightningError as exc:
        log.warning("payout_error", task_id=task_id, error=type(exc).__name__)
        return None
    if result.status is not PaymentStatus.SUCCEEDED:
        return None  # still in flight: never settle a hold invoice before its payment landed
    await mark(result, None)
    return result
