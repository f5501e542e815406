"""A NIP-47 wallet service for tests, speaking Nostr Wallet Connect over a real relay.

It does what a wallet bridge (Alby Hub, a node's NWC plugin) does: publishes its info event
(kind 13194: the methods it offers, ``nip44_v2 nip04`` encryption), reads requests (kind 23194)
``p``-tagged to its key, decrypts them as their ``encryption`` tag says (no tag: NIP-04, as the
spec's backwards-compatibility note requires), does the work on a backend, and answers (kind
23195) encrypted the same way, ``p``-tagged to the client and ``e``-tagged to the request.

Backends: the simulator's wallet routes (``SimBackend``) and an lnd node (``LndBackend``, the
devnet test). A ``pay_invoice`` to a hold invoice is answered only when the payment settles,
as a real wallet would (it has no preimage before): for an escrow that is after the task ends.

``behaviour`` makes it hostile: ``broke`` answers every payment with ``INSUFFICIENT_BALANCE``,
``silent`` never answers. An :class:`Impostor` answers every request on the relay with its own
key, faster than the real service.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any, Literal, Protocol
from urllib.parse import quote

import httpx
from nostr_sdk import (
    EventBuilder,
    Filter,
    Keys,
    Kind,
    Nip44Version,
    PublicKey,
    SecretKey,
    Tag,
    nip04_decrypt,
    nip04_encrypt,
    nip44_decrypt,
    nip44_encrypt,
)

from support.nostr_services import ServiceLoop, recent
from taskhold.lightning.base import PaymentStatus
from taskhold.lightning.lnd_wallet import LndWallet

Behaviour = Literal["serve", "broke", "silent"]

KIND_INFO, KIND_REQUEST, KIND_RESPONSE = 13194, 23194, 23195
METHODS = "pay_invoice make_invoice get_balance"


class Backend(Protocol):
    async def pay(self, invoice: str) -> dict[str, Any]:
        """``{"preimage": …}`` once paid; raises ``WalletRefusal`` when the wallet cannot."""

    async def make_invoice(self, amount_msat: int, description: str) -> dict[str, Any]: ...

    async def balance_msat(self) -> int: ...


class WalletRefusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SimBackend:
    """A wallet of a ``taskhold serve --lightning sim --sim-routes`` server."""

    def __init__(self, server_url: str, name: str) -> None:
        self._http = httpx.AsyncClient(base_url=server_url, timeout=30.0)
        self._name = name

    async def pay(self, invoice: str) -> dict[str, Any]:
        body = {"payment_request": invoice, "wallet": self._name}
        response = await self._http.post("/v1/sim/pay", json=body)
        if response.status_code != 200:
            raise WalletRefusal("PAYMENT_FAILED", str(response.json().get("detail")))
        if response.json()["status"] != PaymentStatus.SUCCEEDED.value:
            await asyncio.Event().wait()  # held: no preimage to answer with before it settles
        return {"preimage": ""}

    async def make_invoice(self, amount_msat: int, description: str) -> dict[str, Any]:
        body = {"amount_msat": amount_msat, "wallet": self._name, "memo": description}
        answer = (await self._http.post("/v1/sim/invoice", json=body)).json()
        return {"type": "incoming", "invoice": answer["payment_request"], "amount": amount_msat}

    async def balance_msat(self) -> int:
        balances = (await self._http.get("/v1/sim/wallets")).json()["balances_msat"]
        return int(balances.get(self._name, 0))

    async def aclose(self) -> None:
        await self._http.aclose()


class NwcWalletService:
    """Serves one connection (one client secret) for ``backend``; ``uri`` is what the user
    pastes into ``--wallet``. ``answered`` is set after each answer sent; ``wait_for`` lets a
    test hold the answers back until something else happened."""

    def __init__(
        self,
        relay_url: str,
        backend: Backend,
        *,
        behaviour: Behaviour = "serve",
        wait_for: asyncio.Event | None = None,
    ) -> None:
        self.relay_url = relay_url
        self.backend = backend
        self.behaviour = behaviour
        self.keys = Keys.generate()
        self.client_secret = secrets.token_hex(32)
        self.methods: list[str] = []
        self.encryptions: list[str] = []
        self.invoices: list[str] = []
        self.answered = asyncio.Event()
        self._wait_for = wait_for
        self._loop = ServiceLoop(relay_url)

    @property
    def pubkey_hex(self) -> str:
        return str(self.keys.public_key().to_hex())

    @property
    def uri(self) -> str:
        return (
            f"nostr+walletconnect://{self.pubkey_hex}?relay={quote(self.relay_url, safe='')}"
            f"&secret={self.client_secret}"
        )

    async def start(self) -> None:
        info = (
            EventBuilder(Kind(KIND_INFO), METHODS)
            .tags([Tag.parse(["encryption", "nip44_v2 nip04"])])
            .finalize(self.keys)
        )
        client_key = Keys.parse(self.client_secret).public_key()
        requests = Filter().kind(Kind(KIND_REQUEST)).pubkey(self.keys.public_key())
        await self._loop.start(recent(requests.author(client_key)), self._handle)
        await self._loop.send(info)

    async def stop(self) -> None:
        await self._loop.stop()
        close = getattr(self.backend, "aclose", None)
        if close is not None:
            await close()

    async def _handle(self, event: Any) -> None:
        encryption, request = _open(self.keys.secret_key(), event)
        method = str(request.get("method"))
        self.methods.append(method)
        self.encryptions.append(encryption)
        if self.behaviour == "silent":
            return
        if self._wait_for is not None:
            await self._wait_for.wait()
        params = request.get("params") or {}
        reply: dict[str, Any] = {"result_type": method, "error": None, "result": None}
        try:
            reply["result"] = await self._result(method, params)
        except WalletRefusal as refusal:
            reply["error"] = {"code": refusal.code, "message": refusal.message}
        await self._loop.send(_answer(self.keys, event, encryption, reply))
        self.answered.set()

    async def _result(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "pay_invoice":
            if self.behaviour == "broke":
                raise WalletRefusal("INSUFFICIENT_BALANCE", "not enough sats in this wallet")
            return await self.backend.pay(str(params["invoice"]))
        if method == "make_invoice":
            made = await self.backend.make_invoice(
                int(params["amount"]), str(params.get("description", ""))
            )
            self.invoices.append(str(made["invoice"]))
            return made
        if method == "get_balance":
            return {"balance": await self.backend.balance_msat()}
        raise WalletRefusal("NOT_IMPLEMENTED", f"{method} is not offered")


class Impostor:
    """Answers every NWC request it sees on the relay, signed with its own key: a balance, or
    with ``invoice_from`` an invoice for ``amount_msat`` of that (someone else's) wallet."""

    def __init__(
        self, relay_url: str, invoice_from: Backend | None = None, amount_msat: int = 1_000
    ) -> None:
        self.relay_url = relay_url
        self.keys = Keys.generate()
        self.invoice_from = invoice_from
        self.amount_msat = amount_msat
        self.invoices: list[str] = []
        self.answered = asyncio.Event()
        self._loop = ServiceLoop(relay_url)

    async def start(self) -> None:
        await self._loop.start(recent(Filter().kind(Kind(KIND_REQUEST))), self._handle)

    async def stop(self) -> None:
        await self._loop.stop()

    async def _handle(self, event: Any) -> None:
        # It cannot read the request (sealed to the real service), but the kind says enough
        # to forge the likely answer, encrypted to the client (whose pubkey is public).
        encryption = _encryption_of(event)
        method = "get_balance"
        result: dict[str, Any] = {"balance": 10**12}
        if self.invoice_from is not None:
            method = "make_invoice"
            result = await self.invoice_from.make_invoice(self.amount_msat, "not yours")
            self.invoices.append(str(result["invoice"]))
        reply = {"result_type": method, "error": None, "result": result}
        await self._loop.send(_answer(self.keys, event, encryption, reply))
        self.answered.set()


def _encryption_of(event: Any) -> str:
    for tag in event.tags():
        values = tag.to_vec()
        if values[:1] == ["encryption"] and len(values) > 1:
            return str(values[1])
    return "nip04"


def _open(secret: SecretKey, event: Any) -> tuple[str, dict[str, Any]]:
    encryption = _encryption_of(event)
    if encryption == "nip44_v2":
        plaintext = nip44_decrypt(secret, event.author(), event.content())
    else:
        plaintext = nip04_decrypt(secret, event.author(), event.content())
    return encryption, json.loads(plaintext)


def _answer(keys: Keys, request: Any, encryption: str, reply: dict[str, Any]) -> Any:
    client_key: PublicKey = request.author()
    text = json.dumps(reply)
    if encryption == "nip44_v2":
        content = nip44_encrypt(keys.secret_key(), client_key, text, Nip44Version.V2)
    else:
        content = nip04_encrypt(keys.secret_key(), client_key, text)
    return (
        EventBuilder(Kind(KIND_RESPONSE), content)
        .tags([Tag.public_key(client_key), Tag.event(request.id())])
        .finalize(keys)
    )


class LndBackend:
    """An lnd node (the devnet's), through taskhold's lnd wallet client."""

    def __init__(self, wallet: LndWallet) -> None:
        self._wallet = wallet

    async def pay(self, invoice: str) -> dict[str, Any]:
        result = await self._wallet.send_payment(invoice)
        if result.status is PaymentStatus.FAILED:
            raise WalletRefusal("PAYMENT_FAILED", result.failure_reason or "the payment failed")
        if result.status is not PaymentStatus.SUCCEEDED:
            await asyncio.Event().wait()  # held: no preimage to answer with before it settles
        return {"preimage": (result.preimage or b"").hex()}

    async def make_invoice(self, amount_msat: int, description: str) -> dict[str, Any]:
        made = await self._wallet.create_invoice(
            amount_msat, memo=description, expiry_seconds=86_400
        )
        return {"type": "incoming", "invoice": made.payment_request, "amount": amount_msat}

    async def balance_msat(self) -> int:
        raise WalletRefusal("NOT_IMPLEMENTED", "this bridge does not tell its balance")

    async def aclose(self) -> None:
        await self._wallet.close()
