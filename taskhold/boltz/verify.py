"""Don't trust, verify: the client's checks of a swap Boltz created (docs/dont-trust-verify).

The swap tree is rebuilt from the client's own facts (its key, the payment hash it knows, the
key and timeout Boltz states) with ``taskhold.swaps.tree``; Boltz's leaves and address must be
exactly those. For a reverse swap the hold invoice Boltz asks taskhold to pay must commit to the
client's preimage hash and the agreed amount, on the right network. Any difference raises
``SwapMismatch`` naming it, before a coin is locked or an invoice handed on. The returned
``SwapTree`` is the one to spend with later; Boltz's copy is never used again.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import parse_qs

import bolt11

from taskhold.swaps.errors import SwapMismatch, TreeError
from taskhold.swaps.tree import LEAF_VERSION, Network, SwapTree, SwapType, swap_tree

from .models import ReverseResponse, SubmarineResponse, SwapTreeLeaves

__all__ = ["InvoiceFacts", "decode_invoice", "verify_reverse", "verify_submarine"]


@dataclass(frozen=True, slots=True)
class InvoiceFacts:
    """What the client checks in a BOLT11 invoice (and feeds to ``swaps.timing``)."""

    network: str
    payment_hash: bytes
    amount_msat: int | None
    min_final_cltv: int
    expires_at: int


def decode_invoice(invoice: str) -> InvoiceFacts:
    """Decode and check the signature; any malformed invoice is a ``SwapMismatch``."""
    try:
        decoded = bolt11.decode(invoice.strip().removeprefix("lightning:"))
        amount = decoded.amount_msat
        return InvoiceFacts(
            network=str(decoded.currency),
            payment_hash=bytes.fromhex(decoded.payment_hash),
            amount_msat=None if amount is None else int(amount),
            min_final_cltv=int(decoded.min_final_cltv_expiry),
            expires_at=int(decoded.date) + int(decoded.expiry),
        )
    except Exception as exc:  # the library raises many kinds for malformed input
        raise SwapMismatch(f"the invoice is not a valid BOLT11 invoice ({exc})") from None


def _rebuild(
    swap_type: SwapType,
    leaves: SwapTreeLeaves,
    *,
    boltz_pubkey: bytes,
    client_pubkey: bytes,
    preimage_hash: bytes,
    timeout_block_height: int,
    address: str,
    network: Network,
) -> SwapTree:
    if boltz_pubkey == client_pubkey:
        raise SwapMismatch("Boltz states our own public key as its key")
    if leaves.claim_version != LEAF_VERSION or leaves.refund_version != LEAF_VERSION:
        raise SwapMismatch(
            f"leaf versions {leaves.claim_version}/{leaves.refund_version}, not {LEAF_VERSION}"
        )
    try:
        tree = swap_tree(
            swap_type,
            boltz_pubkey=boltz_pubkey,
            client_pubkey=client_pubkey,
            preimage_hash=preimage_hash,
            timeout_block_height=timeout_block_height,
        )
    except TreeError as exc:
        raise SwapMismatch(f"the swap's facts do not make a swap tree: {exc}") from None
    if leaves.claim_leaf != tree.claim_leaf:
        raise SwapMismatch(
            "the claim leaf differs from ours (another key or preimage hash):"
            f" Boltz {leaves.claim_leaf.hex()}, ours {tree.claim_leaf.hex()}"
        )
    if leaves.refund_leaf != tree.refund_leaf:
        raise SwapMismatch(
            "the refund leaf differs from ours (another key or timeout):"
            f" Boltz {leaves.refund_leaf.hex()}, ours {tree.refund_leaf.hex()}"
        )
    ours = tree.address(network)
    if address.lower() != ours:
        raise SwapMismatch(f"the address {address!r} is not the tree's address {ours!r}")
    return tree


def _check_bip21(bip21: str, address: str, amount_sat: int) -> None:
    """A wallet handed Boltz's BIP-21 URI pays what it says, so it must say our address and
    the expected amount."""
    scheme, _, rest = bip21.partition(":")
    target, _, query = rest.partition("?")
    if scheme.lower() != "bitcoin" or target.lower() != address:
        raise SwapMismatch(f"the BIP-21 URI does not pay the tree's address {address!r}")
    amounts = parse_qs(query).get("amount", [])
    try:
        stated = [Decimal(a) * 100_000_000 for a in amounts]
    except ArithmeticError:
        raise SwapMismatch("the BIP-21 URI's amount is not a number") from None
    if stated != [amount_sat]:
        raise SwapMismatch(f"the BIP-21 URI asks {amounts}, not {amount_sat} sat")


def verify_submarine(
    response: SubmarineResponse, *, refund_pubkey: bytes, payment_hash: bytes, network: Network
) -> SwapTree:
    """Boltz claims with ``claimPublicKey`` and the invoice's preimage; we refund with our key
    after ``timeoutBlockHeight``. The lockup goes to the returned tree's address (and the
    BIP-21 URI, when Boltz gives one, must say that address and ``expectedAmount``)."""
    tree = _rebuild(
        SwapType.SUBMARINE,
        response.swap_tree,
        boltz_pubkey=response.claim_public_key,
        client_pubkey=refund_pubkey,
        preimage_hash=payment_hash,
        timeout_block_height=response.timeout_block_height,
        address=response.address,
        network=network,
    )
    if response.bip21 is not None:
        _check_bip21(response.bip21, tree.address(network), response.expected_amount)
    return tree


def verify_reverse(
    response: ReverseResponse,
    *,
    claim_pubkey: bytes,
    preimage_hash: bytes,
    network: Network,
    invoice_amount_sat: int,
) -> SwapTree:
    """We claim with our key and preimage; Boltz refunds with ``refundPublicKey`` after the
    timeout. Its hold invoice must be for our hash and the agreed amount."""
    tree = _rebuild(
        SwapType.REVERSE,
        response.swap_tree,
        boltz_pubkey=response.refund_public_key,
        client_pubkey=claim_pubkey,
        preimage_hash=preimage_hash,
        timeout_block_height=response.timeout_block_height,
        address=response.lockup_address,
        network=network,
    )
    invoice = decode_invoice(response.invoice)
    if invoice.network != network.value:
        raise SwapMismatch(f"the invoice is for network {invoice.network!r}, not {network.value!r}")
    if invoice.payment_hash != preimage_hash:
        raise SwapMismatch(
            f"the invoice's payment hash {invoice.payment_hash.hex()} is not our preimage hash"
            f" {preimage_hash.hex()}"
        )
    if invoice.amount_msat != invoice_amount_sat * 1000:
        raise SwapMismatch(
            f"the invoice asks {invoice.amount_msat} msat, not the agreed"
            f" {invoice_amount_sat * 1000} msat"
        )
    return tree
