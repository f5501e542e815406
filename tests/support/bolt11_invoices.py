"""BOLT11 invoices signed by a throwaway node key, for the client's invoice checks."""

from __future__ import annotations

import hashlib

import bolt11
from bolt11 import Bolt11, MilliSatoshi, Tag, TagChar, Tags

NODE_KEY = hashlib.sha256(b"boltz node").hexdigest()


def invoice(
    payment_hash: bytes,
    amount_sat: int,
    *,
    network: str = "bc",
    cltv: int = 80,
    expiry_s: int = 3600,
    date: int = 1_700_000_000,
) -> str:
    tags = Tags(
        [
            Tag(TagChar.payment_hash, payment_hash.hex()),
            Tag(TagChar.description, "reverse swap"),
            Tag(TagChar.payment_secret, hashlib.sha256(payment_hash).hexdigest()),
            Tag(TagChar.expire_time, expiry_s),
            Tag(TagChar.min_final_cltv_expiry, cltv),
        ]
    )
    raw = Bolt11(
        currency=network, amount_msat=MilliSatoshi(amount_sat * 1000), date=date, tags=tags
    )
    encoded: str = bolt11.encode(raw, NODE_KEY)
    return encoded
