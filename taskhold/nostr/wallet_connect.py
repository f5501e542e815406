"""A participant's wallet over Nostr Wallet Connect (NIP-47), through nostr-sdk's client.

The connection string is ``nostr+walletconnect://<wallet-service-pubkey>?relay=…&secret=…``;
the secret is the key this client signs and encrypts its requests with, so it is kept out of
every ``repr``, error and log line (nostr-sdk's errors are scrubbed of it). nostr-sdk's client
listens only for answers signed by the wallet service's pubkey (verified: an answer from any
other key is ignored, the call then times out), encrypts with NIP-44 v2, and turns an answer's
``error`` into an exception carrying the wallet's message.

Every call is bounded by ``timeout_s``: a wallet that never answers is a TimeoutError naming
the method, never a hang.
"""

from __future__ import annotations

import asyncio
import datetime
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from nostr_sdk import (
    MakeInvoiceRequest,
    NostrSdkError,
    NostrWalletConnect,
    NostrWalletConnectBuilder,
    NostrWalletConnectUri,
    PayInvoiceRequest,
    uniffi_set_event_loop,
)

__all__ = ["WalletConnectError", "WalletConnectUri", "WalletConnection"]

_HEX64 = re.compile(r"[0-9a-f]{64}")

_SDK_TIMEOUT = datetime.timedelta(days=1)
"""nostr-sdk's own timeout, one for every method: out of the way, since each call here is
bounded by its own (a payment to a hold invoice may wait far longer than a balance)."""


class WalletConnectError(Exception):
    """The wallet service answered with an error (its message is in the text)."""


@dataclass(frozen=True, slots=True)
class WalletConnectUri:
    """A parsed ``nostr+walletconnect://`` string; the secret is kept out of ``repr``."""

    service_pubkey: str
    relays: tuple[str, ...]
    uri: str = field(repr=False)
    secret: str = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> WalletConnectUri:
        """ValueError (never repeating the text: it holds the secret) unless ``text`` is a
        NIP-47 connection string: a hex service pubkey, ws(s) relays and a 64-hex secret."""
        parts = urlsplit(text.strip())
        if parts.scheme != "nostr+walletconnect":
            raise ValueError("an NWC wallet is nostr+walletconnect://<pubkey>?relay=…&secret=…")
        if _HEX64.fullmatch(parts.netloc) is None:
            raise ValueError("nostr+walletconnect://<pubkey>: the service pubkey is 64 lower hex")
        query = parse_qs(parts.query)
        relays = tuple(query.get("relay", ()))
        if not relays or not all(urlsplit(url).scheme in ("ws", "wss") for url in relays):
            raise ValueError("nostr+walletconnect://…?relay=ws(s)://…: name the wallet's relay")
        secret = (query.get("secret") or [""])[0]
        if re.fullmatch(r"[0-9a-fA-F]{64}", secret) is None:
            raise ValueError("nostr+walletconnect://…&secret=…: the secret is 64 hex characters")
        try:
            NostrWalletConnectUri.parse(text.strip())
        except NostrSdkError:
            raise ValueError("not a nostr+walletconnect:// string nostr-sdk can use") from None
        return cls(parts.netloc, relays, text.strip(), secret)

    def scrub(self, text: str) -> str:
        for hidden in (self.uri, self.secret):
            text = text.replace(hidden, "***")
        return text


class WalletConnection:
    """One NWC connection; nothing is sent until a method is called."""

    def __init__(self, uri: WalletConnectUri, timeout_s: float) -> None:
        self._uri = uri
        self._timeout_s = timeout_s
        self._nwc: NostrWalletConnect | None = None

    @property
    def service_pubkey(self) -> str:
        return self._uri.service_pubkey

    def _client(self) -> NostrWalletConnect:
        if self._nwc is None:
            uniffi_set_event_loop(asyncio.get_running_loop())
            parsed = NostrWalletConnectUri.parse(self._uri.uri)
            self._nwc = NostrWalletConnectBuilder(parsed).timeout(_SDK_TIMEOUT).build()
        return self._nwc

    async def pay_invoice(self, invoice: str, *, timeout_s: float | None = None) -> str:
        """Pay ``invoice``; its preimage once the wallet says it is paid. ``timeout_s`` (None:
        the connection's) bounds the wait; a hold invoice is answered only once settled."""
        request = PayInvoiceRequest(id=None, invoice=invoice, amount=None)
        answer = await self._call("pay_invoice", self._client().pay_invoice(request), timeout_s)
        return str(answer.preimage)

    async def make_invoice(self, amount_msat: int, description: str, expiry_s: int) -> str:
        """A BOLT11 invoice for ``amount_msat`` that the wallet is paid to."""
        request = MakeInvoiceRequest(
            amount=amount_msat, description=description, description_hash=None, expiry=expiry_s
        )
        answer = await self._call("make_invoice", self._client().make_invoice(request), None)
        return str(answer.invoice)

    async def balance_msat(self) -> int:
        answer = await self._call("get_balance", self._client().get_balance(), None)
        return int(answer.balance)

    async def _call(self, method: str, call: Any, timeout_s: float | None) -> Any:
        limit_s = self._timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(limit_s):
                return await call
        except TimeoutError:
            raise TimeoutError(
                f"the NWC wallet {self.service_pubkey[:16]}… did not answer {method} within"
                f" {limit_s:g} s (--wallet-timeout)"
            ) from None
        except NostrSdkError as exc:
            raise WalletConnectError(
                self._uri.scrub(f"the NWC wallet refused {method}: {exc}")
            ) from None

    async def aclose(self) -> None:
        if self._nwc is not None:
            self._nwc = None
            await asyncio.sleep(0.1)  # let nostr-sdk's relay tasks unwind (nostr.md pitfall 6)

    def __repr__(self) -> str:
        return f"WalletConnection(service={self.service_pubkey!r})"
