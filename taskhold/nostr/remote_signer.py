"""Signing through a NIP-46 remote signer ("bunker"): the participant's key stays in the bunker.

The connection string is ``bunker://<remote-signer-pubkey>?relay=wss://…&secret=…``. nostr-sdk's
``NostrConnect`` speaks the protocol (kind-24133 requests, NIP-44 encrypted, ``connect`` with
the secret, then ``get_public_key``). What it does not do is check what comes back: a
``sign_event`` answer signed by another key, or for another event, is handed over as it is
(verified against nostr-sdk 0.45.1). So every signed event is checked here before it leaves:
its id and signature, its author (the user key the bunker named), and that it is the very
event asked for. A bunker that answers otherwise is refused, and nothing is sent on its word.

The secret is a password: it never appears in a ``repr``, an error or a log line; errors
nostr-sdk raises are scrubbed of it before they travel on. Every call is bounded by
``timeout_s``: a bunker that never answers is an error, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

from nostr_sdk import (
    EventBuilder,
    Keys,
    Kind,
    NostrConnect,
    NostrConnectUri,
    NostrSdkError,
    PublicKey,
    SingleThreadPow,
    Tag,
    Timestamp,
    uniffi_set_event_loop,
)

from .connection_strings import ConnectionString, answer_within
from .verify import verify_event

__all__ = ["BunkerAddress", "RemoteSigner", "RemoteSignerError", "remote_signer"]

_SDK_GRACE_S = 5.0
"""nostr-sdk's own timeout is set this much later than ours, so ours (a clear TimeoutError
with what was asked) is the one that fires."""


class RemoteSignerError(Exception):
    """The remote signer refused, or answered with something unusable (silence is a
    TimeoutError)."""


@dataclass(frozen=True, slots=True)
class BunkerAddress(ConnectionString):
    """A parsed ``bunker://`` string (its ``pubkey`` is the remote signer's own key)."""

    scheme: ClassVar[str] = "bunker"
    service: ClassVar[str] = "the remote signer"

    @classmethod
    def sdk_parse(cls, text: str) -> Any:
        return NostrConnectUri.parse(text)


class RemoteSigner:
    """A connected bunker, known by the user pubkey it signs for. Build with
    :func:`remote_signer`."""

    def __init__(self, address: BunkerAddress, connection: Any, pubkey_hex: str, timeout_s: float):
        self._address = address
        self._connection = connection
        self._pubkey_hex = pubkey_hex
        self._timeout_s = timeout_s

    @property
    def pubkey_hex(self) -> str:
        """The user's key (from ``get_public_key``), not the remote signer's own."""
        return self._pubkey_hex

    @property
    def npub(self) -> str:
        npub: str = PublicKey.parse(self._pubkey_hex).to_bech32()
        return npub

    @property
    def signer_pubkey(self) -> str:
        return self._address.pubkey

    async def sign_event(
        self, kind: int, content: str, tags: list[list[str]], created_at: int, difficulty: int = 0
    ) -> dict[str, Any]:
        """The event, signed in the bunker and checked here (see the module's docstring).
        With ``difficulty`` the NIP-13 nonce is mined here first, so the bunker signs the
        mined event as it is."""
        try:
            unsigned = (
                EventBuilder(Kind(kind), content)
                .tags([Tag.parse(list(tag)) for tag in tags])
                .custom_created_at(Timestamp.from_secs(created_at))
                .finalize_unsigned(PublicKey.parse(self._pubkey_hex))
            )
            if difficulty > 0:
                unsigned = await asyncio.to_thread(unsigned.mine, SingleThreadPow(), difficulty)
        except (NostrSdkError, OverflowError, TypeError, ValueError) as exc:
            raise ValueError(f"cannot sign this event: {exc}") from None
        asked: dict[str, Any] = json.loads(unsigned.as_json())
        signed = await _bounded(
            self._address,
            self._timeout_s,
            "sign_event",
            self._connection.sign_event_async(unsigned),
        )
        event: dict[str, Any] = json.loads(signed.as_json())
        if not verify_event(event):
            raise RemoteSignerError("the remote signer answered with an event that does not verify")
        if event["pubkey"] != self._pubkey_hex:
            raise RemoteSignerError(
                f"the remote signer answered with an event signed by {event['pubkey']}, not by"
                f" {self._pubkey_hex}, the key it named: refused, nothing was sent"
            )
        if any(event[name] != asked[name] for name in ("kind", "content", "tags", "created_at")):
            raise RemoteSignerError(
                "the remote signer signed another event than the one asked for: refused,"
                " nothing was sent"
            )
        return event

    def __repr__(self) -> str:
        return f"RemoteSigner(npub={self.npub!r}, signer={self.signer_pubkey!r})"


@contextlib.asynccontextmanager
async def remote_signer(address: BunkerAddress, timeout_s: float) -> AsyncIterator[RemoteSigner]:
    """Connect to the bunker (``connect`` with the secret, then ``get_public_key``), each call
    bounded by ``timeout_s``: RemoteSignerError if it refuses, TimeoutError if it is silent."""
    uniffi_set_event_loop(asyncio.get_running_loop())
    sdk_timeout = datetime.timedelta(seconds=timeout_s + _SDK_GRACE_S)
    try:
        connection = NostrConnect(
            NostrConnectUri.parse(address.uri), Keys.generate(), sdk_timeout, None
        )
    except NostrSdkError as exc:
        raise RemoteSignerError(address.scrub(f"cannot use the remote signer: {exc}")) from None
    public_key = await _bounded(
        address, timeout_s, "connect and get_public_key", connection.get_public_key_async()
    )
    pubkey_hex = str(public_key.to_hex())
    try:
        yield RemoteSigner(address, connection, pubkey_hex, timeout_s)
    finally:
        del connection
        # nostr-sdk's relay tasks unwind in the background; let them before the loop closes
        # (reference/nostr.md, pitfall 6).
        await asyncio.sleep(0.1)


async def _bounded(address: BunkerAddress, timeout_s: float, what: str, call: Any) -> Any:
    return await answer_within(
        address, timeout_s, what, call, RemoteSignerError, "--signer-timeout"
    )
