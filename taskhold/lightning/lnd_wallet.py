"""Everyday lnd wallet calls for tests, the demo and the on-chain flows: plain invoices, paying,
channel balances, on-chain addresses and payments.

Not part of the escrow seam (:class:`~taskhold.lightning.base.LightningBackend`): the escrow engine
never calls these. They let a test or the devnet demo act as the employer (pay a hold invoice from
its own node) and as the worker (issue the payout invoice from its own node), and check balances.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from taskhold.lightning.base import PaymentResult, PaymentStatus
from taskhold.lightning.lnd import payment_result_from_lnd
from taskhold.lightning.lnd_rest import LndRest, from_b64, json_int, load_node_connection

__all__ = ["ChannelBalance", "Invoice", "LndWallet"]


@dataclass(frozen=True, slots=True)
class Invoice:
    """A plain (non-hold) invoice the node made; it settles by itself when paid."""

    payment_hash: bytes
    payment_request: str
    amount_msat: int


@dataclass(frozen=True, slots=True)
class ChannelBalance:
    """The node's balance over all its channels (``/v1/balance/channels``)."""

    local_msat: int
    remote_msat: int
    pending_open_local_msat: int = 0
    unsettled_local_msat: int = 0


class LndWallet:
    """One lnd node seen as a wallet. Same credentials as :class:`~.lnd.LndBackend`."""

    def __init__(
        self,
        rest_url: str,
        tls_cert_path: str | Path,
        macaroon_path: str | Path,
        *,
        timeout: float = 30.0,
    ) -> None:
        self._rest = LndRest(rest_url, tls_cert_path, macaroon_path, timeout=timeout)

    @classmethod
    def from_connection_file(
        cls, path: str | Path, node: str, *, timeout: float = 30.0, admin: bool = False
    ) -> LndWallet:
        """The wallet of ``node`` in a devnet connection file (``<data_dir>/devnet.json``).
        An escrow node's own macaroon cannot do wallet calls; ``admin`` takes its admin one."""
        connection = load_node_connection(path, node, admin=admin)
        return cls(
            connection.rest_url,
            connection.tls_cert_path,
            connection.macaroon_path,
            timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"LndWallet({self._rest.rest_url!r})"

    async def pubkey(self) -> str:
        """The node's identity public key (hex)."""
        info = await self._rest.call("GET", "/v1/getinfo")
        return str(info["identity_pubkey"])

    async def create_invoice(
        self, amount_msat: int, *, memo: str = "", expiry_seconds: int = 3600
    ) -> Invoice:
        """``POST /v1/invoices``: an ordinary invoice whose preimage the node keeps."""
        answer = await self._rest.call(
            "POST",
            "/v1/invoices",
            body={"value_msat": str(amount_msat), "memo": memo, "expiry": str(expiry_seconds)},
        )
        return Invoice(
            payment_hash=from_b64(answer["r_hash"]),
            payment_request=answer["payment_request"],
            amount_msat=amount_msat,
        )

    async def send_payment(
        self, payment_request: str, *, max_fee_msat: int = 10_000, timeout_seconds: int = 60
    ) -> PaymentResult:
        """Start paying and return once an HTLC is on its way (IN_FLIGHT) or the payment is final.

        This is how a payer pays a hold invoice: the payment stays IN_FLIGHT until the receiver
        settles or cancels, and lnd carries on with it after this call drops the stream.
        A FAILED payment is returned, not raised: the caller decides what a failure means.
        """
        updates = self._rest.stream(
            "POST",
            "/v2/router/send",
            body={
                "payment_request": payment_request,
                "fee_limit_msat": str(max_fee_msat),
                "timeout_seconds": timeout_seconds,
                "no_inflight_updates": False,
            },
            read_timeout=timeout_seconds + 30,
        )
        result: PaymentResult | None = None
        async with contextlib.aclosing(updates):
            async for payment in updates:
                result = payment_result_from_lnd(payment)
                htlc_sent = any(
                    htlc.get("status") == "IN_FLIGHT" for htlc in payment.get("htlcs") or ()
                )
                if result.status is not PaymentStatus.IN_FLIGHT or htlc_sent:
                    return result
        if result is None:
            raise RuntimeError("lnd closed the payment stream without an update")
        return result

    async def new_address(self) -> str:
        """``GET /v1/newaddress``: a fresh taproot address of the node's on-chain wallet."""
        answer = await self._rest.call("GET", "/v1/newaddress", params={"type": "TAPROOT_PUBKEY"})
        return str(answer["address"])

    async def send_to_address(self, address: str, amount_sat: int) -> str:
        """``POST /v1/transactions``: pay ``amount_sat`` on chain; the txid."""
        answer = await self._rest.call(
            "POST", "/v1/transactions", body={"addr": address, "amount": str(amount_sat)}
        )
        return str(answer["txid"])

    async def confirmed_balance_sat(self) -> int:
        """``GET /v1/balance/blockchain``: the wallet's confirmed on-chain balance."""
        answer = await self._rest.call("GET", "/v1/balance/blockchain")
        return json_int(answer.get("confirmed_balance"))

    async def transaction_amounts(self, txid: str) -> tuple[int, int]:
        """``(amount, fee)`` in sat of the wallet's transaction ``txid`` (``GET
        /v1/transactions``): the net amount to the wallet (negative for a payment, fee
        included) and the miner fee the wallet paid."""
        answer = await self._rest.call("GET", "/v1/transactions")
        for tx in answer.get("transactions") or ():
            if tx.get("tx_hash") == txid:
                return json_int(tx.get("amount")), json_int(tx.get("total_fees"))
        raise LookupError(f"the wallet has no transaction {txid}")

    async def channel_balance(self) -> ChannelBalance:
        """``GET /v1/balance/channels`` in msat."""
        answer = await self._rest.call("GET", "/v1/balance/channels")

        def msat(key: str) -> int:
            amount = answer.get(key) or {}
            return json_int(amount.get("msat"))

        return ChannelBalance(
            local_msat=msat("local_balance"),
            remote_msat=msat("remote_balance"),
            pending_open_local_msat=msat("pending_open_local_balance"),
            unsettled_local_msat=msat("unsettled_local_balance"),
        )

    async def close(self) -> None:
        """Close the HTTP connections. Safe to call twice."""
        await self._rest.aclose()
