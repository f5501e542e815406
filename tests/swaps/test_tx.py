"""Swap spends: key path with a MuSig2 aggregate, script-path refund and reverse claim.

Sighashes are recomputed here by hand from BIP-341 (not with embit, which tx.py uses), so a
wrong field in either would show."""

from __future__ import annotations

import hashlib

import pytest
from coincurve import PrivateKey
from embit.transaction import Transaction
from support.swap_parties import BOLTZ_SK, CLIENT_SK, DEST, PREIMAGE, TIMEOUT, tree_for

from taskhold.swaps.errors import SwapError
from taskhold.swaps.musig import Session, nonce_gen, verify_schnorr
from taskhold.swaps.tree import SwapType, leaf_hash, tagged_hash
from taskhold.swaps.tx import (
    RBF_SEQUENCE,
    SpendError,
    SwapUtxo,
    build_spend,
    finish_key_path,
    key_path_sighash,
    refund_script_path,
    reverse_claim_script_path,
)

TXID = "aa" * 31 + "01"
AMOUNT = 100_000
FEE = 500


def _utxo(swap_type: SwapType) -> SwapUtxo:
    return SwapUtxo(TXID, 1, AMOUNT, tree_for(swap_type))


def _bip341_sighash(tx: Transaction, utxo: SwapUtxo, leaf: bytes | None) -> bytes:
    """SIGHASH_DEFAULT, one input, no annex: BIP-341's SigMsg, written out."""
    sha = lambda b: hashlib.sha256(b).digest()  # noqa: E731
    spk = utxo.tree.script_pubkey
    out = tx.vout[0]
    out_spk = out.script_pubkey.data
    msg = b"\x00\x00" + tx.version.to_bytes(4, "little") + tx.locktime.to_bytes(4, "little")
    msg += sha(bytes.fromhex(utxo.txid)[::-1] + utxo.vout.to_bytes(4, "little"))
    msg += sha(utxo.amount_sat.to_bytes(8, "little"))
    msg += sha(bytes([len(spk)]) + spk)
    msg += sha(tx.vin[0].sequence.to_bytes(4, "little"))
    msg += sha(out.value.to_bytes(8, "little") + bytes([len(out_spk)]) + out_spk)
    msg += bytes([2 if leaf is not None else 0]) + (0).to_bytes(4, "little")
    if leaf is not None:
        msg += leaf_hash(leaf) + b"\x00" + b"\xff\xff\xff\xff"
    return tagged_hash("TapSighash", msg)


def test_refund_before_the_timeout_is_refused() -> None:
    utxo = _utxo(SwapType.SUBMARINE)
    with pytest.raises(SpendError, match=f"opens at block {TIMEOUT}"):
        refund_script_path(utxo, DEST, FEE, refund_seckey=CLIENT_SK, locktime=TIMEOUT - 1)


def test_script_path_refund_verifies() -> None:
    utxo = _utxo(SwapType.SUBMARINE)
    tx = refund_script_path(utxo, DEST, FEE, refund_seckey=CLIENT_SK, locktime=TIMEOUT)
    parsed = Transaction.parse(tx.serialize())  # survives a wire round trip
    assert parsed.locktime == TIMEOUT
    assert parsed.vin[0].sequence == RBF_SEQUENCE == 0xFFFFFFFD  # not final: CLTV applies
    assert parsed.vin[0].txid.hex() == TXID
    assert parsed.vout[0].value == AMOUNT - FEE
    sig, leaf, control = parsed.vin[0].witness.items
    assert leaf == utxo.tree.refund_leaf
    assert control == utxo.tree.control_block(leaf)
    assert len(sig) == 64  # SIGHASH_DEFAULT: no sighash byte
    client_xonly = PrivateKey(CLIENT_SK).public_key.format()[1:]
    assert leaf[1:33] == client_xonly
    assert verify_schnorr(client_xonly, _bip341_sighash(parsed, utxo, leaf), sig)
    # the same signature is no good for the key path or for another leaf
    assert not verify_schnorr(client_xonly, _bip341_sighash(parsed, utxo, None), sig)


def test_refund_with_a_key_that_is_not_the_refunders_is_refused() -> None:
    utxo = _utxo(SwapType.SUBMARINE)
    with pytest.raises(SpendError, match="not the key of this leaf"):
        refund_script_path(utxo, DEST, FEE, refund_seckey=BOLTZ_SK, locktime=TIMEOUT)
    # in a reverse swap the refund belongs to Boltz, not the client
    with pytest.raises(SpendError, match="not the key of this leaf"):
        refund_script_path(
            _utxo(SwapType.REVERSE), DEST, FEE, refund_seckey=CLIENT_SK, locktime=TIMEOUT
        )


def test_reverse_claim_script_path_verifies() -> None:
    utxo = _utxo(SwapType.REVERSE)
    tx = Transaction.parse(
        reverse_claim_script_path(
            utxo, DEST, FEE, claim_seckey=CLIENT_SK, preimage=PREIMAGE
        ).serialize()
    )
    sig, preimage, leaf, control = tx.vin[0].witness.items
    assert preimage == PREIMAGE and leaf == utxo.tree.claim_leaf
    assert control == utxo.tree.control_block(leaf)
    # the leaf's HASH160 is of sha256(preimage): what OP_HASH160 of the witness item checks
    rip = hashlib.new("ripemd160", hashlib.sha256(preimage).digest()).digest()
    assert rip in leaf
    client_xonly = PrivateKey(CLIENT_SK).public_key.format()[1:]
    assert verify_schnorr(client_xonly, _bip341_sighash(tx, utxo, leaf), sig)


@pytest.mark.parametrize(
    ("swap_type", "seckey", "preimage", "error"),
    [
        (SwapType.REVERSE, CLIENT_SK, b"\x00" * 32, "do not open"),
        (SwapType.REVERSE, CLIENT_SK, PREIMAGE + b"\x00", "32 bytes"),
        (SwapType.REVERSE, BOLTZ_SK, PREIMAGE, "do not open"),
        (SwapType.SUBMARINE, CLIENT_SK, PREIMAGE, "only a reverse swap"),
    ],
)
def test_bad_reverse_claims_refused(
    swap_type: SwapType, seckey: bytes, preimage: bytes, error: str
) -> None:
    with pytest.raises(SpendError, match=error):
        reverse_claim_script_path(
            _utxo(swap_type), DEST, FEE, claim_seckey=seckey, preimage=preimage
        )


def test_cooperative_key_path_with_musig2() -> None:
    """Boltz and the client each build the tree and sign the same key-path sighash."""
    client_utxo = _utxo(SwapType.REVERSE)
    boltz_tree = tree_for(SwapType.REVERSE)
    tx = build_spend(client_utxo, DEST, FEE)
    msg = key_path_sighash(tx, client_utxo)
    assert msg == _bip341_sighash(tx, client_utxo, None)
    nb = nonce_gen(BOLTZ_SK, boltz_tree.key_agg, msg)
    nc = nonce_gen(CLIENT_SK, client_utxo.tree.key_agg, msg)
    boltz_session = Session(boltz_tree.key_agg, [nb.public, nc.public], msg)
    client_session = Session(client_utxo.tree.key_agg, [nb.public, nc.public], msg)
    boltz_partial = boltz_session.sign(nb.secret, BOLTZ_SK)
    assert client_session.verify_partial(boltz_partial, PrivateKey(BOLTZ_SK).public_key.format())
    sig = client_session.aggregate([boltz_partial, client_session.sign(nc.secret, CLIENT_SK)])
    done = Transaction.parse(finish_key_path(tx, client_utxo, sig).serialize())
    assert done.vin[0].witness.items == [sig]
    assert verify_schnorr(client_utxo.tree.output_xonly, msg, sig)


def test_key_path_signature_that_does_not_verify_is_refused() -> None:
    utxo = _utxo(SwapType.SUBMARINE)
    tx = build_spend(utxo, DEST, FEE)
    # a signature by the client alone, even over the right message, is not the 2-of-2
    lone = PrivateKey(CLIENT_SK).sign_schnorr(key_path_sighash(tx, utxo))
    with pytest.raises(SpendError, match="does not verify"):
        finish_key_path(tx, utxo, lone)


@pytest.mark.parametrize(("fee", "error"), [(-1, "negative"), (AMOUNT - 329, "dust")])
def test_bad_fees_refused(fee: int, error: str) -> None:
    with pytest.raises(SpendError, match=error):
        build_spend(_utxo(SwapType.SUBMARINE), DEST, fee)


def test_malformed_inputs_are_swap_errors() -> None:
    """A caller maps SwapError to its refusal; nothing else may escape for bad input."""
    utxo = _utxo(SwapType.REVERSE)
    with pytest.raises(SwapError):
        build_spend(SwapUtxo("zz" * 32, 0, AMOUNT, utxo.tree), DEST, FEE)
    with pytest.raises(SwapError):
        refund_script_path(
            _utxo(SwapType.SUBMARINE), DEST, FEE, refund_seckey=b"\x00" * 32, locktime=TIMEOUT
        )
    with pytest.raises(SwapError):
        reverse_claim_script_path(utxo, DEST, FEE, claim_seckey=b"\xff" * 32, preimage=PREIMAGE)


def test_a_final_sequence_with_a_locktime_is_refused() -> None:
    with pytest.raises(SpendError, match="nLockTime off"):
        build_spend(_utxo(SwapType.SUBMARINE), DEST, FEE, locktime=TIMEOUT, sequence=0xFFFFFFFF)
