"""The signer boundary: every Nostr signature taskhold makes goes through one of these.

The method names are NIP-46's (``get_public_key``, ``sign_event``) so a remote signer can take
the place of the local one without touching callers. The signer enforces which kinds it may sign
and reports every signature to an observer (the audit log).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from taskhold.errors import Forbidden, RefusalCode
from taskhold.nostr import NostrKeys
from taskhold.nostr.private_messages import GIFT_WRAP_KIND

__all__ = [
    "EventSigner",
    "LocalSigner",
    "PrivateMessenger",
    "SignObserver",
    "load_or_create_key_file",
]

SignObserver = Callable[[dict[str, Any]], None]
"""Called with every event just signed (id, kind, created_at …); never with secret material."""


@runtime_checkable
class EventSigner(Protocol):
    def get_public_key(self) -> str:
        """Hex x-only public key of the signing key."""
        ...

    def sign_event(
        self, kind: int, content: str, tags: list[list[str]], created_at: int
    ) -> dict[str, Any]:
        """The signed NIP-01 event; refuses kinds outside the signer's policy."""
        ...


class LocalSigner:
    """A key held in this process, with a kind policy and a signature observer."""

    def __init__(
        self,
        keys: NostrKeys,
        *,
        allowed_kinds: frozenset[int],
        observer: SignObserver | None = None,
    ) -> None:
        self._keys = keys
        self._allowed_kinds = allowed_kinds
        self._observer = observer

    def __repr__(self) -> str:
        kinds = sorted(self._allowed_kinds)
        return f"LocalSigner(pubkey={self._keys.pubkey_hex[:16]}…, kinds={kinds})"

    def set_observer(self, observer: SignObserver | None) -> None:
        self._observer = observer

    def get_public_key(self) -> str:
        return self._keys.pubkey_hex

    def sign_event(
        self, kind: int, content: str, tags: list[list[str]], created_at: int
    ) -> dict[str, Any]:
        if kind not in self._allowed_kinds:
            raise Forbidden(
                f"the operator key may not sign kind {kind}", code=RefusalCode.KIND_NOT_ALLOWED
            )
        event = self._keys.sign_event(kind, content, tags, created_at)
        self._observe(event["id"], kind, created_at)
        return event

    def private_message(self, receiver: str, text: str, tags: list[list[str]]) -> dict[str, Any]:
        """A NIP-17 gift wrap from this key to ``receiver`` (the seal inside is this key's
        signature, the wrap a one-time key's); only where the policy allows the wrap's kind
        (checked before the seal is signed: the key signs nothing the policy refuses)."""
        if GIFT_WRAP_KIND not in self._allowed_kinds:
            raise Forbidden(
                f"the operator key may not send private messages (kind {GIFT_WRAP_KIND})",
                code=RefusalCode.KIND_NOT_ALLOWED,
            )
        wrap = self._keys.private_message(receiver, text, tags)
        self._observe(wrap["id"], wrap["kind"], wrap["created_at"])
        return wrap

    def _observe(self, event_id: str, kind: int, created_at: int) -> None:
        """Report a signature by this key to the observer (never secret material)."""
        if self._observer is not None:
            self._observer(
                {
                    "id": event_id,
                    "kind": kind,
                    "created_at": created_at,
                    "pubkey": self._keys.pubkey_hex,
                }
            )


@runtime_checkable
class PrivateMessenger(Protocol):
    def private_message(self, receiver: str, text: str, tags: list[list[str]]) -> dict[str, Any]:
        """A NIP-17 gift wrap (kind 1059) carrying ``text`` and ``tags`` to ``receiver``."""
        ...


def load_or_create_key_file(path: Path) -> NostrKeys:
    """The operator's Nostr key from a file only its owner can read (created on first use)."""
    if path.exists():
        return NostrKeys.from_secret_hex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = NostrKeys.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(keys.secret_hex_unsafe())
    return keys
