"""The client's half of Boltz's cooperative (MuSig2 key-path) signing.

Two shapes cover the three cooperative flows of #14:
- Boltz claims a submarine lockup: it sends its nonce and the sighash, the client answers with
  its nonce and partial signature, but only once the preimage proves Boltz paid the invoice.
- The client refunds a submarine lockup or claims a reverse one: it sends its nonce with the
  transaction, Boltz answers with its nonce and partial signature, and the client checks that
  partial before adding its own and finishing the witness.

Keys are aggregated [Boltz, client] by the swap tree, so nonces are ordered the same way.
"""

from __future__ import annotations

import hashlib

from embit.transaction import Transaction

from .errors import SwapError
from .musig import NoncePair, Session, nonce_gen
from .tree import SwapTree, SwapType, submarine_claim_leaf
from .tx import SwapUtxo, finish_key_path, key_path_sighash

__all__ = ["answer_submarine_claim", "finish_cooperative_spend", "start_cooperative_spend"]


def answer_submarine_claim(
    tree: SwapTree,
    client_seckey: bytes,
    *,
    boltz_pubnonce: bytes,
    sighash: bytes,
    preimage: bytes,
    invoice_payment_hash: bytes,
) -> tuple[bytes, bytes]:
    """(our public nonce, our partial signature) for Boltz's cooperative claim.

    Signing lets Boltz take the lockup, so it is refused unless ``preimage`` is the one of the
    invoice Boltz was to pay and of this swap's claim leaf: that is the proof it paid."""
    if tree.swap_type is not SwapType.SUBMARINE:
        raise SwapError("only a submarine lockup is claimed by Boltz")
    preimage_hash = hashlib.sha256(preimage).digest()
    if preimage_hash != invoice_payment_hash:
        raise SwapError("the preimage does not match the invoice's payment hash")
    boltz_pubkey = tree.key_agg.pubkeys[0]
    if submarine_claim_leaf(preimage_hash, boltz_pubkey) != tree.claim_leaf:
        raise SwapError("the preimage does not open this swap's claim leaf")
    ours = nonce_gen(client_seckey, tree.key_agg, sighash)
    session = Session(tree.key_agg, [boltz_pubnonce, ours.public], sighash)
    return ours.public, session.sign(ours.secret, client_seckey)


def start_cooperative_spend(tx: Transaction, utxo: SwapUtxo, client_seckey: bytes) -> NoncePair:
    """Our nonce for a cooperative refund or reverse claim, bound to this spend's sighash.

    Keep the pair in memory until Boltz answers; it signs once (see ``musig.SecretNonce``)."""
    return nonce_gen(client_seckey, utxo.tree.key_agg, key_path_sighash(tx, utxo))


def finish_cooperative_spend(
    tx: Transaction,
    utxo: SwapUtxo,
    client_seckey: bytes,
    ours: NoncePair,
    *,
    boltz_pubnonce: bytes,
    boltz_partial: bytes,
) -> Transaction:
    """Check Boltz's partial signature, add ours, and finish the key-path witness."""
    msg = key_path_sighash(tx, utxo)
    session = Session(utxo.tree.key_agg, [boltz_pubnonce, ours.public], msg)
    if not session.verify_partial(boltz_partial, utxo.tree.key_agg.pubkeys[0]):
        raise SwapError("Boltz's partial signature does not verify")
    signature = session.aggregate([boltz_partial, session.sign(ours.secret, client_seckey)])
    return finish_key_path(tx, utxo, signature)
