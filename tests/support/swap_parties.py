"""The two parties of a test swap (Boltz and the client), their preimage and a tree for them:
one set of facts for the spend and cooperative-signing tests."""

from __future__ import annotations

import hashlib

from coincurve import PrivateKey

from taskhold.swaps.tree import SwapTree, SwapType, swap_tree

BOLTZ_SK = hashlib.sha256(b"boltz").digest()
CLIENT_SK = hashlib.sha256(b"client").digest()
PREIMAGE = hashlib.sha256(b"preimage").digest()
PAYMENT_HASH = hashlib.sha256(PREIMAGE).digest()
TIMEOUT = 850_123
DEST = b"\x51\x20" + b"\x42" * 32
"""A P2TR scriptPubKey to spend to."""


def tree_for(swap_type: SwapType) -> SwapTree:
    """The swap tree of Boltz's and the client's keys over ``PREIMAGE``, timing out at
    ``TIMEOUT``."""
    return swap_tree(
        swap_type,
        boltz_pubkey=PrivateKey(BOLTZ_SK).public_key.format(),
        client_pubkey=PrivateKey(CLIENT_SK).public_key.format(),
        preimage_hash=PAYMENT_HASH,
        timeout_block_height=TIMEOUT,
    )
