"""A payee whose own node holds taskhold's payment: the hostile side of every payout test.

The payee issues a hold invoice of its own, so the escrow node's payment to it stays in flight
(accepted, neither settled nor failed) for as long as the payee likes; it knows the preimage and
can take the money at any moment, which is what makes a refund under it dangerous."""

from __future__ import annotations

import hashlib
import os

from taskhold.lightning.base import HoldInvoice
from taskhold.lightning.sim import SimNode

__all__ = ["DAY_S", "held_by_payee"]

DAY_S = 86_400


async def held_by_payee(
    node: SimNode, amount_msat: int, *, memo: str = "payout", cltv_expiry_delta: int = 40
) -> tuple[bytes, HoldInvoice]:
    """The payee's preimage and its hold invoice for ``amount_msat``."""
    preimage = os.urandom(32)
    invoice = await node.create_hold_invoice(
        hashlib.sha256(preimage).digest(),
        amount_msat,
        memo=memo,
        expiry_seconds=DAY_S,
        cltv_expiry_delta=cltv_expiry_delta,
    )
    return preimage, invoice
