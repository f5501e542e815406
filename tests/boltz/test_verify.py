"""The client's checks of a swap Boltz created: Boltz's published vectors verify; a response
with another key, timeout, address, hash or invoice is refused before any funds move."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from coincurve import PrivateKey
from support.bolt11_invoices import invoice
from support.swap_parties import BOLTZ_CLIENT_VECTORS, BoltzVector

from taskhold.boltz.models import ReverseResponse, SubmarineResponse, SwapTreeLeaves
from taskhold.boltz.verify import decode_invoice, verify_reverse, verify_submarine
from taskhold.swaps.errors import SwapMismatch
from taskhold.swaps.tree import Network, SwapType, refund_leaf, submarine_claim_leaf, swap_tree

h = bytes.fromhex
REVERSE, SUBMARINE = (
    next(v for v in BOLTZ_CLIENT_VECTORS if v.swap_type is kind)
    for kind in (SwapType.REVERSE, SwapType.SUBMARINE)
)
OTHER_KEY = PrivateKey(hashlib.sha256(b"someone else").digest()).public_key.format()
OTHER_HASH = hashlib.sha256(b"another preimage").digest()


def our_pubkey(v: BoltzVector) -> bytes:
    return PrivateKey(h(v.our_key)).public_key.format()


def leaves(v: BoltzVector) -> SwapTreeLeaves:
    return SwapTreeLeaves(0xC0, h(v.claim), 0xC0, h(v.refund))


def submarine_response(**changes: object) -> SubmarineResponse:
    v = SUBMARINE
    response = SubmarineResponse(
        id="sub1",
        address=v.address,
        expected_amount=104_479,
        claim_public_key=h(v.boltz_key),
        timeout_block_height=v.timeout,
        swap_tree=leaves(v),
    )
    return dataclasses.replace(response, **changes)  # type: ignore[arg-type]


def reverse_response(**changes: object) -> ReverseResponse:
    v = REVERSE
    response = ReverseResponse(
        id="rev1",
        invoice=invoice(h(v.preimage_hash), 100_000),
        lockup_address=v.address,
        refund_public_key=h(v.boltz_key),
        timeout_block_height=v.timeout,
        onchain_amount=96_728,
        swap_tree=leaves(v),
    )
    return dataclasses.replace(response, **changes)  # type: ignore[arg-type]


def check_submarine(response: SubmarineResponse, payment_hash: str = SUBMARINE.preimage_hash):
    return verify_submarine(
        response,
        refund_pubkey=our_pubkey(SUBMARINE),
        payment_hash=h(payment_hash),
        network=Network.MAINNET,
    )


def check_reverse(response: ReverseResponse, amount: int = 100_000):
    return verify_reverse(
        response,
        claim_pubkey=our_pubkey(REVERSE),
        preimage_hash=h(REVERSE.preimage_hash),
        network=Network.MAINNET,
        invoice_amount_sat=amount,
    )


# hostile answers first --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"claim_public_key": our_pubkey(SUBMARINE)}, "our own public key"),
        ({"claim_public_key": OTHER_KEY}, "claim leaf differs"),
        ({"timeout_block_height": SUBMARINE.timeout + 1}, "refund leaf differs"),
        ({"timeout_block_height": 0}, "do not make a swap tree"),
        ({"address": REVERSE.address}, "is not the tree's address"),
        (
            {
                "swap_tree": SwapTreeLeaves(
                    0xC0, submarine_claim_leaf(OTHER_HASH, h(SUBMARINE.boltz_key)), 0xC0,
                    h(SUBMARINE.refund),
                )
            },
            "claim leaf differs",
        ),
        (
            {
                "swap_tree": SwapTreeLeaves(
                    0xC0, h(SUBMARINE.claim), 0xC0, refund_leaf(h(SUBMARINE.boltz_key), 828670)
                )
            },
            "refund leaf differs",
        ),
        ({"swap_tree": SwapTreeLeaves(0xC4, h(SUBMARINE.claim), 0xC0, h(SUBMARINE.refund))},
         "leaf versions"),
    ],
    ids=["our key", "other key", "timeout", "no timeout", "address", "hash", "swapped refund",
         "liquid leaf"],
)  # fmt: skip
def test_a_hostile_submarine_answer_is_refused(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(SwapMismatch, match=problem):
        check_submarine(submarine_response(**changes))


@pytest.mark.parametrize(
    ("bip21", "problem"),
    [
        (f"bitcoin:{REVERSE.address}?amount=0.00104479", "does not pay the tree's address"),
        (f"litecoin:{SUBMARINE.address}?amount=0.00104479", "does not pay the tree's address"),
        (f"bitcoin:{SUBMARINE.address}?amount=0.0010448", r"asks \['0.0010448'\]"),
        (f"bitcoin:{SUBMARINE.address}?amount=0.00104479&amount=1", "asks"),
        (f"bitcoin:{SUBMARINE.address}", r"asks \[\]"),
        (f"bitcoin:{SUBMARINE.address}?amount=lots", "not a number"),
    ],
)
def test_a_bip21_uri_that_pays_elsewhere_or_more_is_refused(bip21: str, problem: str) -> None:
    with pytest.raises(SwapMismatch, match=problem):
        check_submarine(submarine_response(bip21=bip21))


def test_boltz_bip21_uri_with_a_label_verifies() -> None:
    uri = f"bitcoin:{SUBMARINE.address}?amount=0.00104479&label=Send%20to%20BTC%20lightning"
    check_submarine(submarine_response(bip21=uri))


def test_a_submarine_swap_for_another_invoice_is_refused() -> None:
    with pytest.raises(SwapMismatch, match="claim leaf differs"):
        check_submarine(submarine_response(), payment_hash=OTHER_HASH.hex())


def test_a_self_consistent_tree_with_boltz_keys_swapped_is_refused() -> None:
    """Boltz builds a consistent tree and address in which it holds the refund path."""
    v = SUBMARINE
    tree = swap_tree(
        SwapType.SUBMARINE,
        boltz_pubkey=our_pubkey(v),
        client_pubkey=h(v.boltz_key),
        preimage_hash=h(v.preimage_hash),
        timeout_block_height=v.timeout,
    )
    response = submarine_response(
        address=tree.address(Network.MAINNET),
        swap_tree=SwapTreeLeaves(0xC0, tree.claim_leaf, 0xC0, tree.refund_leaf),
    )
    with pytest.raises(SwapMismatch, match="leaf differs"):
        check_submarine(response)


@pytest.mark.parametrize(
    ("changes", "amount", "problem"),
    [
        ({"refund_public_key": our_pubkey(REVERSE)}, 100_000, "our own public key"),
        ({"timeout_block_height": REVERSE.timeout - 1}, 100_000, "refund leaf differs"),
        ({"lockup_address": SUBMARINE.address}, 100_000, "not the tree's address"),
        ({"invoice": invoice(OTHER_HASH, 100_000)}, 100_000, "not our preimage hash"),
        ({"invoice": invoice(h(REVERSE.preimage_hash), 100_001)}, 100_000, "agreed 100000000"),
        ({}, 99_999, "asks 100000000 msat"),
        ({"invoice": invoice(h(REVERSE.preimage_hash), 100_000, network="tb")}, 100_000,
         "network 'tb'"),
        ({"invoice": "lnbc1notaninvoice"}, 100_000, "not a valid BOLT11"),
    ],
    ids=["our key", "timeout", "address", "hash", "amount", "agreed", "network", "garbage"],
)  # fmt: skip
def test_a_hostile_reverse_answer_is_refused(
    changes: dict[str, object], amount: int, problem: str
) -> None:
    with pytest.raises(SwapMismatch, match=problem):
        check_reverse(reverse_response(**changes), amount)


# Boltz's published vectors ----------------------------------------------------------------


def test_boltz_submarine_vector_verifies_and_gives_the_tree_to_spend_with() -> None:
    tree = check_submarine(submarine_response())
    assert tree.address(Network.MAINNET) == SUBMARINE.address
    assert tree.timeout_block_height == SUBMARINE.timeout
    assert tree.key_agg.pubkeys[1] == our_pubkey(SUBMARINE)


def test_boltz_reverse_vector_verifies_with_its_hold_invoice() -> None:
    tree = check_reverse(reverse_response())
    assert tree.address(Network.MAINNET) == REVERSE.address
    assert tree.claim_leaf == h(REVERSE.claim)


def test_an_uppercase_address_is_the_same_address() -> None:
    check_submarine(submarine_response(address=SUBMARINE.address.upper()))


def test_invoice_facts_for_the_timing_checks() -> None:
    facts = decode_invoice(invoice(OTHER_HASH, 5_000, cltv=144, expiry_s=600, date=1_000))
    assert facts.payment_hash == OTHER_HASH
    assert (facts.amount_msat, facts.min_final_cltv, facts.expires_at) == (5_000_000, 144, 1_600)
    assert facts.network == "bc"
