"""Nostr keys and NIP-01 event signing, wrapped so nostr-sdk's API churn stays in this package.

Events leave this module as plain JSON dicts: the rest of taskhold stores, embeds and sends them
without touching nostr-sdk types. The secret key is never part of a ``repr`` or an error message;
the only way out is :meth:`NostrKeys.secret_hex_unsafe`, named so a reviewer notices each use.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from coincurve import PrivateKey
from nostr_sdk import (
    EventBuilder,
    Keys,
    Kind,
    NostrSdkError,
    PublicKey,
    SingleThreadPow,
    Tag,
    Timestamp,
)

from .private_messages import PrivateMessage, open_private_message, wrap_private_message
from .verify import nip01_id

__all__ = ["NostrKeys"]

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class NostrKeys:
    """One participant's (or the operator's) Nostr key pair. Build it with a classmethod."""

    __slots__ = ("_keys", "_pubkey_hex", "_signing_key")

    def __init__(self, keys: Keys) -> None:
        self._keys = keys
        self._pubkey_hex: str = keys.public_key().to_hex()
        # BIP-340 signing on coincurve: a tenth of the cost of building the event in nostr-sdk,
        # and the log signs two events per write.
        self._signing_key = PrivateKey(bytes.fromhex(keys.secret_key().to_hex()))

    @classmethod
    def generate(cls) -> NostrKeys:
        """A fresh random key pair."""
        return cls(Keys.generate())

    @classmethod
    def from_secret_hex(cls, secret_hex: str) -> NostrKeys:
        """Keys from a 64-hex secret, as saved by :meth:`secret_hex_unsafe`."""
        if not isinstance(secret_hex, str) or _HEX64.fullmatch(secret_hex) is None:
            raise ValueError("a Nostr secret key in hex must be exactly 64 hex characters")
        return cls.parse(secret_hex)

    @classmethod
    def parse(cls, nsec_or_hex: str) -> NostrKeys:
        """Keys from an ``nsec1...`` string or a 64-hex secret.

        The error never repeats the input: it is a secret, and error messages end up in logs.
        """
        try:
            return cls(Keys.parse(nsec_or_hex.strip()))
        except (NostrSdkError, AttributeError, TypeError):
            raise ValueError(
                "not a valid Nostr secret key: expected nsec1... or 64 hex characters"
            ) from None

    @property
    def pubkey_hex(self) -> str:
        """The x-only public key, 64 lowercase hex characters, as it appears in events."""
        return self._pubkey_hex

    @property
    def npub(self) -> str:
        """The public key in NIP-19 ``npub1...`` form, for people."""
        npub: str = self._keys.public_key().to_bech32()
        return npub

    def secret_hex_unsafe(self) -> str:
        """The secret key in hex. Only for writing a key file; never log or return it."""
        secret: str = self._keys.secret_key().to_hex()
        return secret

    def sign_event(
        self, kind: int, content: str, tags: list[list[str]], created_at: int
    ) -> dict[str, Any]:
        """Sign a NIP-01 event and return it as a JSON dict (id, pubkey, ..., sig).

        ``created_at`` is passed in, never read from the clock here, so callers decide time
        (the log's ``created_at`` must never go backwards).
        """
        if isinstance(kind, bool) or not isinstance(kind, int) or not 0 <= kind <= 0xFFFF:
            raise ValueError(f"kind must be an integer from 0 to 65535, not {kind!r}")
        if isinstance(created_at, bool) or not isinstance(created_at, int) or created_at < 0:
            raise ValueError(f"created_at must be a non-negative integer, not {created_at!r}")
        if not isinstance(content, str):
            raise ValueError("cannot sign this event: content must be a string")
        if not isinstance(tags, list | tuple) or not all(
            isinstance(tag, list | tuple) and tag and all(isinstance(value, str) for value in tag)
            for tag in tags
        ):
            raise ValueError("cannot sign this event: tags must be non-empty lists of strings")
        event: dict[str, Any] = {
            "id": "",
            "pubkey": self._pubkey_hex,
            "created_at": created_at,
            "kind": kind,
            "tags": [list(tag) for tag in tags],
            "content": content,
            "sig": "",
        }
        try:
            event["id"] = nip01_id(event)
        except ValueError as exc:  # e.g. a lone surrogate in the content
            raise ValueError(f"cannot sign this event: {exc}") from None
        # Fresh auxiliary randomness for each signature, as BIP-340 recommends.
        event["sig"] = self._signing_key.sign_schnorr(
            bytes.fromhex(event["id"]), os.urandom(32)
        ).hex()
        return event

    def sign_event_mined(
        self, kind: int, content: str, tags: list[list[str]], created_at: int, difficulty: int
    ) -> dict[str, Any]:
        """Like :meth:`sign_event`, with NIP-13 proof of work: a ``["nonce", n, difficulty]``
        tag is added and the id has at least ``difficulty`` leading zero bits.

        Each extra bit doubles the expected work (about a second per 2^20 hashes here).
        """
        if isinstance(difficulty, bool) or not isinstance(difficulty, int):
            raise ValueError(f"difficulty must be an integer, not {difficulty!r}")
        if not 0 <= difficulty <= 64:
            raise ValueError(f"difficulty must be from 0 to 64 bits, not {difficulty}")
        if difficulty == 0:
            return self.sign_event(kind, content, tags, created_at)
        if isinstance(created_at, bool) or not isinstance(created_at, int) or created_at < 0:
            raise ValueError(f"created_at must be a non-negative integer, not {created_at!r}")
        try:
            unsigned = (
                EventBuilder(Kind(kind), content)
                .tags([Tag.parse(list(tag)) for tag in tags])
                .custom_created_at(Timestamp.from_secs(created_at))
                .finalize_unsigned(self._keys.public_key())
            )
            event = unsigned.mine(SingleThreadPow(), difficulty).sign(self._keys)
        except (NostrSdkError, OverflowError, TypeError, ValueError) as exc:
            raise ValueError(f"cannot sign this event: {exc}") from None
        signed: dict[str, Any] = json.loads(event.as_json())
        return signed

    def __repr__(self) -> str:
        return f"NostrKeys(npub={self.npub!r})"

    # NIP-17 private messages (taskhold.nostr.private_messages) -----------------------------

    def private_message(
        self, receiver_hex: str, text: str, tags: list[list[str]]
    ) -> dict[str, Any]:
        """A NIP-17 gift wrap from this key to ``receiver_hex``: only the receiver opens it."""
        return wrap_private_message(self._keys, receiver_hex, text, tags)

    def open_private_message(self, gift_wrap: dict[str, Any]) -> PrivateMessage:
        """Open a gift wrap addressed to this key; ValueError if it is someone else's."""
        return open_private_message(self._keys, gift_wrap)


def pubkey_hex(npub_or_hex: str) -> str:
    """A public key given as ``npub1…`` or 64 hex, as lowercase hex; ValueError otherwise."""
    try:
        return str(PublicKey.parse(npub_or_hex.strip()).to_hex())
    except Exception as exc:  # nostr-sdk raises its own error types for bad input
        raise ValueError(f"not a Nostr public key (npub1… or 64 hex): {npub_or_hex!r}") from exc
