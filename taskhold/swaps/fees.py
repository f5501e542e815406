"""What a swap costs, computed by the client itself (Boltz docs: swap-limits-and-fees).

The party who pays sees a :class:`FeeQuote` before committing, and Boltz's stated amount
(``expectedAmount`` of a submarine swap, ``onchainAmount`` of a reverse one) must equal the
figure computed here from the pair's fees: a server that asks for more is refused. Percentages
are ``Decimal`` and amounts whole sats; percentage fees round up, received amounts round down,
as Boltz rounds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from .errors import SwapError, SwapMismatch

__all__ = [
    "FeeQuote",
    "check_limits",
    "check_stated_amount",
    "percentage_fee",
    "reverse_invoice_for_onchain",
    "reverse_quote",
    "submarine_quote",
]


def _check(amount: int, percentage: Decimal, *fees: int) -> None:
    if amount <= 0 or any(f < 0 for f in fees):
        raise SwapError(f"amounts must be positive and fees not negative: {amount}, {fees}")
    if not Decimal(0) <= percentage < Decimal(100):
        raise SwapError(f"a fee percentage must lie in [0, 100): {percentage}")


def percentage_fee(amount_sat: int, percentage: Decimal) -> int:
    """``ceil(amount * percentage / 100)``: Boltz rounds its percentage fee up."""
    exact = Decimal(amount_sat) * Decimal(percentage) / Decimal(100)
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True, slots=True)
class FeeQuote:
    """A swap's figures, in sats, as shown to the party who pays before funds move.

    ``payer_sends``: the on-chain lockup (submarine) or the invoice paid (reverse).
    ``recipient_gets``: the invoice paid (submarine) or what lands at the claim address after
    the claim's estimated miner fee (reverse). ``stated_amount``: the figure Boltz's answer must
    state (``expectedAmount`` / ``onchainAmount``). Always ``payer_sends - recipient_gets ==
    swap_fee + miner_fees``."""

    payer_sends: int
    recipient_gets: int
    swap_fee: int
    miner_fees: int
    stated_amount: int


def submarine_quote(invoice_sat: int, percentage: Decimal, miner_fee: int) -> FeeQuote:
    """Chain to Lightning: lock ``invoice + minerFee + ceil(invoice * pct)``."""
    _check(invoice_sat, percentage, miner_fee)
    fee = percentage_fee(invoice_sat, percentage)
    sends = invoice_sat + miner_fee + fee
    return FeeQuote(sends, invoice_sat, fee, miner_fee, stated_amount=sends)


def reverse_quote(
    invoice_sat: int, percentage: Decimal, lockup_fee: int, claim_fee: int = 0
) -> FeeQuote:
    """Lightning to chain: Boltz locks ``floor(invoice - ceil(invoice * pct) - lockupFee)``;
    the claim's miner fee (an estimate) comes out of that when the recipient claims."""
    _check(invoice_sat, percentage, lockup_fee, claim_fee)
    fee = percentage_fee(invoice_sat, percentage)
    onchain = int((Decimal(invoice_sat) - fee - lockup_fee).to_integral_value(rounding=ROUND_FLOOR))
    gets = onchain - claim_fee
    if gets <= 0:
        raise SwapError(
            f"an invoice of {invoice_sat} sat leaves nothing after a swap fee of {fee}, a lockup"
            f" fee of {lockup_fee} and a claim fee of {claim_fee}"
        )
    return FeeQuote(invoice_sat, gets, fee, lockup_fee + claim_fee, stated_amount=onchain)


def reverse_invoice_for_onchain(onchain_sat: int, percentage: Decimal, lockup_fee: int) -> int:
    """The invoice amount Boltz asks for a wanted lockup: ``ceil((onchain + lockupFee) /
    (1 - pct))``, Boltz's own inverse."""
    _check(onchain_sat, percentage, lockup_fee)
    exact = Decimal(onchain_sat + lockup_fee) / (1 - Decimal(percentage) / 100)
    return math.ceil(exact)


def check_limits(invoice_sat: int, *, minimal: int, maximal: int) -> None:
    """Boltz's pair limits bound the invoice amount; below ``minimal`` (about 50,000 sat on
    mainnet) a task cannot use an on-chain swap at all, so say so before creating one."""
    if not minimal <= invoice_sat <= maximal:
        raise SwapError(
            f"a swap of {invoice_sat} sat is outside Boltz's limits for this pair"
            f" ({minimal} to {maximal} sat)"
        )


def check_stated_amount(quote: FeeQuote, stated: int, field: str) -> None:
    """Boltz's ``field`` must be exactly the figure computed from the pair's published fees."""
    if stated != quote.stated_amount:
        raise SwapMismatch(
            f"Boltz states {field} = {stated} sat, but its published fees give"
            f" {quote.stated_amount} sat (swap fee {quote.swap_fee}, miner fees"
            f" {quote.miner_fees})"
        )
