"""Confidential content with a public commitment: sealed to its parties, hashed for everyone.

A confidential item (a private task's details, a proof) travels as its *payload*: the UTF-8
canonical JSON of ``{"salt": <64 hex random>, "body": <the item>}``. Its *commitment* is
``sha256(payload bytes)`` in lower hex, and that is all the public log says about it. The payload
itself is NIP-44 v2 encrypted separately for each party that needs it (a *sealed copy*); a
copy opens only with the recipient's secret key and the sender's public key. The salt keeps a
short body (a yes, a number) from being guessed back from its hash.

A *disclosure* is the payload: anyone holding it checks it against the commitment by hashing
(``check_disclosure``), with no key. The independent auditor re-implements that one line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable
from typing import Any

from nostr_sdk import Nip44Version, NostrSdkError, PublicKey, nip44_decrypt, nip44_encrypt

from .entries import canonical_json
from .signing import NostrKeys

__all__ = [
    "SealedContentError",
    "check_disclosure",
    "commitment",
    "make_payload",
    "open_sealed",
    "payload_body",
    "seal",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
SALT_BYTES = 32


class SealedContentError(ValueError):
    """A sealed copy that does not open, or a payload that is not well formed. The message never
    repeats the plaintext."""


def make_payload(body: Any) -> str:
    """A fresh payload for ``body`` (any JSON value), with a new random salt."""
    return canonical_json({"salt": secrets.token_hex(SALT_BYTES), "body": body})


def commitment(payload: str) -> str:
    """The public commitment to a payload: sha256 of its UTF-8 bytes, lower hex."""
    return hashlib.sha256(payload.encode()).hexdigest()


def check_disclosure(payload: str, committed: str) -> bool:
    """Whether a disclosed payload is the one committed to (constant-time compare)."""
    return hmac.compare_digest(commitment(payload), committed.lower())


def payload_body(payload: str) -> Any:
    """The body of a well-formed payload: canonical JSON of exactly ``salt`` (64 lower hex) and
    ``body``. Anything else raises ``SealedContentError``, so every party hashes the same bytes."""
    try:
        parsed = json.loads(payload)
    except ValueError:
        raise SealedContentError("the sealed content is not JSON") from None
    if not isinstance(parsed, dict) or set(parsed) != {"salt", "body"}:
        raise SealedContentError("the sealed content must be an object of salt and body")
    salt = parsed["salt"]
    if not isinstance(salt, str) or _HEX64.fullmatch(salt) is None:
        raise SealedContentError("the sealed content's salt must be 64 lowercase hex characters")
    if canonical_json(parsed) != payload:
        raise SealedContentError("the sealed content is not in canonical JSON")
    return parsed["body"]


def seal(sender: NostrKeys, recipients: Iterable[str], payload: str) -> dict[str, str]:
    """One NIP-44 v2 copy of ``payload`` per recipient (hex pubkey -> ciphertext)."""
    secret = _sdk_keys(sender).secret_key()
    return {
        recipient: nip44_encrypt(secret, _public_key(recipient), payload, Nip44Version.V2)
        for recipient in dict.fromkeys(recipients)
    }


def open_sealed(recipient: NostrKeys, sender_pubkey: str, ciphertext: str) -> str:
    """The payload in a copy sealed by ``sender_pubkey`` to ``recipient``; raises
    ``SealedContentError`` when it does not open with these keys."""
    try:
        opened: str = nip44_decrypt(
            _sdk_keys(recipient).secret_key(), _public_key(sender_pubkey), ciphertext
        )
    except (NostrSdkError, TypeError, ValueError):
        raise SealedContentError("the sealed copy does not open with this key") from None
    return opened


def _sdk_keys(keys: NostrKeys) -> Any:
    """The nostr-sdk key pair inside ``NostrKeys``: this package is the one that may touch it."""
    return keys._keys


def _public_key(pubkey_hex: str) -> Any:
    if not isinstance(pubkey_hex, str) or _HEX64.fullmatch(pubkey_hex) is None:
        raise SealedContentError("a recipient or sender must be a 64 lowercase hex public key")
    try:
        return PublicKey.parse(pubkey_hex)
    except NostrSdkError:
        raise SealedContentError("not a valid public key") from None
