"""The two parties of a test swap (Boltz and the client), their preimage and a tree for them:
one set of facts for the spend and cooperative-signing tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from coincurve import PrivateKey

from taskhold.swaps.tree import SwapTree, SwapType, swap_tree

BOLTZ_SK = hashlib.sha256(b"boltz").digest()
CLIENT_SK = hashlib.sha256(b"client").digest()
PREIMAGE = hashlib.sha256(b"preimage").digest()
PAYMENT_HASH = hashlib.sha256(PREIMAGE).digest()
TIMEOUT = 850_123
DEST = b"\x51\x20" + b"\x42" * 32
"""A P2TR scriptPubKey to spend to."""


@dataclass(frozen=True)
class BoltzVector:
    """One of Boltz's published swap-tree vectors (facts only): our private key, Boltz's
    public key, the preimage hash, the timeout, the expected leaves and mainnet address."""

    swap_type: SwapType
    our_key: str
    boltz_key: str
    preimage_hash: str
    timeout: int
    claim: str
    refund: str
    address: str


BOLTZ_CLIENT_VECTORS = (
    # BoltzExchange/boltz-client pkg/boltz/swaptree_test.go, the two Bitcoin cases
    BoltzVector(
        SwapType.REVERSE,
        "7886fd6464350f85c941bd80c824b1ad4f776b0aa1b4783a300b987d69966086",
        "0328baf0584489b39d218d0a59bbee01e93be6fba696b348a4033045f3cdc7dc37",
        "a1164fdb247b47931ed41fa1bd53391205406aa723adf4fda10b9ed013001016",
        827793,
        "82012088a914fedcea7dea7e4c7923984fab9c0b409a4ea7f38a882017ccb3202dd3a3ad29f4bc046f2b"
        "51904ece962a6e5b05da73f5eb5eeb99b1b3ac",
        "2028baf0584489b39d218d0a59bbee01e93be6fba696b348a4033045f3cdc7dc37ad0391a10cb1",
        "bc1prmxmvl5z79ddhesfzu3ya0f8ck9k3tfvdcrxfzc8t9s7stm4nfrsyc9hzw",
    ),
    BoltzVector(
        SwapType.SUBMARINE,
        "265238cbdc33eafd2ab2c9bfc3b38fcd9b4d610c62973a85ea74662147eeed99",
        "020e9e82ede019c483ef12f0a05a2f602be53a10f72cce88d6975a24592cf9ce07",
        "8cc63191120acf891b9eff49136a92c421e833171ace1ee94a0838052f0c0f86",
        828670,
        "a9140aa6567ec32c5f62f0413be0fddc819f1d6fd0dd88200e9e82ede019c483ef12f0a05a2f602be53a"
        "10f72cce88d6975a24592cf9ce07ac",
        "2078711c01248c5db8436e07c43d651355a1415f3f43d4edf2d2147bfa66c20605ad03fea40cb1",
        "bc1px6up6cxg2vhf049x9g0v8wcztc0vvvd25zjqt6qf3streqvuzm7qm0dpkp",
    ),
)


def tree_for(swap_type: SwapType) -> SwapTree:
    """The swap tree of Boltz's and the client's keys over ``PREIMAGE``, timing out at
    ``TIMEOUT``."""
    return swap_tree(
        swap_type,
        boltz_pubkey=PrivateKey(BOLTZ_SK).public_key.format(),
        client_pubkey=PrivateKey(CLIENT_SK).public_key.format(),
        preimage_hash=PAYMENT_HASH,
        timeout_block_height=TIMEOUT,
    )
