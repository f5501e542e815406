"""Whether a swap's clocks fit the task's, checked before any coins lock (issue #14, point 4).

Submarine funding: Boltz pays taskhold's hold invoice with ``cltvLimit = (timeoutBlockHeight -
height) - 20`` so its Lightning HTLC ends before the client's on-chain refund path opens. The
hold invoice's CLTV delta must fit under that limit, and the hold must still last past the
task's deadline and windows once lnd's ``holdexpirydelta`` (and taskhold's guardian margin)
are taken off. Boltz also refuses an invoice valid for less than two block times.

Reverse payout: taskhold pays Boltz's invoice like any payout, so the invoice's final CLTV plus
the route's must stay within the payout bound; and Boltz's on-chain timeout must leave the
worker time to claim after the lockup appears.

Each check raises ``SwapTimingError`` listing every number it used, so the person refused can
see which clock is short.
"""

from __future__ import annotations

import math

from .errors import SwapTimingError

__all__ = [
    "BOLTZ_CLTV_DELTA",
    "MIN_SUBMARINE_INVOICE_EXPIRY_S",
    "check_reverse_fits",
    "check_submarine_fits",
    "submarine_cltv_limit",
]

BOLTZ_CLTV_DELTA = 20
"""Blocks Boltz keeps between its Lightning payment's time lock and the on-chain timeout."""
MIN_SUBMARINE_INVOICE_EXPIRY_S = 1200
"""Boltz refuses a submarine invoice that stays valid less than two block times."""


def submarine_cltv_limit(
    timeout_block_height: int, height: int, boltz_cltv_delta: int = BOLTZ_CLTV_DELTA
) -> int:
    """The largest total time lock Boltz will give its payment of the invoice."""
    return (timeout_block_height - height) - boltz_cltv_delta


def _refuse(problem: str, numbers: dict[str, int]) -> SwapTimingError:
    listed = ", ".join(f"{name}={value}" for name, value in numbers.items())
    return SwapTimingError(f"{problem} ({listed})")


def check_submarine_fits(
    *,
    timeout_block_height: int,
    height: int,
    invoice_cltv_expiry_delta: int,
    invoice_expiry_s: int,
    hold_seconds: int,
    hold_expiry_delta: int = 12,
    guardian_margin_blocks: int = 0,
    block_time_s: int = 600,
    boltz_cltv_delta: int = BOLTZ_CLTV_DELTA,
) -> None:
    """Refuse a submarine swap into a hold invoice whose clocks cannot fit.

    ``invoice_expiry_s``: how long the hold invoice stays payable from now. ``hold_seconds``:
    how long taskhold must keep the HTLC (to the task's deadline plus its review and payout
    windows). ``hold_expiry_delta`` and ``guardian_margin_blocks`` come from the settings."""
    limit = submarine_cltv_limit(timeout_block_height, height, boltz_cltv_delta)
    hold_blocks = math.ceil(hold_seconds / block_time_s)
    usable = invoice_cltv_expiry_delta - hold_expiry_delta - guardian_margin_blocks
    numbers = {
        "timeout_block_height": timeout_block_height,
        "height": height,
        "boltz_cltv_delta": boltz_cltv_delta,
        "cltv_limit": limit,
        "invoice_cltv_expiry_delta": invoice_cltv_expiry_delta,
        "hold_expiry_delta": hold_expiry_delta,
        "guardian_margin_blocks": guardian_margin_blocks,
        "hold_seconds": hold_seconds,
        "block_time_s": block_time_s,
        "hold_blocks": hold_blocks,
        "hold_blocks_usable": usable,
        "invoice_expiry_s": invoice_expiry_s,
    }
    if timeout_block_height <= height:
        raise _refuse("the swap's timeout has already passed", numbers)
    if invoice_cltv_expiry_delta > limit:
        raise _refuse(
            "Boltz cannot pay this hold invoice: its CLTV delta exceeds the swap's cltvLimit",
            numbers,
        )
    if hold_blocks >= usable:
        raise _refuse(
            "the hold invoice would expire before the task's deadline and windows end", numbers
        )
    if invoice_expiry_s < MIN_SUBMARINE_INVOICE_EXPIRY_S:
        raise _refuse(
            f"the invoice must stay payable at least {MIN_SUBMARINE_INVOICE_EXPIRY_S} s", numbers
        )


def check_reverse_fits(
    *,
    invoice_min_final_cltv: int,
    route_cltv: int,
    payout_cltv_limit: int,
    timeout_block_height: int,
    height: int,
    claim_blocks: int,
    invoice_expiry_s: int,
    min_invoice_validity_s: int = 600,
) -> None:
    """Refuse a reverse swap whose invoice taskhold could not pay as a payout, or whose lockup
    the worker could not claim in time.

    ``route_cltv``: the time lock the route to Boltz's node adds (0 when unknown yet, the
    payment step checks again). ``payout_cltv_limit``: taskhold's bound for this payout
    (``payments.rules.cltv_budget``). ``claim_blocks``: blocks the worker needs between the
    lockup and Boltz's timeout to confirm a claim. ``invoice_expiry_s``: how long Boltz's
    invoice stays payable; ``min_invoice_validity_s`` is ``payout_min_validity_s``."""
    total = invoice_min_final_cltv + route_cltv
    numbers = {
        "invoice_min_final_cltv": invoice_min_final_cltv,
        "route_cltv": route_cltv,
        "payout_cltv_total": total,
        "payout_cltv_limit": payout_cltv_limit,
        "timeout_block_height": timeout_block_height,
        "height": height,
        "blocks_to_timeout": timeout_block_height - height,
        "claim_blocks": claim_blocks,
        "invoice_expiry_s": invoice_expiry_s,
        "min_invoice_validity_s": min_invoice_validity_s,
    }
    if total > payout_cltv_limit:
        raise _refuse("the payout's time lock would exceed taskhold's payout bound", numbers)
    if timeout_block_height - height < claim_blocks:
        raise _refuse(
            "Boltz's on-chain timeout leaves the worker too little time to claim", numbers
        )
    if invoice_expiry_s < min_invoice_validity_s:
        raise _refuse("Boltz's invoice would expire before the payout can be sent", numbers)
