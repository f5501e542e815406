"""The rules every payout obeys, whatever it pays (a task's reward, a forfeited deposit, and
any later kind): one place, checked when the invoice is accepted and again right before paying.

A payout is bounded by the hold invoice that funds it, as a forwarding node bounds its outgoing
HTLC by its incoming one (DESIGN.md section 4):

- its time lock ends inside the hold's remaining blocks: ``cltv_budget`` is what is left of the
  hold once the guardian's margin and ``payout_cltv_margin_blocks`` are kept back, and the
  payment carries it as its CLTV limit;
- its routing fee never exceeds what the operator earns on it (``payout_fee_cap_msat``);
- it never pays the escrow node itself or a hash of one of taskhold's own hold invoices (the
  payment would be held by our own node, funded by our own liquidity), and never a hash some
  other payout already pays or the node already paid (a success the node reports for that hash
  would settle the hold without paying anyone).
"""

from __future__ import annotations

from typing import Any

from taskhold.errors import Invalid, RefusalCode
from taskhold.lightning.base import InvoiceNotFound, PaymentStatus
from taskhold.lightning.pool import PoolBackend
from taskhold.settings import Settings
from taskhold.store import Tx

from .context import PaymentContext
from .invoices import DecodedInvoice

__all__ = [
    "ROUTE_PADDING_BLOCKS",
    "budget_now",
    "check_payout_invoice",
    "cltv_budget",
    "payout_fee_cap_msat",
    "payout_terms",
]

ROUTE_PADDING_BLOCKS = 3
"""lnd's ``routing.BlockPadding``: added to the final CLTV and counted against the limit."""


def payout_fee_cap_msat(settings: Settings, amount_msat: int, *, earned_msat: int) -> int:
    """The routing fee a payout may cost: the configured cap, but never more than the operator
    earns on what the payout stands behind (``earned_msat``; 0 for a forfeited deposit, which
    then uses ``deposit_payout_max_fee_msat``)."""
    configured = max(settings.payout_min_fee_msat, amount_msat * settings.payout_fee_ppm // 10**6)
    return min(configured, earned_msat)


def payout_terms(settings: Settings) -> dict[str, Any]:
    """The payout rules as published in the operator's terms (``GET /v1/info``)."""
    return {
        "fee_cap": "min(max(min_fee_msat, fee_ppm of the payout), the task's operator fee)",
        "fee_ppm": settings.payout_fee_ppm,
        "min_fee_msat": settings.payout_min_fee_msat,
        "deposit_max_fee_msat": settings.deposit_payout_max_fee_msat,
        "cltv_limit": "the hold's expiry - height - guard_blocks - cltv_margin_blocks",
        "guard_blocks": settings.guard_blocks,
        "cltv_margin_blocks": settings.payout_cltv_margin_blocks,
        "cltv_reserve_blocks": settings.payout_cltv_reserve_blocks,
        "route_padding_blocks": ROUTE_PADDING_BLOCKS,
        "split": SPLIT_TERMS,
    }


SPLIT_TERMS = {
    "order": "the worker's share to their payout invoice, then the employer's to their refund"
    " invoice (op refund-invoice), then the hold is settled",
    "fee_cap": "both shares' routing fees together stay within the fee cap of the whole payout",
    "unwind": "if the worker's share is not paid by the guard margin, the whole task is"
    " refunded (hold cancelled)",
    "fallback": "if the worker's share was paid (or may still land) and the employer's is not,"
    " the hold is settled at the guard margin and the employer's share stays owed, paid as soon"
    " as their refund invoice can be paid; it is never cancelled after the worker was paid",
}
"""How a split is paid out, published with the payout rules (``taskhold.escrow.split``)."""


def cltv_budget(settings: Settings, *, expiry_height: int, height: int) -> int:
    """The most blocks of time lock a payout sent at ``height`` may carry: its HTLC must be
    resolved before the guardian has to decide the hold expiring at ``expiry_height``."""
    return expiry_height - height - settings.guard_blocks - settings.payout_cltv_margin_blocks


async def budget_now(
    ctx: PaymentContext, expiry_height: int | None, *, hold_settled: bool = False
) -> int | None:
    """:func:`cltv_budget` at the node's height now; None while no HTLC is held. A settled hold
    (the declared fallback) has nothing left to outlive: the usual cap applies."""
    if hold_settled:
        return ctx.settings.max_cltv_expiry_delta
    if expiry_height is None:
        return None
    height = await ctx.lightning.block_height()
    return cltv_budget(ctx.settings, expiry_height=expiry_height, height=height)


async def check_payout_invoice(
    ctx: PaymentContext,
    tx: Tx,
    invoice: DecodedInvoice,
    *,
    owner: str,
    budget_blocks: int | None,
    accepting: bool,
) -> None:
    """Refuse (422, stable code) an invoice that paying could lose money with.

    ``owner`` names the payout (``task/<id>`` or ``deposit/<hash>``) so its own earlier row is
    not held against it. ``budget_blocks`` is the hold's :func:`cltv_budget` now (None while
    nothing is held). ``accepting``: the invoice is new, so the node must never have paid its
    hash; when paying, the caller tells a payment of its own from someone else's.
    """
    if invoice.payee_pubkey_hex in await _escrow_pubkeys(ctx):
        raise Invalid(
            "payout_invoice is an invoice of the escrow node itself; give an invoice of your"
            " own node",
            code=RefusalCode.PAYOUT_TO_ESCROW_NODE,
        )
    payment_hash = bytes.fromhex(invoice.payment_hash_hex)
    if await tx.issued_hold_hash(invoice.payment_hash_hex) or await _node_issued(ctx, payment_hash):
        raise Invalid(
            "payout_invoice uses the payment hash of one of taskhold's own hold invoices",
            code=RefusalCode.HASH_REUSED,
        )
    if await tx.payout_owners(invoice.payment_hash_hex) - {owner}:
        raise Invalid(
            "payout_invoice's payment hash is already used by another payout; make a new invoice",
            code=RefusalCode.PAYOUT_HASH_REUSED,
        )
    if accepting:
        known = await ctx.lightning.lookup_payment(payment_hash)
        if known.status is not PaymentStatus.UNKNOWN:
            raise Invalid(
                "the escrow node already paid (or tried) this payment hash; make a new invoice",
                code=RefusalCode.PAYOUT_HASH_REUSED,
            )
    if budget_blocks is not None:
        needed = invoice.min_final_cltv_expiry + ROUTE_PADDING_BLOCKS
        if needed > budget_blocks:
            raise Invalid(
                f"payout_invoice asks for a final CLTV of {invoice.min_final_cltv_expiry} blocks;"
                f" the hold behind it leaves at most {budget_blocks - ROUTE_PADDING_BLOCKS}:"
                " make an invoice with a smaller cltv_expiry",
                code=RefusalCode.PAYOUT_CLTV_TOO_LONG,
            )


async def _escrow_pubkeys(ctx: PaymentContext) -> frozenset[str]:
    """The escrow node's identity key; every member's in a pool."""
    if isinstance(ctx.lightning, PoolBackend):
        return await ctx.lightning.member_pubkeys() | {await ctx.lightning.node_pubkey()}
    return frozenset({await ctx.lightning.node_pubkey()})


async def _node_issued(ctx: PaymentContext, payment_hash: bytes) -> bool:
    try:
        await ctx.lightning.lookup_invoice(payment_hash)
    except InvoiceNotFound:
        return False
    return True
