"""The participant's own Lightning wallet, named on the command line by ``--wallet``:

| spec | wallet |
|---|---|
| ``sim`` / ``sim:NAME`` | a simulated wallet of a server on ``--lightning sim --sim-routes`` |
| ``lnd:FILE`` / ``lnd:FILE#NODE`` | an lnd node over REST, from its connection file (devnet.json) |
| ``nostr+walletconnect://…`` | a wallet behind Nostr Wallet Connect (NIP-47) |

An employer's wallet pays the hold invoice (it stays in flight until taskhold settles or cancels
it); a worker's wallet issues the payout invoice. Nothing is opened until a spec is parsed.

An NWC connection string holds the client's secret: it is never repeated in an error or a
description (``TASKHOLD_WALLET`` keeps it out of the process list, too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from taskhold.client import TaskholdClient
from taskhold.errors import Invalid
from taskhold.lightning.base import LightningError, PaymentStatus
from taskhold.lightning.lnd_wallet import LndWallet
from taskhold.nostr.wallet_connect import WalletConnectError, WalletConnection, WalletConnectUri
from taskhold.payments.invoices import decode_invoice

__all__ = ["PaymentFailed", "Wallet", "WalletSpecError", "open_wallet", "shown_spec"]

PAYOUT_INVOICE_EXPIRY_S = 7 * 86_400
"""A payout invoice outlives the review and dispute windows it may wait through."""


class WalletSpecError(Exception):
    """``--wallet`` names no wallet this command can use: a usage error (exit code 2)."""


class PaymentFailed(Exception):
    """The wallet tried and could not pay (or issue an invoice): exit code 1."""


class Wallet(Protocol):
    """What the command needs of a participant's wallet."""

    description: str

    async def pay(self, payment_request: str) -> None:
        """Send the payment; returns once it is on its way (a hold invoice stays in flight),
        or, for a wallet that answers only once paid (NWC), once it is paid: the caller races
        it against the task being funded."""

    async def invoice(self, amount_msat: int, memo: str) -> str:
        """A BOLT11 invoice for ``amount_msat`` that this wallet is paid to."""

    async def aclose(self) -> None: ...


class SimWallet:
    """A simulated wallet, through the server's ``/v1/sim`` routes (demos, tests)."""

    def __init__(self, client: TaskholdClient, name: str) -> None:
        self._client = client
        self._name = name
        self.description = f"sim wallet {name!r}"

    async def pay(self, payment_request: str) -> None:
        answer = await self._client.sim_pay(payment_request, self._name)
        if answer.get("status") == PaymentStatus.FAILED.value:
            raise PaymentFailed(f"the {self.description} could not pay the invoice")

    async def invoice(self, amount_msat: int, memo: str) -> str:
        answer = await self._client.sim_invoice(amount_msat, self._name, memo)
        return str(answer["payment_request"])

    async def aclose(self) -> None:
        return None


class LndNodeWallet:
    """An lnd node the participant runs, over its REST API."""

    def __init__(self, wallet: LndWallet, description: str) -> None:
        self._wallet = wallet
        self.description = description

    async def pay(self, payment_request: str) -> None:
        try:
            result = await self._wallet.send_payment(payment_request)
        except (LightningError, RuntimeError) as exc:
            raise PaymentFailed(f"{self.description}: {exc}") from None
        if result.status is PaymentStatus.FAILED:
            reason = result.failure_reason or "no reason given"
            raise PaymentFailed(f"{self.description} could not pay: {reason}")

    async def invoice(self, amount_msat: int, memo: str) -> str:
        try:
            made = await self._wallet.create_invoice(
                amount_msat, memo=memo, expiry_seconds=PAYOUT_INVOICE_EXPIRY_S
            )
        except LightningError as exc:
            raise PaymentFailed(f"{self.description}: {exc}") from None
        return made.payment_request

    async def aclose(self) -> None:
        await self._wallet.close()


class NwcWallet:
    """A wallet behind Nostr Wallet Connect: ``pay_invoice`` and ``make_invoice`` over a relay.

    Before paying, the balance is asked (``get_balance``): a wallet that cannot cover the
    invoice fails at once, and one that never answers times out within the wallet timeout,
    before any payment is asked. A wallet that does not offer ``get_balance`` is paid all the
    same. A payment to a hold invoice is answered only when it settles, so :meth:`pay` waits
    as long as the caller lets it (``fund`` stops waiting once the task is FUNDED)."""

    def __init__(self, connection: WalletConnection) -> None:
        self._connection = connection
        self.description = f"NWC wallet {connection.service_pubkey[:16]}…"

    async def pay(self, payment_request: str) -> None:
        amount_msat = decode_invoice(payment_request, field="the invoice").amount_msat
        try:
            balance_msat: int | None = await self._connection.balance_msat()
        except WalletConnectError:
            balance_msat = None  # not offered (or not allowed): the payment will tell
        if balance_msat is not None and amount_msat is not None and balance_msat < amount_msat:
            raise PaymentFailed(
                f"the {self.description} holds {balance_msat // 1000} sat; the invoice asks"
                f" {amount_msat // 1000} sat"
            )
        try:
            await self._connection.pay_invoice(payment_request, timeout_s=PAYOUT_INVOICE_EXPIRY_S)
        except WalletConnectError as exc:
            raise PaymentFailed(str(exc)) from None

    async def invoice(self, amount_msat: int, memo: str) -> str:
        try:
            made = await self._connection.make_invoice(amount_msat, memo, PAYOUT_INVOICE_EXPIRY_S)
        except WalletConnectError as exc:
            raise PaymentFailed(str(exc)) from None
        try:
            made_msat = decode_invoice(made, field="the wallet's invoice").amount_msat
        except Invalid:
            raise PaymentFailed(f"the {self.description} answered with no BOLT11 invoice") from None
        if made_msat != amount_msat:
            raise PaymentFailed(f"the {self.description} made an invoice for another amount")
        return made

    async def aclose(self) -> None:
        await self._connection.aclose()


def open_wallet(
    spec: str, client: TaskholdClient, default_sim_name: str, timeout_s: float = 60.0
) -> Wallet:
    """The wallet ``spec`` names (see the module's table); ``timeout_s`` bounds each answer
    an NWC wallet owes (a payment excepted: see :class:`NwcWallet`)."""
    if spec.startswith("nostr+walletconnect:"):
        try:
            uri = WalletConnectUri.parse(spec)
        except ValueError as exc:
            raise WalletSpecError(f"--wallet: {exc}") from None
        return NwcWallet(WalletConnection(uri, timeout_s))
    kind, _, rest = spec.partition(":")
    if kind == "sim":
        return SimWallet(client, rest or default_sim_name)
    if kind == "lnd":
        return _lnd(rest)
    raise WalletSpecError(
        f"--wallet {kind!r}: use sim[:NAME], lnd:FILE[#NODE] or nostr+walletconnect://…"
    )


def shown_spec(spec: str) -> str:
    """``spec`` as it may be shown: an NWC string without its secret (its service pubkey)."""
    if spec.startswith("nostr+walletconnect:"):
        try:
            return f"nostr+walletconnect://{WalletConnectUri.parse(spec).pubkey}"
        except ValueError:
            return "nostr+walletconnect://…"
    return spec


def _lnd(rest: str) -> LndNodeWallet:
    if not rest:
        raise WalletSpecError("--wallet lnd:FILE[#NODE] names lnd's connection file")
    file_name, _, node = rest.partition("#")
    path = Path(file_name)
    try:
        nodes = json.loads(path.read_text()).get("nodes", {})
    except OSError as exc:
        raise WalletSpecError(f"cannot read lnd connection file {path}: {exc.strerror}") from None
    except (ValueError, AttributeError):
        raise WalletSpecError(f"{path} is not an lnd connection file (JSON with nodes)") from None
    if not node:
        if len(nodes) != 1:
            raise WalletSpecError(f"{path} has nodes {sorted(nodes)}: name one as lnd:{path}#NODE")
        (node,) = nodes
    if node not in nodes:
        raise WalletSpecError(f"no node {node!r} in {path}; it has {sorted(nodes)}")
    try:
        wallet = LndWallet.from_connection_file(path, node)
    except (LightningError, KeyError, OSError) as exc:
        raise WalletSpecError(f"lnd node {node!r} in {path}: {exc}") from None
    return LndNodeWallet(wallet, f"lnd node {node!r}")
