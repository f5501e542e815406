"""The swap crypto's one exception tree.

All are ``ValueError``s about the input (a key, nonce, swap fact or spend), never faults; a
caller facing a user (the API, the participant CLI) maps ``SwapError`` to its refusal at its
own boundary, so this package stays free of HTTP concerns.
"""

from __future__ import annotations

__all__ = [
    "MusigError",
    "SpendError",
    "SwapError",
    "SwapMismatch",
    "SwapTimingError",
    "TreeError",
]


class SwapError(ValueError):
    """Bad input to the swap cryptography."""


class MusigError(SwapError):
    """Bad input to a MuSig2 step (a malformed key, nonce or signature, a reused nonce)."""


class TreeError(SwapError):
    """Bad swap facts: a wrong-sized key or hash, an impossible timeout, a bad address."""


class SpendError(SwapError):
    """A swap spend that cannot be built or would not be valid on chain."""


class SwapMismatch(SwapError):
    """Boltz's answer does not match what the client computed from its own facts (a leaf, the
    address, a key, the invoice, an amount): the swap must not be funded or handed on."""


class SwapTimingError(SwapError):
    """A swap's timeouts, the hold invoice's expiry and CLTV, the task's deadline and the payout
    bound cannot all hold together; the message lists every number involved."""
