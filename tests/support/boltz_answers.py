"""Boltz API v2 answers for the client's tests, built from Boltz's published tree vectors (so
they also verify) and the fee examples of its docs."""

from __future__ import annotations

from typing import Any

from support.bolt11_invoices import invoice
from support.swap_parties import BOLTZ_CLIENT_VECTORS
from taskhold.swaps.tree import SwapType

REVERSE, SUBMARINE = (
    next(v for v in BOLTZ_CLIENT_VECTORS if v.swap_type is kind)
    for kind in (SwapType.REVERSE, SwapType.SUBMARINE)
)
NONCE = "02" + "11" * 32 + "03" + "22" * 32
PARTIAL = "33" * 32
TXID = "44" * 32


def tree(claim: str, refund: str) -> dict[str, Any]:
    return {
        "claimLeaf": {"version": 192, "output": claim},
        "refundLeaf": {"version": 192, "output": refund},
    }


def submarine_response() -> dict[str, Any]:
    return {
        "id": "sub1",
        "address": SUBMARINE.address,
        "bip21": f"bitcoin:{SUBMARINE.address}?amount=0.00104479",
        "expectedAmount": 104_479,
        "acceptZeroConf": False,
        "claimPublicKey": SUBMARINE.boltz_key,
        "timeoutBlockHeight": SUBMARINE.timeout,
        "swapTree": tree(SUBMARINE.claim, SUBMARINE.refund),
    }


def reverse_response() -> dict[str, Any]:
    return {
        "id": "rev1",
        "invoice": invoice(bytes.fromhex(REVERSE.preimage_hash), 100_000),
        "lockupAddress": REVERSE.address,
        "refundPublicKey": REVERSE.boltz_key,
        "timeoutBlockHeight": REVERSE.timeout,
        "onchainAmount": 96_728,
        "swapTree": tree(REVERSE.claim, REVERSE.refund),
    }


def swap_status() -> dict[str, Any]:
    return {
        "status": "transaction.mempool",
        "zeroConfRejected": True,
        "transaction": {"id": TXID, "hex": "0200", "eta": 2},
    }


def failed_status() -> dict[str, Any]:
    return {
        "status": "transaction.lockupFailed",
        "failureReason": "invalid onchain amount",
        "failureDetails": {"expected": 104_479, "actual": 100_000},
        "transaction": {"id": TXID, "hex": "0200", "confirmed": True},
    }


def claim_details() -> dict[str, Any]:
    return {
        "preimage": "55" * 32,
        "pubNonce": NONCE,
        "publicKey": SUBMARINE.boltz_key,
        "transactionHash": "66" * 32,
    }


def partial_signature() -> dict[str, Any]:
    return {"pubNonce": NONCE, "partialSignature": PARTIAL}


def lockup_transaction() -> dict[str, Any]:
    return {"id": TXID, "hex": "0200", "timeoutBlockHeight": 1_008, "timeoutEta": 1_700_000_000}
