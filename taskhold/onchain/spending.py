"""Spending a swap's lockup: find the output, build the spend, cooperative first.

A refund (submarine) or a claim (reverse) is first offered to Boltz for its MuSig2 half: the
key-path spend is smaller and looks like any taproot payment. When Boltz refuses, is away or
answers with a partial signature that does not verify, the client falls back to the script
path it holds alone: the refund leaf once the timeout has passed, the claim leaf with the
preimage at any time before it. The fallback never depends on Boltz.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from embit.script import address_to_scriptpubkey
from embit.transaction import Transaction

from taskhold.boltz.api import BoltzApi
from taskhold.boltz.errors import BoltzError
from taskhold.boltz.models import PartialSignature
from taskhold.swaps.cooperative import finish_cooperative_spend, start_cooperative_spend
from taskhold.swaps.errors import SpendError, SwapError, SwapMismatch
from taskhold.swaps.tree import SwapTree
from taskhold.swaps.tx import (
    SwapUtxo,
    build_spend,
    refund_script_path,
    reverse_claim_script_path,
)

__all__ = [
    "SPEND_FEE_SAT",
    "RefundNotYet",
    "Spend",
    "claim_reverse_lockup",
    "destination_script",
    "lockup_utxo",
    "refund_submarine_lockup",
]

SPEND_FEE_SAT = 500
"""The miner fee of a one-in, one-out taproot spend (about 111 vB at 4.5 sat/vB); callers on a
busier chain pass their own."""


class RefundNotYet(SwapError):
    """Boltz will not co-sign the refund and the refund path opens only at the timeout."""


@dataclass(frozen=True, slots=True)
class Spend:
    """A signed spend of a swap's lockup, and which path it took."""

    tx: Transaction
    cooperative: bool

    @property
    def txid(self) -> str:
        return str(self.tx.txid().hex())

    @property
    def hex(self) -> str:
        return str(self.tx.serialize().hex())


def destination_script(address: str) -> bytes:
    """The output script of the address a claim or refund pays to."""
    try:
        return bytes(address_to_scriptpubkey(address).data)
    except Exception:  # embit raises several kinds for a malformed address
        raise SpendError(f"not a bitcoin address: {address[:90]!r}") from None


def lockup_utxo(tx_hex: str, tree: SwapTree) -> SwapUtxo:
    """The output of ``tx_hex`` that pays the swap tree's key; refuses a transaction without."""
    try:
        tx = Transaction.from_string(tx_hex)
    except Exception:
        raise SwapMismatch("the lockup is not a bitcoin transaction") from None
    for vout, out in enumerate(tx.vout):
        if bytes(out.script_pubkey.data) == tree.script_pubkey:
            return SwapUtxo(str(tx.txid().hex()), vout, int(out.value), tree)
    raise SwapMismatch("the lockup transaction has no output to the swap's address")


async def _cooperatively(
    tx: Transaction,
    utxo: SwapUtxo,
    seckey: bytes,
    ask: Callable[[bytes, str], Awaitable[PartialSignature]],
) -> Spend | None:
    """The key-path spend with Boltz's partial signature; None when Boltz refuses, is away, or
    answers with a partial that does not verify (the caller then takes its script path)."""
    ours = start_cooperative_spend(tx, utxo, seckey)
    try:
        answer = await ask(ours.public, tx.serialize().hex())
        signed = finish_cooperative_spend(
            tx,
            utxo,
            seckey,
            ours,
            boltz_pubnonce=answer.pub_nonce,
            boltz_partial=answer.partial_signature,
        )
    except (BoltzError, SwapError):
        return None
    return Spend(signed, cooperative=True)


async def refund_submarine_lockup(
    api: BoltzApi,
    swap_id: str,
    utxo: SwapUtxo,
    refund_seckey: bytes,
    destination: bytes,
    *,
    fee_sat: int = SPEND_FEE_SAT,
) -> Spend:
    """A cooperative refund if Boltz co-signs, else the refund leaf once the timeout passed."""
    tx = build_spend(utxo, destination, fee_sat)

    async def ask(pub_nonce: bytes, tx_hex: str) -> PartialSignature:
        return await api.submarine_refund_signature(swap_id, pub_nonce, tx_hex, 0)

    signed = await _cooperatively(tx, utxo, refund_seckey, ask)
    if signed is not None:
        return signed
    height = await api.chain_height()
    timeout = utxo.tree.timeout_block_height
    if height < timeout:
        raise RefundNotYet(
            f"Boltz did not co-sign the refund of swap {swap_id}, and its refund path opens at"
            f" block {timeout} (now {height}): try again then"
        )
    script = refund_script_path(
        utxo, destination, fee_sat, refund_seckey=refund_seckey, locktime=height
    )
    return Spend(script, cooperative=False)


async def claim_reverse_lockup(
    api: BoltzApi,
    swap_id: str,
    utxo: SwapUtxo,
    claim_seckey: bytes,
    preimage: bytes,
    destination: bytes,
    *,
    fee_sat: int = SPEND_FEE_SAT,
) -> Spend:
    """A cooperative claim if Boltz co-signs, else the claim leaf with the preimage."""
    tx = build_spend(utxo, destination, fee_sat)

    async def ask(pub_nonce: bytes, tx_hex: str) -> PartialSignature:
        return await api.reverse_claim_signature(swap_id, preimage, pub_nonce, tx_hex, 0)

    signed = await _cooperatively(tx, utxo, claim_seckey, ask)
    if signed is not None:
        return signed
    script = reverse_claim_script_path(
        utxo, destination, fee_sat, claim_seckey=claim_seckey, preimage=preimage
    )
    return Spend(script, cooperative=False)
