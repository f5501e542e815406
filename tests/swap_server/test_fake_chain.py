"""The in-memory chain refuses what a node would refuse, so a server test passing on it means
the server's spends are valid: unknown or spent inputs, bad key-path signatures, control blocks
that do not open the output, refunds before their timeout, claims without the preimage."""

from __future__ import annotations

import hashlib

import pytest
from coincurve import PrivateKey
from embit.script import Witness
from support.fake_swap_chain import FakeChain
from support.swap_parties import BOLTZ_SK, CLIENT_SK, DEST, PREIMAGE

from taskhold.devnet.swap_server.chain import ChainRefused
from taskhold.swaps.musig import Session, nonce_gen
from taskhold.swaps.tree import Network, SwapTree, SwapType, swap_tree
from taskhold.swaps.tx import (
    SwapUtxo,
    build_spend,
    finish_key_path,
    key_path_sighash,
    leaf_sighash,
    refund_script_path,
    reverse_claim_script_path,
)

TIMEOUT = 250


def _tree(kind: SwapType) -> SwapTree:
    return swap_tree(
        kind,
        boltz_pubkey=PrivateKey(BOLTZ_SK).public_key.format(),
        client_pubkey=PrivateKey(CLIENT_SK).public_key.format(),
        preimage_hash=hashlib.sha256(PREIMAGE).digest(),
        timeout_block_height=TIMEOUT,
    )


async def _funded(chain: FakeChain, kind: SwapType) -> SwapUtxo:
    tree = _tree(kind)
    chain.fund(tree.address(Network.REGTEST), 50_000)
    found = await chain.find_output(tree.script_pubkey, since_height=0)
    assert found is not None and found.confirmations == 0
    return SwapUtxo(found.txid, found.vout, found.amount_sat, tree)


def _key_path(utxo: SwapUtxo, fee: int = 300) -> bytes:
    tx = build_spend(utxo, DEST, fee)
    msg = key_path_sighash(tx, utxo)
    boltz, client = nonce_gen(BOLTZ_SK, utxo.tree.key_agg), nonce_gen(CLIENT_SK, utxo.tree.key_agg)
    session = Session(utxo.tree.key_agg, [boltz.public, client.public], msg)
    sig = session.aggregate(
        [session.sign(boltz.secret, BOLTZ_SK), session.sign(client.secret, CLIENT_SK)]
    )
    signed: bytes = finish_key_path(tx, utxo, sig).serialize()
    return signed


def _signed_refund(utxo: SwapUtxo, locktime: int, sequence: int) -> bytes:
    """A correctly signed refund-leaf spend with any nLockTime and nSequence (tx.py refuses to
    build the invalid ones, so it is made by hand here)."""
    tx = build_spend(utxo, DEST, 300)
    tx.locktime, tx.vin[0].sequence = locktime, sequence
    leaf = utxo.tree.refund_leaf
    sig = PrivateKey(CLIENT_SK).sign_schnorr(leaf_sighash(tx, utxo, leaf))
    tx.vin[0].witness = Witness([sig, leaf, utxo.tree.control_block(leaf)])
    raw: bytes = tx.serialize()
    return raw


async def test_a_key_path_spend_is_accepted_once() -> None:
    chain = FakeChain()
    utxo = await _funded(chain, SwapType.SUBMARINE)
    raw = _key_path(utxo)
    txid = await chain.broadcast(raw.hex())
    assert await chain.find_spend(utxo.txid, utxo.vout, since_height=0) == raw.hex()
    with pytest.raises(ChainRefused, match="already"):
        await chain.broadcast(raw.hex())
    with pytest.raises(ChainRefused, match="already spent"):
        await chain.broadcast(_key_path(utxo, fee=301).hex())  # a double spend
    chain.mine()
    assert chain.tx(txid).vout[0].value == 50_000 - 300


async def test_a_forged_key_path_signature_is_refused() -> None:
    chain = FakeChain()
    utxo = await _funded(chain, SwapType.SUBMARINE)
    tx = build_spend(utxo, DEST, 300)
    tx.vin[0].witness = Witness([PrivateKey(CLIENT_SK).sign_schnorr(key_path_sighash(tx, utxo))])
    with pytest.raises(ChainRefused, match="key-path signature"):
        await chain.broadcast(tx.serialize().hex())


async def test_unknown_inputs_and_overspends_are_refused() -> None:
    chain = FakeChain()
    utxo = await _funded(chain, SwapType.SUBMARINE)
    ghost = SwapUtxo("ab" * 32, 0, 50_000, utxo.tree)
    with pytest.raises(ChainRefused, match="missing inputs"):
        await chain.broadcast(_key_path(ghost).hex())
    rich = SwapUtxo(utxo.txid, utxo.vout, 60_000, utxo.tree)
    with pytest.raises(ChainRefused, match="exceed"):
        await chain.broadcast(_key_path(rich).hex())


async def test_a_refund_waits_for_its_timeout() -> None:
    chain = FakeChain()
    utxo = await _funded(chain, SwapType.SUBMARINE)
    refund = refund_script_path(utxo, DEST, 300, refund_seckey=CLIENT_SK, locktime=TIMEOUT)
    with pytest.raises(ChainRefused, match="above the chain tip"):
        await chain.broadcast(refund.serialize().hex())
    chain.mine(TIMEOUT - chain.tip)
    for locktime, sequence, reason in [
        (TIMEOUT, 0xFFFFFFFF, "final nSequence"),
        (TIMEOUT - 1, 0xFFFFFFFD, "below the leaf's"),
    ]:
        with pytest.raises(ChainRefused, match=reason):
            await chain.broadcast(_signed_refund(utxo, locktime, sequence).hex())
    assert await chain.broadcast(refund.serialize().hex()) == refund.txid().hex()


async def test_a_refund_leaf_under_another_tree_is_refused() -> None:
    chain = FakeChain()
    utxo = await _funded(chain, SwapType.SUBMARINE)
    chain.mine(TIMEOUT - chain.tip)
    refund = refund_script_path(utxo, DEST, 300, refund_seckey=CLIENT_SK, locktime=TIMEOUT)
    sig, leaf, control = refund.vin[0].witness.items
    other_key = PrivateKey(CLIENT_SK).public_key.format()[1:]  # a real key, not the aggregate
    refund.vin[0].witness = Witness([sig, leaf, control[:1] + other_key + control[33:]])
    with pytest.raises(ChainRefused, match="does not open this output"):
        await chain.broadcast(refund.serialize().hex())


async def test_a_reverse_claim_needs_the_preimage() -> None:
    chain = FakeChain()
    utxo = await _funded(chain, SwapType.REVERSE)
    claim = reverse_claim_script_path(utxo, DEST, 200, claim_seckey=CLIENT_SK, preimage=PREIMAGE)
    sig, _preimage, leaf, control = claim.vin[0].witness.items
    claim.vin[0].witness = Witness([sig, bytes(32), leaf, control])
    with pytest.raises(ChainRefused, match="preimage"):
        await chain.broadcast(claim.serialize().hex())
    claim.vin[0].witness = Witness([sig, PREIMAGE, leaf, control])
    assert await chain.broadcast(claim.serialize().hex())
