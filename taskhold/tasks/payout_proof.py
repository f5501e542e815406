"""The payout's own proof in a settlement entry: the preimage the payee's node gave up.

Whoever was paid signed their invoice's payment hash and amount in clear (``payout_hash``,
``payout_msat`` in their request); the entry that records the payout paid reveals the
payout's preimage, so anyone checks ``sha256(payout_preimage) == payout_hash``. Entries from
before the proof have none (``None``): they still fold.
"""

from __future__ import annotations

import hashlib

from taskhold.errors import Invalid, RefusalCode

__all__ = ["check_payout_preimage"]


def check_payout_preimage(payout_preimage_hex: str | None, payout_hash_hex: str) -> None:
    """A payout preimage, when given, is the one of the payout's hash: the log never publishes
    a proof that does not prove."""
    if payout_preimage_hex is None:
        return
    try:
        preimage = bytes.fromhex(payout_preimage_hex)
    except ValueError:
        preimage = b""
    if len(preimage) != 32 or hashlib.sha256(preimage).hexdigest() != payout_hash_hex:
        raise Invalid(
            "the payout preimage does not hash to the payout's payment hash",
            code=RefusalCode.BAD_PREIMAGE,
        )
