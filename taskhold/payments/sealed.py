"""Sealed payout invoices: what taskhold keeps of an invoice its payee sealed to the operator.

A payee may send its invoice NIP-44 v2 encrypted to the operator key
(``payout_invoice_sealed``, ``refund_invoice_sealed``) instead of in clear, so the invoice,
which names the payee's node, is in no event, log entry, row or answer. What taskhold stores
in its place (the task's ``payout_request``, a payout row's ``payment_request``) is the
*sealed form*::

    sealed:<payment hash>:<sender pubkey>:<operator pubkey>:<ciphertext>

The hash is the one the payee signed (``payout_hash``) and the operator checked against the
opened invoice; it names the payment everywhere an invoice's hash is read. The invoice is
opened in memory, with the operator's keys, only to check it and to pay it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from taskhold.nostr import NostrKeys
from taskhold.nostr.confidential import SealedContentError, open_sealed

from .invoices import decode_invoice

__all__ = [
    "PREFIX",
    "SealedContentError",
    "is_sealed",
    "open_invoice",
    "payment_hash_of",
    "sealed_form",
    "sealed_hash",
    "shown",
]

PREFIX = "sealed:"
_HEX64 = "[0-9a-f]{64}"
_FORM = re.compile(rf"sealed:({_HEX64}):({_HEX64}):({_HEX64}):([A-Za-z0-9+/=]+)")


def sealed_form(payment_hash: str, sender: str, operator: str, ciphertext: str) -> str:
    """The sealed form of an invoice ``sender`` sealed to ``operator``."""
    form = f"{PREFIX}{payment_hash}:{sender}:{operator}:{ciphertext}"
    if _FORM.fullmatch(form) is None:
        raise SealedContentError("a sealed invoice needs hex hashes and keys and a base64 text")
    return form


def is_sealed(request: str | None) -> bool:
    """Whether a stored payout request is the sealed form (else a clear invoice, or None)."""
    return request is not None and request.startswith(PREFIX)


def _parts(request: str) -> tuple[str, str, str, str]:
    match = _FORM.fullmatch(request)
    if match is None:
        raise SealedContentError("not a well-formed sealed invoice")
    payment_hash, sender, operator, ciphertext = match.groups()
    return payment_hash, sender, operator, ciphertext


def sealed_hash(request: str) -> str:
    """The payment hash a sealed form names (the one its payee signed)."""
    return _parts(request)[0]


def open_invoice(keys: Iterable[NostrKeys], request: str) -> str:
    """The invoice text in a sealed form, opened in memory with whichever of the operator's
    ``keys`` (the current one, and the one the last rotation replaced) it was sealed to; a clear
    invoice is returned as it is. Raises ``SealedContentError`` when the form is sealed to none
    of them or does not open."""
    if not is_sealed(request):
        return request
    _, sender, operator, ciphertext = _parts(request)
    sealed_to = next((each for each in keys if each.pubkey_hex == operator), None)
    if sealed_to is None:
        raise SealedContentError("the invoice is sealed to an operator key this taskhold lacks")
    return open_sealed(sealed_to, sender, ciphertext).strip()


def payment_hash_of(request: str) -> str:
    """The payment hash of a stored payout request, sealed or clear."""
    if is_sealed(request):
        return sealed_hash(request)
    return decode_invoice(request).payment_hash_hex


def shown(request: str | None) -> str | None:
    """A stored payout request as answers show it: a sealed one as ``sealed:<payment hash>``
    (an invoice is given, sealed; its payee knows it), a clear one as it is."""
    if request is None or not is_sealed(request):
        return request
    return PREFIX + sealed_hash(request)
