"""Swap tree and address: Boltz's published vectors, BIP-341 wallet vectors, bech32m."""

from __future__ import annotations

import pytest
from coincurve import PrivateKey
from coincurve.keys import PublicKeyXOnly
from support.swap_parties import BOLTZ_CLIENT_VECTORS as VECTORS

from taskhold.swaps.musig import KeyAgg
from taskhold.swaps.tree import (
    LEAF_VERSION,
    Network,
    SwapType,
    TreeError,
    branch_hash,
    decode_segwit_address,
    leaf_hash,
    p2tr_script_pubkey,
    script_num,
    segwit_address,
    swap_tree,
    taptweak,
)

h = bytes.fromhex

# BoltzExchange/boltz-client pkg/boltz/swaptree_test.go, the two Bitcoin cases (facts only),
# kept in support/swap_parties so the client's swap verification checks the same vectors.
BOLTZ_CLIENT_VECTORS = [
    pytest.param(
        v.swap_type,
        v.our_key,
        v.boltz_key,
        v.preimage_hash,
        v.timeout,
        v.claim,
        v.refund,
        v.address,
        id=v.swap_type.value,
    )
    for v in VECTORS
]


@pytest.mark.parametrize(
    ("swap_type", "our_key", "boltz_key", "preimage_hash", "timeout", "claim", "refund", "addr"),
    BOLTZ_CLIENT_VECTORS,
)
def test_boltz_client_swap_tree_vectors(
    swap_type: SwapType,
    our_key: str,
    boltz_key: str,
    preimage_hash: str,
    timeout: int,
    claim: str,
    refund: str,
    addr: str,
) -> None:
    tree = swap_tree(
        swap_type,
        boltz_pubkey=h(boltz_key),
        client_pubkey=PrivateKey(h(our_key)).public_key.format(),
        preimage_hash=h(preimage_hash),
        timeout_block_height=timeout,
    )
    assert tree.claim_leaf.hex() == claim
    assert tree.refund_leaf.hex() == refund
    assert tree.address(Network.MAINNET) == addr
    assert decode_segwit_address(Network.MAINNET, addr) == (1, tree.output_xonly)
    # the output key is the internal key tweaked with this tree, with the parity it reports
    key = PublicKeyXOnly(tree.internal_xonly)
    key.tweak_add(taptweak(tree.internal_xonly, tree.merkle_root))
    assert key.format() == tree.output_xonly
    assert key.parity == bool(tree.output_parity)
    assert tree.script_pubkey == b"\x51\x20" + tree.output_xonly


def test_the_address_depends_on_every_fact() -> None:
    boltz = h("0328baf0584489b39d218d0a59bbee01e93be6fba696b348a4033045f3cdc7dc37")
    client = PrivateKey(
        h("7886fd6464350f85c941bd80c824b1ad4f776b0aa1b4783a300b987d69966086")
    ).public_key.format()
    facts = dict(
        boltz_pubkey=boltz,
        client_pubkey=client,
        preimage_hash=h("a1164fdb247b47931ed41fa1bd53391205406aa723adf4fda10b9ed013001016"),
        timeout_block_height=827793,
    )
    base = swap_tree(SwapType.REVERSE, **facts).address(Network.MAINNET)  # type: ignore[arg-type]
    variants = [
        swap_tree(SwapType.SUBMARINE, **facts),  # type: ignore[arg-type]
        swap_tree(SwapType.REVERSE, **{**facts, "timeout_block_height": 827794}),  # type: ignore[arg-type]
        swap_tree(SwapType.REVERSE, **{**facts, "preimage_hash": b"\x00" * 32}),  # type: ignore[arg-type]
        swap_tree(
            SwapType.REVERSE,
            **{**facts, "boltz_pubkey": client, "client_pubkey": boltz},  # type: ignore[arg-type]
        ),
    ]
    assert all(v.address(Network.MAINNET) != base for v in variants)


def test_boltz_core_untweaked_key_agg_address() -> None:
    """boltz-core test/integration/musig: KeyAgg of [our key, their key], no tree, regtest."""
    ours = PrivateKey(h("1f1d1a9d8c3507b251ff29096511ffe66a75437e3bcdf912e7433e55e87f569c"))
    theirs = h("02e88bd3780532bbb4a127a2e041467bc42c5cc4ff16ddb5afa7e27c5b653de44c")
    agg = KeyAgg([ours.public_key.format(), theirs])
    assert (
        segwit_address(Network.REGTEST, 1, agg.xonly())
        == "bcrt1pxd8mc7dj3a97nqr9yy2rjurmpnejq72n82mr9wkzu6x8qq8a6h4qva33c7"
    )


def test_control_blocks_commit_to_the_sibling_leaf() -> None:
    tree = swap_tree(
        SwapType.SUBMARINE,
        boltz_pubkey=h("020e9e82ede019c483ef12f0a05a2f602be53a10f72cce88d6975a24592cf9ce07"),
        client_pubkey=PrivateKey(b"\x07" * 32).public_key.format(),
        preimage_hash=b"\x01" * 32,
        timeout_block_height=850_000,
    )
    for leaf, sibling in (
        (tree.refund_leaf, tree.claim_leaf_hash),
        (tree.claim_leaf, tree.refund_leaf_hash),
    ):
        block = tree.control_block(leaf)
        assert len(block) == 65
        assert block[0] == LEAF_VERSION | tree.output_parity
        assert block[1:33] == tree.internal_xonly
        assert block[33:] == sibling
        # a verifier recomputes the root from the leaf and the path and finds the output key
        root = branch_hash(leaf_hash(leaf), block[33:])
        key = PublicKeyXOnly(block[1:33])
        key.tweak_add(taptweak(block[1:33], root))
        assert key.format() == tree.output_xonly and key.parity == bool(block[0] & 1)
    with pytest.raises(TreeError, match="not a leaf"):
        tree.control_block(b"\x51")


# bitcoin/bips bip-0341/wallet-test-vectors.json, scriptPubKey cases 0-2 (internal key, leaf
# script with version 0xc0, then the expected leaf hash, tweak, output key and address).
BIP341_SCRIPT_PUBKEY = [
    (
        "d6889cb081036e0faefa3a35157ad71086b123b2b144b649798b494c300a961d",
        None,
        None,
        "b86e7be8f39bab32a6f2c0443abbc210f0edac0e2c53d501b36b64437d9c6c70",
        "53a1f6e454df1aa2776a2814a721372d6258050de330b3c6d10ee8f4e0dda343",
        "bc1p2wsldez5mud2yam29q22wgfh9439spgduvct83k3pm50fcxa5dps59h4z5",
    ),
    (
        "187791b6f712a8ea41c8ecdd0ee77fab3e85263b37e1ec18a3651926b3a6cf27",
        "20d85a959b0290bf19bb89ed43c916be835475d013da4b362117393e25a48229b8ac",
        "5b75adecf53548f3ec6ad7d78383bf84cc57b55a3127c72b9a2481752dd88b21",
        "cbd8679ba636c1110ea247542cfbd964131a6be84f873f7f3b62a777528ed001",
        "147c9c57132f6e7ecddba9800bb0c4449251c92a1e60371ee77557b6620f3ea3",
        "bc1pz37fc4cn9ah8anwm4xqqhvxygjf9rjf2resrw8h8w4tmvcs0863sa2e586",
    ),
    (
        "93478e9488f956df2396be2ce6c5cced75f900dfa18e7dabd2428aae78451820",
        "20b617298552a72ade070667e86ca63b8f5789a9fe8731ef91202a91c9f3459007ac",
        "c525714a7f49c28aedbbba78c005931a81c234b2f6c99a73e4d06082adc8bf2b",
        "6af9e28dbf9d6aaf027696e2598a5b3d056f5fd2355a7fd5a37a0e5008132d30",
        "e4d810fd50586274face62b8a807eb9719cef49c04177cc6b76a9a4251d5450e",
        "bc1punvppl2stp38f7kwv2u2spltjuvuaayuqsthe34hd2dyy5w4g58qqfuag5",
    ),
]


@pytest.mark.parametrize(
    ("internal", "script", "leaf", "tweak", "output", "address"), BIP341_SCRIPT_PUBKEY
)
def test_bip341_wallet_vectors(
    internal: str, script: str | None, leaf: str | None, tweak: str, output: str, address: str
) -> None:
    root = leaf_hash(h(script)) if script else None
    assert (root.hex() if root else None) == leaf
    assert taptweak(h(internal), root).hex() == tweak
    key = PublicKeyXOnly(h(internal))
    key.tweak_add(h(tweak))
    assert key.format().hex() == output
    assert p2tr_script_pubkey(key.format()).hex() == "5120" + output
    assert segwit_address(Network.MAINNET, 1, key.format()) == address


def test_addresses_per_network() -> None:
    program = h("53a1f6e454df1aa2776a2814a721372d6258050de330b3c6d10ee8f4e0dda343")
    for network, prefix in (
        (Network.MAINNET, "bc1p"),
        (Network.TESTNET, "tb1p"),
        (Network.REGTEST, "bcrt1p"),
    ):
        address = segwit_address(network, 1, program)
        assert address.startswith(prefix)
        assert decode_segwit_address(network, address) == (1, program)
        assert decode_segwit_address(network, address.upper()) == (1, program)
    with pytest.raises(TreeError):  # a testnet address is not a mainnet address
        decode_segwit_address(Network.MAINNET, segwit_address(Network.TESTNET, 1, program))


@pytest.mark.parametrize(
    "bad",
    [
        "bc1p2wsldez5mud2yam29q22wgfh9439spgduvct83k3pm50fcxa5dps59h4z6",  # checksum
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",  # bech32 (v0), not bech32m
        "bc1P2wsldez5mud2yam29q22wgfh9439spgduvct83k3pm50fcxa5dps59h4z5",  # mixed case
        "bc1pb",  # too short
    ],
)
def test_bad_addresses_refused(bad: str) -> None:
    with pytest.raises(TreeError):
        decode_segwit_address(Network.MAINNET, bad)


def test_script_numbers_are_minimal() -> None:
    assert script_num(827793) == h("91a10c")
    assert script_num(0x80) == h("8000")  # sign bit needs an extra byte
    assert script_num(0) == b""


@pytest.mark.parametrize(
    "facts",
    [
        {"preimage_hash": b"\x01" * 31},
        {"timeout_block_height": 0},
        {"timeout_block_height": 500_000_000},  # a time, not a height
        {"client_pubkey": b"\x02" * 32},
    ],
)
def test_bad_swap_facts_refused(facts: dict[str, object]) -> None:
    base: dict[str, object] = dict(
        boltz_pubkey=PrivateKey(b"\x01" * 32).public_key.format(),
        client_pubkey=PrivateKey(b"\x02" * 32).public_key.format(),
        preimage_hash=b"\x03" * 32,
        timeout_block_height=850_000,
    )
    with pytest.raises(TreeError):
        swap_tree(SwapType.REVERSE, **{**base, **facts})  # type: ignore[arg-type]
