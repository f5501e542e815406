"""The Boltz taproot swap tree: leaves, BIP-341 hashes, output key, control blocks, address.

Everything here is recomputed from the swap's facts (keys, preimage hash, timeout) rather than
trusted from Boltz's response: the client checks that the address Boltz asks it to fund, or
promises to fund, is the one these facts produce before any money moves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from embit.hashes import ripemd160

from .errors import TreeError
from .musig import KeyAgg

__all__ = [
    "LEAF_VERSION",
    "Network",
    "SwapTree",
    "SwapType",
    "TreeError",
    "branch_hash",
    "decode_segwit_address",
    "leaf_hash",
    "p2tr_script_pubkey",
    "refund_leaf",
    "reverse_claim_leaf",
    "script_num",
    "segwit_address",
    "submarine_claim_leaf",
    "swap_tree",
    "tagged_hash",
    "taptweak",
]

LEAF_VERSION = 0xC0

OP_SIZE = 0x82
OP_EQUALVERIFY = 0x88
OP_HASH160 = 0xA9
OP_CHECKSIG = 0xAC
OP_CHECKSIGVERIFY = 0xAD
OP_CHECKLOCKTIMEVERIFY = 0xB1


class SwapType(StrEnum):
    SUBMARINE = "submarine"  # the client locks on chain, Boltz claims with the preimage
    REVERSE = "reverse"  # Boltz locks on chain, the client claims with the preimage


class Network(StrEnum):
    MAINNET = "bc"
    TESTNET = "tb"
    REGTEST = "bcrt"


def tagged_hash(tag: str, data: bytes) -> bytes:
    """BIP-340 tagged hash: sha256(sha256(tag) || sha256(tag) || data)."""
    t = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(t + t + data).digest()


def _push(data: bytes) -> bytes:
    if len(data) > 75:
        raise TreeError("only direct pushes are used in swap leaves")
    return bytes([len(data)]) + data


def script_num(n: int) -> bytes:
    """Minimal little-endian script number encoding (for the CLTV height)."""
    if n < 0:
        raise TreeError("a timeout block height cannot be negative")
    out = bytearray()
    while n:
        out.append(n & 0xFF)
        n >>= 8
    if out and out[-1] & 0x80:
        out.append(0)
    return bytes(out)


def _compact_size(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    return b"\xfe" + n.to_bytes(4, "little")


def _xonly(pubkey: bytes) -> bytes:
    if len(pubkey) == 33:
        return pubkey[1:]
    if len(pubkey) == 32:
        return pubkey
    raise TreeError("a public key must be 33 bytes (compressed) or 32 bytes (x-only)")


def _hash160_of_preimage_hash(preimage_hash: bytes) -> bytes:
    if len(preimage_hash) != 32:
        raise TreeError("a preimage hash must be 32 bytes (sha256 of the preimage)")
    digest: bytes = ripemd160(preimage_hash)
    return digest


def submarine_claim_leaf(preimage_hash: bytes, boltz_pubkey: bytes) -> bytes:
    """Boltz claims the client's lockup by revealing the preimage of the invoice it paid."""
    return (
        bytes([OP_HASH160])
        + _push(_hash160_of_preimage_hash(preimage_hash))
        + bytes([OP_EQUALVERIFY])
        + _push(_xonly(boltz_pubkey))
        + bytes([OP_CHECKSIG])
    )


def reverse_claim_leaf(preimage_hash: bytes, client_pubkey: bytes) -> bytes:
    """The client claims Boltz's lockup with the 32-byte preimage (the size check stops a
    longer preimage that would claim on chain but could not settle the invoice)."""
    return (
        bytes([OP_SIZE])
        + _push(bytes([32]))
        + bytes([OP_EQUALVERIFY, OP_HASH160])
        + _push(_hash160_of_preimage_hash(preimage_hash))
        + bytes([OP_EQUALVERIFY])
        + _push(_xonly(client_pubkey))
        + bytes([OP_CHECKSIG])
    )


def refund_leaf(refunder_pubkey: bytes, timeout_block_height: int) -> bytes:
    """The locking side takes its coins back once the chain reaches the timeout height."""
    if not 0 < timeout_block_height < 500_000_000:
        raise TreeError("a timeout must be a block height (1 .. 499999999)")
    return (
        _push(_xonly(refunder_pubkey))
        + bytes([OP_CHECKSIGVERIFY])
        + _push(script_num(timeout_block_height))
        + bytes([OP_CHECKLOCKTIMEVERIFY])
    )


def leaf_hash(script: bytes, leaf_version: int = LEAF_VERSION) -> bytes:
    return tagged_hash("TapLeaf", bytes([leaf_version]) + _compact_size(len(script)) + script)


def branch_hash(a: bytes, b: bytes) -> bytes:
    """Children are sorted, so the root does not depend on which leaf is 'left'."""
    return tagged_hash("TapBranch", min(a, b) + max(a, b))


def taptweak(internal_xonly: bytes, merkle_root: bytes | None) -> bytes:
    return tagged_hash("TapTweak", internal_xonly + (merkle_root or b""))


def p2tr_script_pubkey(output_xonly: bytes) -> bytes:
    """OP_1 <32-byte output key>."""
    if len(output_xonly) != 32:
        raise TreeError("a taproot output key must be 32 bytes")
    return b"\x51\x20" + output_xonly


@dataclass(frozen=True)
class SwapTree:
    """A swap's two-leaf tree and the output it defines.

    ``key_agg`` is the MuSig2 context tweaked with this tree: the one to sign key-path spends
    with."""

    swap_type: SwapType
    claim_leaf: bytes
    refund_leaf: bytes
    internal_xonly: bytes
    output_xonly: bytes
    output_parity: int
    key_agg: KeyAgg
    timeout_block_height: int

    @property
    def claim_leaf_hash(self) -> bytes:
        return leaf_hash(self.claim_leaf)

    @property
    def refund_leaf_hash(self) -> bytes:
        return leaf_hash(self.refund_leaf)

    @property
    def merkle_root(self) -> bytes:
        return branch_hash(self.claim_leaf_hash, self.refund_leaf_hash)

    @property
    def script_pubkey(self) -> bytes:
        return p2tr_script_pubkey(self.output_xonly)

    def address(self, network: Network) -> str:
        return segwit_address(network, 1, self.output_xonly)

    def control_block(self, leaf: bytes) -> bytes:
        """(0xc0 | parity) || internal key || the sibling leaf's hash."""
        if leaf == self.claim_leaf:
            sibling = self.refund_leaf_hash
        elif leaf == self.refund_leaf:
            sibling = self.claim_leaf_hash
        else:
            raise TreeError("that script is not a leaf of this swap tree")
        return bytes([LEAF_VERSION | self.output_parity]) + self.internal_xonly + sibling


def swap_tree(
    swap_type: SwapType,
    *,
    boltz_pubkey: bytes,
    client_pubkey: bytes,
    preimage_hash: bytes,
    timeout_block_height: int,
) -> SwapTree:
    """Build the tree from the swap's facts; keys are 33-byte compressed.

    Submarine: Boltz claims, the client refunds. Reverse: the client claims, Boltz refunds."""
    if len(boltz_pubkey) != 33 or len(client_pubkey) != 33:
        raise TreeError("both keys must be 33 bytes (compressed)")
    if swap_type is SwapType.SUBMARINE:
        claim = submarine_claim_leaf(preimage_hash, boltz_pubkey)
        refund = refund_leaf(client_pubkey, timeout_block_height)
    else:
        claim = reverse_claim_leaf(preimage_hash, client_pubkey)
        refund = refund_leaf(boltz_pubkey, timeout_block_height)
    key_agg = KeyAgg([boltz_pubkey, client_pubkey])
    internal = key_agg.xonly()
    root = branch_hash(leaf_hash(claim), leaf_hash(refund))
    tweaked = key_agg.tweak_xonly(taptweak(internal, root))
    return SwapTree(
        swap_type=swap_type,
        claim_leaf=claim,
        refund_leaf=refund,
        internal_xonly=internal,
        output_xonly=tweaked[1:],
        output_parity=tweaked[0] & 1,
        key_agg=key_agg,
        timeout_block_height=timeout_block_height,
    )


# --- bech32m (BIP-350), enough to encode and decode segwit v1 addresses -------------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32M_CONST = 0x2BC830A3


def _polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convertbits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            raise TreeError("invalid data for bit conversion")
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise TreeError("invalid padding")
    return out


def segwit_address(network: Network, version: int, program: bytes) -> str:
    """A bech32m address (segwit v1+ only: taskhold never makes v0 addresses)."""
    if version < 1:
        raise TreeError("only segwit v1+ (bech32m) addresses are encoded here")
    hrp = network.value
    data = [version, *_convertbits(program, 8, 5, True)]
    poly = _polymod(_hrp_expand(hrp) + data + [0] * 6) ^ _BECH32M_CONST
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data + checksum)


def decode_segwit_address(network: Network, address: str) -> tuple[int, bytes]:
    """(version, program) of a bech32m address on ``network``; refuses anything else."""
    if address.lower() != address and address.upper() != address:
        raise TreeError("mixed-case address")
    address = address.lower()
    hrp, sep, rest = address.rpartition("1")
    if not sep or hrp != network.value or len(rest) < 7:
        raise TreeError(f"not a {network.name.lower()} bech32m address")
    try:
        data = [_CHARSET.index(c) for c in rest]
    except ValueError:
        raise TreeError("invalid bech32 character") from None
    if _polymod(_hrp_expand(hrp) + data) != _BECH32M_CONST:
        raise TreeError("bad bech32m checksum")
    version, program = data[0], bytes(_convertbits(data[1:-6], 5, 8, False))
    if version < 1 or not 2 <= len(program) <= 40:
        raise TreeError("not a segwit v1+ program")
    return version, program
