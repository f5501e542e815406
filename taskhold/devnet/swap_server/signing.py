"""The server's half of the swap signatures: MuSig2 partials for the client's cooperative spends,
its own cooperative submarine claim, and its unilateral script-path claims and refunds.

Keys are aggregated [server key, client key] (Boltz's order, never sorted) and tweaked with the
swap tree, exactly as the client's :mod:`taskhold.swaps.cooperative` does. Every partial
signature is refused unless the swap is in a state where Boltz would give it: a refund
signature while the server's payment may still land, or a claim signature before the preimage
was shown, would let the client take both sides.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from coincurve import PrivateKey
from embit.script import Witness, address_to_scriptpubkey
from embit.transaction import Transaction

from taskhold.lightning.base import PaymentStatus
from taskhold.swaps.errors import SwapError
from taskhold.swaps.musig import NoncePair, Session, nonce_gen
from taskhold.swaps.tree import SwapTree, SwapType
from taskhold.swaps.tx import (
    SwapUtxo,
    build_spend,
    finish_key_path,
    key_path_sighash,
    leaf_sighash,
    refund_script_path,
)

from .lifecycle import COOPERATIVE_REFUND_STATES, REVERSE_CLAIM_SIGNING_STATES
from .records import SwapRecord

__all__ = [
    "ClaimOffer",
    "SigningRefused",
    "check_preimage",
    "claim_offer",
    "cooperative_refund",
    "cooperative_reverse_claim",
    "finish_claim",
    "lockup_utxo",
    "parse_spend",
    "reverse_script_path_refund",
    "script_pubkey_of",
    "submarine_claim_tx",
    "submarine_script_path_claim",
]


class SigningRefused(ValueError):
    """The server will not sign (wrong state, bad input): an HTTP 400 for the client."""


def script_pubkey_of(address: str) -> bytes:
    try:
        spk: bytes = address_to_scriptpubkey(address).data
    except Exception as exc:  # embit raises several kinds for a bad address
        raise SigningRefused(f"not an address: {address!r}") from exc
    return spk


def lockup_utxo(record: SwapRecord, tree: SwapTree | None = None) -> SwapUtxo:
    if record.lockup_txid is None or record.lockup_vout is None or record.lockup_amount_sat is None:
        raise SigningRefused("no lockup transaction is known for this swap")
    return SwapUtxo(
        record.lockup_txid, record.lockup_vout, record.lockup_amount_sat, tree or record.tree()
    )


def parse_spend(record: SwapRecord, tx_hex: str, index: int) -> tuple[Transaction, SwapUtxo]:
    """The client's unsigned spend of the lockup: one input (``index`` 0) spending exactly it.

    One input only: the key-path message commits to every input's amount, and the server knows
    only its swap's."""
    try:
        tx = Transaction.parse(bytes.fromhex(tx_hex))
    except Exception as exc:
        raise SigningRefused("transaction is not a valid hex-encoded transaction") from exc
    if len(tx.vin) != 1 or index != 0:
        raise SigningRefused("only a one-input spend of the lockup (index 0) is co-signed")
    if not tx.vout:
        raise SigningRefused("the transaction has no outputs")
    utxo = lockup_utxo(record)
    spent = tx.vin[0]
    if spent.txid.hex() != utxo.txid or spent.vout != utxo.vout:
        raise SigningRefused("the transaction does not spend this swap's lockup output")
    return tx, utxo


def _parse_nonce(pub_nonce_hex: str) -> bytes:
    try:
        nonce = bytes.fromhex(pub_nonce_hex)
    except ValueError:
        raise SigningRefused("pubNonce is not hex") from None
    if len(nonce) != 66:
        raise SigningRefused("pubNonce must be 66 bytes")
    return nonce


def _partial_for(
    record: SwapRecord, tx: Transaction, utxo: SwapUtxo, pub_nonce_hex: str
) -> tuple[bytes, bytes]:
    client_nonce = _parse_nonce(pub_nonce_hex)
    msg = key_path_sighash(tx, utxo)
    ours = nonce_gen(record.server_seckey, utxo.tree.key_agg, msg)
    try:
        session = Session(utxo.tree.key_agg, [ours.public, client_nonce], msg)
        return ours.public, session.sign(ours.secret, record.server_seckey)
    except SwapError as exc:
        raise SigningRefused(f"cannot sign: {exc}") from exc


def cooperative_refund(
    record: SwapRecord,
    *,
    payment: PaymentStatus,
    tx_hex: str,
    index: int,
    pub_nonce_hex: str,
) -> tuple[bytes, bytes]:
    """(server nonce, server partial) for the client's key-path refund of a submarine lockup.

    Only once the swap failed and with no payment of the invoice pending or done: otherwise the
    server could pay the invoice and lose the lockup it was to claim."""
    if record.kind is not SwapType.SUBMARINE:
        raise SigningRefused("only a submarine swap is refunded to the client")
    if record.status not in COOPERATIVE_REFUND_STATES:
        raise SigningRefused(
            f"swap in state {record.status} is not eligible for a cooperative refund"
        )
    if payment in (PaymentStatus.IN_FLIGHT, PaymentStatus.SUCCEEDED):
        raise SigningRefused("the invoice payment of this swap is pending or succeeded")
    tx, utxo = parse_spend(record, tx_hex, index)
    return _partial_for(record, tx, utxo, pub_nonce_hex)


def check_preimage(record: SwapRecord, preimage_hex: str) -> bytes:
    try:
        preimage = bytes.fromhex(preimage_hex)
    except ValueError:
        raise SigningRefused("preimage is not hex") from None
    if len(preimage) != 32 or hashlib.sha256(preimage).digest() != record.preimage_hash:
        raise SigningRefused("incorrect preimage")
    return preimage


def cooperative_reverse_claim(
    record: SwapRecord, *, tx_hex: str, index: int, pub_nonce_hex: str
) -> tuple[bytes, bytes]:
    """(server nonce, server partial) for the client's key-path claim of a reverse lockup; the
    caller has checked the preimage and settled the invoice first."""
    if record.kind is not SwapType.REVERSE:
        raise SigningRefused("only a reverse swap is claimed by the client")
    if record.status not in REVERSE_CLAIM_SIGNING_STATES:
        raise SigningRefused(
            f"swap in state {record.status} is not eligible for a cooperative claim"
        )
    tx, utxo = parse_spend(record, tx_hex, index)
    return _partial_for(record, tx, utxo, pub_nonce_hex)


# -- the server's claim of a submarine lockup --------------------------------------------------


def submarine_claim_tx(record: SwapRecord, destination: str, fee_sat: int) -> str:
    """The unsigned claim of the client's lockup to the server's wallet (hex)."""
    try:
        tx = build_spend(lockup_utxo(record), script_pubkey_of(destination), fee_sat)
    except SwapError as exc:
        raise SigningRefused(f"cannot build the claim: {exc}") from exc
    hex_tx: str = tx.serialize().hex()
    return hex_tx


@dataclass
class ClaimOffer:
    """The server's open cooperative-claim session for one swap (kept in memory only: a nonce
    is never written down, so after a restart the server claims by the script path)."""

    tree: SwapTree
    tx_hex: str
    sighash: bytes
    nonce: NoncePair


def claim_offer(record: SwapRecord) -> ClaimOffer:
    if record.claim_tx_hex is None:
        raise SigningRefused("the server has no claim transaction for this swap yet")
    tree = record.tree()
    tx = Transaction.parse(bytes.fromhex(record.claim_tx_hex))
    sighash = key_path_sighash(tx, lockup_utxo(record, tree))
    return ClaimOffer(
        tree, record.claim_tx_hex, sighash, nonce_gen(record.server_seckey, tree.key_agg, sighash)
    )


def finish_claim(
    record: SwapRecord, offer: ClaimOffer, *, pub_nonce_hex: str, partial_hex: str
) -> str:
    """Check the client's partial, add ours, and return the signed key-path claim (hex)."""
    client_nonce = _parse_nonce(pub_nonce_hex)
    try:
        partial = bytes.fromhex(partial_hex)
    except ValueError:
        raise SigningRefused("partialSignature is not hex") from None
    tx = Transaction.parse(bytes.fromhex(offer.tx_hex))
    utxo = lockup_utxo(record, offer.tree)
    try:
        session = Session(offer.tree.key_agg, [offer.nonce.public, client_nonce], offer.sighash)
        if not session.verify_partial(partial, offer.tree.key_agg.pubkeys[1]):
            raise SigningRefused("the partial signature does not verify")
        ours = session.sign(offer.nonce.secret, record.server_seckey)
        signed = finish_key_path(tx, utxo, session.aggregate([ours, partial]))
    except SwapError as exc:
        raise SigningRefused(f"cannot finish the claim: {exc}") from exc
    hex_tx: str = signed.serialize().hex()
    return hex_tx


def submarine_script_path_claim(record: SwapRecord) -> str:
    """The server's unilateral claim: witness [sig, preimage, claim leaf, control block]."""
    if record.claim_tx_hex is None or record.preimage_hex is None:
        raise SigningRefused("the claim needs the claim transaction and the preimage")
    tree = record.tree()
    utxo = lockup_utxo(record, tree)
    tx = Transaction.parse(bytes.fromhex(record.claim_tx_hex))
    sig = PrivateKey(record.server_seckey).sign_schnorr(leaf_sighash(tx, utxo, tree.claim_leaf))
    preimage = bytes.fromhex(record.preimage_hex)
    tx.vin[0].witness = Witness(
        [sig, preimage, tree.claim_leaf, tree.control_block(tree.claim_leaf)]
    )
    hex_tx: str = tx.serialize().hex()
    return hex_tx


def reverse_script_path_refund(
    record: SwapRecord, destination: str, fee_sat: int, *, locktime: int
) -> str:
    """The server's refund of its own reverse lockup after the timeout (refund leaf)."""
    try:
        tx = refund_script_path(
            lockup_utxo(record),
            script_pubkey_of(destination),
            fee_sat,
            refund_seckey=record.server_seckey,
            locktime=locktime,
        )
    except SwapError as exc:
        raise SigningRefused(f"cannot build the refund: {exc}") from exc
    hex_tx: str = tx.serialize().hex()
    return hex_tx
