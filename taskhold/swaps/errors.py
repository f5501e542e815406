"""The swap crypto's one exception tree.

All are ``ValueError``s about the input (a key, nonce, swap fact or spend), never faults; a
caller facing a user (the API, the participant CLI) maps ``SwapError`` to its refusal at its
own boundary, so this package stays free of HTTP concerns.
"""

from __future__ import annotations

__all__ = ["MusigError", "SpendError", "SwapError", "TreeError"]


class SwapError(ValueError):
    """Bad input to the swap cryptography."""


class MusigError(SwapError):
    """Bad input to a MuSig2 step (a malformed key, nonce or signature, a reused nonce)."""


class TreeError(SwapError):
    """Bad swap facts: a wrong-sized key or hash, an impossible timeout, a bad address."""


class SpendError(SwapError):
    """A swap spend that cannot be built or would not be valid on chain."""
