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
from dataclasses import dataclass
from typing import Any, ClassVar

from nostr_sdk import (
    MakeInvoiceRequest,
    NostrWalletConnect,
    NostrWalletConnectBuilder,
    NostrWalletConnectUri,
    PayInvoiceRequest,
    uniffi_set_event_loop,
)

from .connection_strings import ConnectionString, answer_within

__all__ = ["WalletConnectError", "WalletConnectUri", "WalletConnection"]

_SDK_TIMEOUT = datetime.timedelta(days=1)
"""nostr-sdk's own timeout, one for every method: out of the way, since each call here is
bounded by its own (a payment to a hold invoice may wait far longer than a balance)."""


class WalletConnectError(Exception):
    """The wallet service answered with an error (its message is in the text)."""


@dataclass(frozen=True, slots=True)
class WalletConnectUri(ConnectionString):
    """A parsed ``nostr+walletconnect://`` string (its ``pubkey`` is the wallet service's)."""

    scheme: ClassVar[str] = "nostr+walletconnect"
    service: ClassVar[str] = "the NWC wallet"
    secret_required: ClassVar[bool] = True

    @classmethod
    def sdk_parse(cls, text: str) -> Any:
        return NostrWalletConnectUri.parse(text)


class WalletConnection:
    """One NWC connection; nothing is sent until a method is called."""

    def __init__(self, uri: WalletConnectUri, timeout_s: float) -> None:
        self._uri = uri
        self._timeout_s = timeout_s
        self._nwc: NostrWalletConnect | None = None

    @property
    def service_pubkey(self) -> str:
        return self._uri.pubkey

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
        return await answer_within(
            self._uri, limit_s, method, call, WalletConnectError, "--wallet-timeout"
        )

    async def aclose(self) -> None:
        if self._nwc is not None:
            self._nwc = None
            await asyncio.sleep(0.1)  # let nostr-sdk's relay tasks unwind (nostr.md pitfall 6)

    def __repr__(self) -> str:
        return f"WalletConnection(service={self.service_pubkey!r})"
