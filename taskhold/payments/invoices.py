"""Checks on the BOLT11 invoices workers give taskhold to be paid with."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import bolt11

from taskhold.errors import Invalid, RefusalCode

__all__ = ["DecodedInvoice", "check_payout_terms", "decode_invoice", "validate_payout_invoice"]


@dataclass(frozen=True, slots=True)
class DecodedInvoice:
    payment_request: str
    payment_hash_hex: str
    amount_msat: int | None
    network: str
    payee_pubkey_hex: str
    created_at: int
    expires_at: int
    min_final_cltv_expiry: int
    """Blocks the payee wants its HTLC to live at least (BOLT11 ``c``; 18 when absent)."""


def decode_invoice(payment_request: str, *, field: str = "payout_invoice") -> DecodedInvoice:
    """Decode and signature-check a BOLT11 invoice; a clear 422 naming ``field`` when it is
    not one."""
    text = payment_request.strip()
    if text.lower().startswith("lightning:"):
        text = text[len("lightning:") :]
    try:
        return _decoded(text)
    except Exception as exc:  # the library raises many kinds for malformed input
        raise Invalid(
            f"{field} is not a valid BOLT11 invoice ({type(exc).__name__})",
            code=RefusalCode.BAD_INVOICE,
        ) from exc


@functools.lru_cache(maxsize=4096)
def _decoded(text: str) -> DecodedInvoice:
    """One invoice decoded once: a release reads its payout invoice several times (its row,
    the rules, the payment), and decoding with its signature check is most of a release's
    own CPU. The answer depends on the text alone; a text that fails is not kept."""
    invoice = bolt11.decode(text)
    amount = int(invoice.amount_msat) if invoice.amount_msat is not None else None
    return DecodedInvoice(
        payment_request=text,
        payment_hash_hex=str(invoice.payment_hash),
        amount_msat=amount,
        network=str(invoice.currency),
        payee_pubkey_hex=str(invoice.payee),
        created_at=int(invoice.date),
        expires_at=int(invoice.date) + int(invoice.expiry or 3600),
        min_final_cltv_expiry=int(invoice.min_final_cltv_expiry or 18),
    )


def validate_payout_invoice(
    payout_invoice: str,
    *,
    expected_msat: int,
    network: str,
    now: int,
    min_validity_s: int,
    forbidden_hashes: frozenset[str],
    field: str = "payout_invoice",
    what: str = "the task amount minus the operator fee",
) -> DecodedInvoice:
    """The worker's invoice must be for exactly the payout, on our network, and stay valid.

    ``forbidden_hashes`` holds the task's own hold-invoice hash: paying an invoice with that hash
    would let its issuer learn the escrow preimage before release.
    """
    invoice = decode_invoice(payout_invoice, field=field)
    if invoice.network != network:
        raise Invalid(
            f"{field} is for network {invoice.network!r}; this taskhold runs on {network!r}",
            code=RefusalCode.WRONG_NETWORK,
        )
    if invoice.amount_msat != expected_msat:
        raise Invalid(
            f"{field} must be for exactly {expected_msat} msat ({what}); it asks for"
            f" {invoice.amount_msat}",
            code=RefusalCode.WRONG_AMOUNT,
        )
    if invoice.expires_at < now + min_validity_s:
        raise Invalid(
            f"{field} expires too soon: it must stay valid at least {min_validity_s} s",
            code=RefusalCode.INVOICE_EXPIRING,
        )
    if invoice.payment_hash_hex in forbidden_hashes:
        raise Invalid(
            f"{field} reuses the task's escrow payment hash", code=RefusalCode.HASH_REUSED
        )
    return invoice


def check_payout_terms(
    invoice: DecodedInvoice,
    payout_hash: str | None,
    payout_msat: int | None,
    *,
    field: str = "payout_invoice",
) -> None:
    """The payee signs, in clear, the hash and amount of the invoice it gives: the public log
    can then prove the payout (the settlement entry's payout preimage hashes to that hash)
    even when the invoice itself is not published. Terms that are not the invoice's are
    refused, or the log would prove a payment the payee never asked for; so are none."""
    if payout_hash is None or payout_msat is None:
        raise Invalid(
            f"payout_hash and payout_msat are required: sign {field}'s payment hash and amount"
            " in clear with it",
            code=RefusalCode.INVALID_CONTENT,
        )
    if payout_hash != invoice.payment_hash_hex or payout_msat != invoice.amount_msat:
        raise Invalid(
            f"payout_hash and payout_msat must be {field}'s payment hash and amount"
            f" ({invoice.payment_hash_hex}, {invoice.amount_msat} msat); they are"
            f" {payout_hash}, {payout_msat} msat",
            code=RefusalCode.PAYOUT_TERMS_MISMATCH,
        )
