"""The client's half of cooperative signing, against a simulated Boltz using the MuSig2 wrapper
directly with its own copy of the swap tree."""

from __future__ import annotations

import hashlib

import pytest
from coincurve import PrivateKey
from embit.transaction import Transaction
from support.swap_parties import BOLTZ_SK, CLIENT_SK, DEST, PAYMENT_HASH, PREIMAGE, tree_for

from taskhold.swaps.cooperative import (
    answer_submarine_claim,
    finish_cooperative_spend,
    start_cooperative_spend,
)
from taskhold.swaps.errors import SwapError
from taskhold.swaps.musig import MusigError, Session, nonce_gen, verify_schnorr
from taskhold.swaps.tree import SwapType
from taskhold.swaps.tx import SwapUtxo, build_spend, key_path_sighash


def test_boltz_claims_a_submarine_lockup_cooperatively() -> None:
    client_tree, boltz_tree = tree_for(SwapType.SUBMARINE), tree_for(SwapType.SUBMARINE)
    sighash = hashlib.sha256(b"boltz's claim tx sighash").digest()
    boltz_nonce = nonce_gen(BOLTZ_SK, boltz_tree.key_agg, sighash)
    our_pubnonce, our_partial = answer_submarine_claim(
        client_tree,
        CLIENT_SK,
        boltz_pubnonce=boltz_nonce.public,
        sighash=sighash,
        preimage=PREIMAGE,
        invoice_payment_hash=PAYMENT_HASH,
    )
    boltz = Session(boltz_tree.key_agg, [boltz_nonce.public, our_pubnonce], sighash)
    assert boltz.verify_partial(our_partial, PrivateKey(CLIENT_SK).public_key.format())
    sig = boltz.aggregate([boltz.sign(boltz_nonce.secret, BOLTZ_SK), our_partial])
    assert verify_schnorr(boltz_tree.output_xonly, sighash, sig)


@pytest.mark.parametrize(
    ("swap_type", "preimage", "payment_hash", "error"),
    [
        (SwapType.SUBMARINE, b"\x00" * 32, PAYMENT_HASH, "payment hash"),
        # a preimage of some other invoice: matches its hash, but not this swap's leaf
        (SwapType.SUBMARINE, b"\x00" * 32, hashlib.sha256(b"\x00" * 32).digest(), "claim leaf"),
        (SwapType.REVERSE, PREIMAGE, PAYMENT_HASH, "only a submarine"),
    ],
)
def test_no_partial_signature_without_proof_of_payment(
    swap_type: SwapType, preimage: bytes, payment_hash: bytes, error: str
) -> None:
    tree = tree_for(swap_type)
    boltz_nonce = nonce_gen(BOLTZ_SK, tree.key_agg)
    with pytest.raises(SwapError, match=error):
        answer_submarine_claim(
            tree,
            CLIENT_SK,
            boltz_pubnonce=boltz_nonce.public,
            sighash=b"\x01" * 32,
            preimage=preimage,
            invoice_payment_hash=payment_hash,
        )


def _boltz_answers(utxo: SwapUtxo, tx: Transaction, client_pubnonce: bytes) -> tuple[bytes, bytes]:
    boltz_tree = tree_for(utxo.tree.swap_type)
    boltz_utxo = SwapUtxo(utxo.txid, utxo.vout, utxo.amount_sat, boltz_tree)
    msg = key_path_sighash(tx, boltz_utxo)
    nonce = nonce_gen(BOLTZ_SK, boltz_tree.key_agg, msg)
    session = Session(boltz_tree.key_agg, [nonce.public, client_pubnonce], msg)
    return nonce.public, session.sign(nonce.secret, BOLTZ_SK)


@pytest.mark.parametrize("swap_type", [SwapType.SUBMARINE, SwapType.REVERSE])
def test_cooperative_refund_and_reverse_claim(swap_type: SwapType) -> None:
    utxo = SwapUtxo("cd" * 32, 0, 50_000, tree_for(swap_type))
    tx = build_spend(utxo, DEST, 300)
    ours = start_cooperative_spend(tx, utxo, CLIENT_SK)
    boltz_pubnonce, boltz_partial = _boltz_answers(utxo, tx, ours.public)
    done = finish_cooperative_spend(
        tx, utxo, CLIENT_SK, ours, boltz_pubnonce=boltz_pubnonce, boltz_partial=boltz_partial
    )
    (sig,) = Transaction.parse(done.serialize()).vin[0].witness.items
    assert verify_schnorr(utxo.tree.output_xonly, key_path_sighash(tx, utxo), sig)
    # the nonce is spent: a second finish (e.g. a replayed answer) is refused
    with pytest.raises(MusigError, match="already used"):
        finish_cooperative_spend(
            tx, utxo, CLIENT_SK, ours, boltz_pubnonce=boltz_pubnonce, boltz_partial=boltz_partial
        )


def test_a_bad_partial_from_boltz_is_refused_and_keeps_our_nonce() -> None:
    utxo = SwapUtxo("cd" * 32, 0, 50_000, tree_for(SwapType.REVERSE))
    tx = build_spend(utxo, DEST, 300)
    ours = start_cooperative_spend(tx, utxo, CLIENT_SK)
    boltz_pubnonce, _ = _boltz_answers(utxo, tx, ours.public)
    # Boltz signed a different transaction (another fee): its partial is not for ours
    other = build_spend(utxo, DEST, 301)
    _, wrong_partial = _boltz_answers(utxo, other, ours.public)
    with pytest.raises(SwapError, match="does not verify"):
        finish_cooperative_spend(
            tx, utxo, CLIENT_SK, ours, boltz_pubnonce=boltz_pubnonce, boltz_partial=wrong_partial
        )
    assert not ours.secret.used
