"""Spending a swap output: the cooperative key path and the unilateral script paths.

The client builds these spends for itself (taskhold never holds the refund or claim key). Each
builder refuses a spend the chain would reject (a refund before its timeout, a preimage that
does not open the claim leaf, a signature that does not verify) with a clear error, instead of
producing a transaction that fails only at broadcast.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from coincurve import PrivateKey
from embit.script import Script, Witness
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput

from .errors import SpendError
from .musig import verify_schnorr
from .tree import LEAF_VERSION, SwapTree, SwapType, reverse_claim_leaf

__all__ = [
    "RBF_SEQUENCE",
    "SpendError",
    "SwapUtxo",
    "build_spend",
    "finish_key_path",
    "key_path_sighash",
    "leaf_sighash",
    "refund_script_path",
    "reverse_claim_script_path",
]

RBF_SEQUENCE = 0xFFFFFFFD  # not final, so nLockTime is enforced; also signals replaceability
P2TR_DUST_SAT = 330


@dataclass(frozen=True)
class SwapUtxo:
    """The swap's lockup output: where it is (txid in the usual display hex) and its tree."""

    txid: str
    vout: int
    amount_sat: int
    tree: SwapTree


def build_spend(
    utxo: SwapUtxo,
    destination_script_pubkey: bytes,
    fee_sat: int,
    *,
    locktime: int = 0,
    sequence: int = RBF_SEQUENCE,
) -> Transaction:
    """An unsigned one-in, one-out spend of ``utxo`` to ``destination_script_pubkey``."""
    if len(utxo.txid) != 64:
        raise SpendError("a txid is 32 bytes (64 hex characters)")
    if fee_sat < 0:
        raise SpendError("a fee cannot be negative")
    value = utxo.amount_sat - fee_sat
    if value < P2TR_DUST_SAT:
        raise SpendError(f"the fee leaves {value} sat, below the dust limit ({P2TR_DUST_SAT})")
    if not 0 <= locktime < 500_000_000:
        raise SpendError("nLockTime must be a block height")
    if locktime and sequence == 0xFFFFFFFF:
        raise SpendError("a final nSequence (0xffffffff) would switch nLockTime off")
    try:
        txid = bytes.fromhex(utxo.txid)
    except ValueError:
        raise SpendError("a txid is hex") from None
    vin = TransactionInput(txid, utxo.vout, sequence=sequence)
    vout = TransactionOutput(value, Script(destination_script_pubkey))
    return Transaction(version=2, vin=[vin], vout=[vout], locktime=locktime)


def _sighash(tx: Transaction, utxo: SwapUtxo, leaf: bytes | None) -> bytes:
    digest: bytes = tx.sighash_taproot(
        0,
        [Script(utxo.tree.script_pubkey)],
        [utxo.amount_sat],
        SIGHASH.DEFAULT,
        ext_flag=1 if leaf is not None else 0,
        script=Script(leaf) if leaf is not None else None,
        leaf_version=LEAF_VERSION,
    )
    return digest


def key_path_sighash(tx: Transaction, utxo: SwapUtxo) -> bytes:
    """The BIP-341 key-path message (SIGHASH_DEFAULT, all prevouts) both MuSig2 signers sign."""
    return _sighash(tx, utxo, None)


def leaf_sighash(tx: Transaction, utxo: SwapUtxo, leaf: bytes) -> bytes:
    """The BIP-341 script-path message for ``leaf`` (ext_flag 1, leaf version 0xc0)."""
    return _sighash(tx, utxo, leaf)


def finish_key_path(tx: Transaction, utxo: SwapUtxo, signature: bytes) -> Transaction:
    """Put the aggregate MuSig2 signature in the witness, once it verifies under the output key."""
    if len(signature) != 64:
        raise SpendError("a SIGHASH_DEFAULT key-path signature is 64 bytes")
    if not verify_schnorr(utxo.tree.output_xonly, key_path_sighash(tx, utxo), signature):
        raise SpendError("the aggregate signature does not verify under the swap's output key")
    tx.vin[0].witness = Witness([signature])
    return tx


def _private_key(seckey: bytes) -> PrivateKey:
    try:
        return PrivateKey(seckey)
    except ValueError:
        raise SpendError("not a valid secret key") from None


def _sign_leaf(tx: Transaction, utxo: SwapUtxo, leaf: bytes, seckey: bytes, key: bytes) -> bytes:
    private = _private_key(seckey)
    if private.public_key.format()[1:] != key:
        raise SpendError("that secret key is not the key of this leaf")
    msg = leaf_sighash(tx, utxo, leaf)
    signature: bytes = private.sign_schnorr(msg)
    return signature


def refund_script_path(
    utxo: SwapUtxo,
    destination_script_pubkey: bytes,
    fee_sat: int,
    *,
    refund_seckey: bytes,
    locktime: int,
) -> Transaction:
    """The unilateral refund after the timeout: witness [sig, refund leaf, control block].

    ``locktime`` is the height the transaction is valid from (usually the current tip); the
    refund leaf's CHECKLOCKTIMEVERIFY fails unless it is at least the swap's timeout."""
    tree = utxo.tree
    if locktime < tree.timeout_block_height:
        raise SpendError(
            f"the refund path opens at block {tree.timeout_block_height};"
            f" a refund locked to {locktime} would be rejected"
        )
    tx = build_spend(utxo, destination_script_pubkey, fee_sat, locktime=locktime)
    leaf_key = tree.refund_leaf[1:33]
    signature = _sign_leaf(tx, utxo, tree.refund_leaf, refund_seckey, leaf_key)
    tx.vin[0].witness = Witness([signature, tree.refund_leaf, tree.control_block(tree.refund_leaf)])
    return tx


def reverse_claim_script_path(
    utxo: SwapUtxo,
    destination_script_pubkey: bytes,
    fee_sat: int,
    *,
    claim_seckey: bytes,
    preimage: bytes,
) -> Transaction:
    """The unilateral reverse-swap claim: witness [sig, preimage, claim leaf, control block].

    Broadcasting it reveals the preimage on chain, which lets Boltz settle its invoice."""
    tree = utxo.tree
    if tree.swap_type is not SwapType.REVERSE:
        raise SpendError("only a reverse swap is claimed by the client")
    if len(preimage) != 32:
        raise SpendError("a preimage is 32 bytes")
    claim_key = _private_key(claim_seckey).public_key.format()
    expected = reverse_claim_leaf(hashlib.sha256(preimage).digest(), claim_key)
    if expected != tree.claim_leaf:
        raise SpendError("this preimage and key do not open the swap's claim leaf")
    tx = build_spend(utxo, destination_script_pubkey, fee_sat)
    signature = _sign_leaf(tx, utxo, tree.claim_leaf, claim_seckey, claim_key[1:])
    witness = [signature, preimage, tree.claim_leaf, tree.control_block(tree.claim_leaf)]
    tx.vin[0].witness = Witness(witness)
    return tx
