"""The lnd backend: :class:`~taskhold.lightning.base.LightningBackend` over lnd's REST gateway.

Hold invoices live under ``/v2/invoices`` (lnd's ``invoicesrpc`` sub-server, so lnd must be built
with that tag); payments go through the router's ``/v2/router/send`` and ``/v2/router/track``
streams. Failures are mapped once, in :func:`~taskhold.lightning.lnd_errors.map_lnd_error`.

Two lnd behaviours this module leans on (both from lnd's source, v0.21.2-beta):

- ``SubscribeSingleInvoice`` first sends the invoice as it stands, but waits silently for an
  invoice that does not exist yet. So :meth:`LndBackend.subscribe_invoice` looks the invoice up
  first (``InvoiceNotFound`` is raised at once) and looks it up again after every drop.
- ``SendPaymentV2`` refuses a hash it already paid or is paying with ``AlreadyExists``.
  :meth:`LndBackend.pay_invoice` then follows the recorded payment instead of paying again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import bolt11

from taskhold.lightning.base import (
    AlreadyExists,
    HoldInvoice,
    InvoiceState,
    InvoiceStatus,
    LightningError,
    NodeCapacity,
    NodeUnreachable,
    PaymentResult,
    PaymentStatus,
)
from taskhold.lightning.lnd_channels import capacity_from_lnd
from taskhold.lightning.lnd_errors import FailedPayment, PaymentNotInitiated, map_lnd_error
from taskhold.lightning.lnd_invoices import follow_invoices, invoice_status_from_lnd
from taskhold.lightning.lnd_rest import (
    JSONObject,
    LndRest,
    b64,
    b64url,
    json_int,
    load_node_connection,
)

__all__ = ["LndBackend", "invoice_status_from_lnd", "payment_result_from_lnd"]

_FINAL_INVOICE_STATES = frozenset({InvoiceState.SETTLED, InvoiceState.CANCELED})

SINGLE_INVOICE_STREAMS = 4
"""Newest OPEN invoices followed one by one (of the 8 subscription connections): their payment
is seen as lnd accepts it, not at the next poll of pending invoices."""
_FINAL_PAYMENT_STATES = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED})
# lnd's Payment.status names; INITIATED (no HTLC sent yet) counts as in flight.
_PAYMENT_STATUS = {
    "UNKNOWN": PaymentStatus.UNKNOWN,
    "INITIATED": PaymentStatus.IN_FLIGHT,
    "IN_FLIGHT": PaymentStatus.IN_FLIGHT,
    "SUCCEEDED": PaymentStatus.SUCCEEDED,
    "FAILED": PaymentStatus.FAILED,
}


def payment_result_from_lnd(payment: JSONObject) -> PaymentResult:
    """An ``lnrpc.Payment`` as a :class:`PaymentResult` (hex hash and preimage in lnd's JSON)."""
    status = _PAYMENT_STATUS.get(payment.get("status", ""), PaymentStatus.UNKNOWN)
    succeeded = status is PaymentStatus.SUCCEEDED
    reason = payment.get("failure_reason")
    return PaymentResult(
        payment_hash=bytes.fromhex(payment["payment_hash"]),
        status=status,
        amount_msat=json_int(payment.get("value_msat")),
        fee_msat=json_int(payment.get("fee_msat")) if succeeded else 0,
        preimage=bytes.fromhex(payment["payment_preimage"]) if succeeded else None,
        failure_reason=reason if status is PaymentStatus.FAILED else None,
    )


class LndBackend:
    """Hold invoices and payments on one lnd node, over REST.

    ``timeout`` bounds each unary call. ``subscription_poll_seconds`` is the longest an invoice
    subscription stays silent before the backend looks the invoice up and subscribes again (the
    backstop for a stream that died without closing). ``payment_grace_seconds`` is how long past
    ``timeout_seconds`` :meth:`pay_invoice` waits for a final answer before returning IN_FLIGHT.
    ``max_connections`` bounds the pool of calls (invoice subscriptions have their own);
    ``invoice_poll_seconds`` is how often :meth:`subscribe_invoices` asks for pending invoices.
    """

    def __init__(
        self,
        rest_url: str,
        tls_cert_path: str | Path,
        macaroon_path: str | Path,
        *,
        timeout: float = 30.0,
        network: str = "bcrt",
        subscription_poll_seconds: float = 30.0,
        subscription_max_failures: int = 10,
        payment_grace_seconds: float = 30.0,
        max_connections: int = 32,
        invoice_poll_seconds: float = 1.0,
    ) -> None:
        self.network = network
        self._rest = LndRest(
            rest_url, tls_cert_path, macaroon_path, timeout=timeout, max_connections=max_connections
        )
        self._invoice_poll_seconds = invoice_poll_seconds
        self._poll_seconds = subscription_poll_seconds
        self._max_failures = subscription_max_failures
        self._grace_seconds = payment_grace_seconds
        self._identity_pubkey: str | None = None

    @classmethod
    def from_connection_file(
        cls,
        path: str | Path,
        node: str = "escrow",
        *,
        timeout: float = 30.0,
        subscription_poll_seconds: float = 30.0,
        subscription_max_failures: int = 10,
        payment_grace_seconds: float = 30.0,
        max_connections: int = 32,
        invoice_poll_seconds: float = 1.0,
        admin_macaroon: bool = False,
    ) -> LndBackend:
        """The backend for ``node`` in a devnet connection file (``<data_dir>/devnet.json``),
        with the node's admin macaroon only if ``admin_macaroon`` asks for it."""
        connection = load_node_connection(path, node, admin=admin_macaroon)
        return cls(
            connection.rest_url,
            connection.tls_cert_path,
            connection.macaroon_path,
            timeout=timeout,
            subscription_poll_seconds=subscription_poll_seconds,
            subscription_max_failures=subscription_max_failures,
            payment_grace_seconds=payment_grace_seconds,
            max_connections=max_connections,
            invoice_poll_seconds=invoice_poll_seconds,
        )

    def __repr__(self) -> str:
        return f"LndBackend({self._rest.rest_url!r}, network={self.network!r})"

    # -- hold invoices ------------------------------------------------------------------------

    async def create_hold_invoice(
        self,
        payment_hash: bytes,
        amount_msat: int,
        *,
        memo: str,
        expiry_seconds: int,
        cltv_expiry_delta: int,
    ) -> HoldInvoice:
        """``POST /v2/invoices/hodl``; a reused hash raises :class:`AlreadyExists`."""
        answer = await self._rest.call(
            "POST",
            "/v2/invoices/hodl",
            body={
                "hash": b64(payment_hash),
                "value_msat": str(amount_msat),
                "memo": memo,
                "expiry": str(expiry_seconds),
                "cltv_expiry": str(cltv_expiry_delta),
            },
        )
        return HoldInvoice(
            payment_hash=payment_hash,
            payment_request=answer["payment_request"],
            amount_msat=amount_msat,
            cltv_expiry_delta=cltv_expiry_delta,
            expiry_seconds=expiry_seconds,
        )

    async def lookup_invoice(self, payment_hash: bytes) -> InvoiceStatus:
        """``GET /v2/invoices/lookup``; the accepted HTLCs carry their real ``expiry_height``."""
        invoice = await self._rest.call(
            "GET", "/v2/invoices/lookup", params={"payment_hash": b64url(payment_hash)}
        )
        return invoice_status_from_lnd(invoice)

    async def subscribe_invoice(self, payment_hash: bytes) -> AsyncIterator[InvoiceStatus]:
        """The invoice now and after every change, until SETTLED or CANCELED.

        A dropped or silent stream is re-subscribed after a lookup, so no change is missed and
        none is reported twice. :class:`NodeUnreachable` is raised only after
        ``subscription_max_failures`` attempts in a row that got nothing from the node.
        """
        last = await self.lookup_invoice(payment_hash)
        yield last
        failures = 0
        while last.state not in _FINAL_INVOICE_STATES:
            try:
                updates = self._rest.stream(
                    "GET",
                    f"/v2/invoices/subscribe/{b64url(payment_hash)}",
                    read_timeout=self._poll_seconds,
                    subscription=True,
                )
                async with contextlib.aclosing(updates):
                    async for invoice in updates:
                        failures = 0
                        status = invoice_status_from_lnd(invoice)
                        if status != last:
                            last = status
                            yield status
                        if last.state in _FINAL_INVOICE_STATES:
                            return
                # lnd ended the stream without a final state (it is shutting down).
                failures += 1
            except NodeUnreachable:
                failures += 1
            if failures >= self._max_failures:
                raise NodeUnreachable(
                    f"invoice subscription lost {failures} times in a row; giving up"
                )
            if failures > 1:
                await asyncio.sleep(min(0.5 * 2 ** (failures - 2), 10.0))
            # Backstop: whatever the stream missed, the lookup shows.
            with contextlib.suppress(NodeUnreachable):
                status = await self.lookup_invoice(payment_hash)
                if status != last:
                    last = status
                    yield status

    def subscribe_invoices(self) -> AsyncGenerator[InvoiceStatus, None]:
        """All invoices over a bounded number of connections whatever their number: lnd's
        all-invoices stream, a poll of the pending ones, and single streams of the newest
        OPEN ones, so a payment is seen at once (see :mod:`~taskhold.lightning.lnd_invoices`)."""
        return follow_invoices(
            self._rest,
            poll_seconds=self._invoice_poll_seconds,
            single_streams=SINGLE_INVOICE_STREAMS,
        )

    async def settle_invoice(self, preimage: bytes) -> None:
        """``POST /v2/invoices/settle``; lnd itself treats settling a SETTLED invoice as done."""
        await self._rest.call("POST", "/v2/invoices/settle", body={"preimage": b64(preimage)})

    async def cancel_invoice(self, payment_hash: bytes) -> None:
        """``POST /v2/invoices/cancel``; lnd itself treats cancelling a CANCELED one as done."""
        await self._rest.call(
            "POST", "/v2/invoices/cancel", body={"payment_hash": b64(payment_hash)}
        )

    # -- payments -----------------------------------------------------------------------------

    async def pay_invoice(
        self,
        payment_request: str,
        *,
        max_fee_msat: int,
        timeout_seconds: int,
        cltv_limit: int,
        behind: bytes | None = None,
    ) -> PaymentResult:
        """Pay through ``/v2/router/send`` and wait for SUCCEEDED or FAILED.

        ``cltv_limit`` goes to lnd as the route's maximum total time lock (block padding
        included); lnd refuses a limit the invoice's final CLTV alone does not fit in.

        A hash this node already paid (or is paying) is never paid again: lnd refuses the send
        and the recorded payment is followed instead. If no final answer arrives within
        ``timeout_seconds`` + the grace period, the payment is returned IN_FLIGHT; it stays
        tracked by lnd and :meth:`lookup_payment` tells how it ended.
        """
        deadline = time.monotonic() + timeout_seconds + self._grace_seconds
        sent = self._rest.stream(
            "POST",
            "/v2/router/send",
            body={
                "payment_request": payment_request,
                "fee_limit_msat": str(max_fee_msat),
                "timeout_seconds": timeout_seconds,
                "cltv_limit": cltv_limit,
                "no_inflight_updates": True,
            },
        )
        try:
            result = await self._follow(sent, deadline)
        except AlreadyExists:
            payment_hash = bytes.fromhex(bolt11.decode(payment_request).payment_hash)
            result = await self._follow(self._track(payment_hash, inflight=False), deadline)
        if result is None:
            payment_hash = bytes.fromhex(bolt11.decode(payment_request).payment_hash)
            result = await self.lookup_payment(payment_hash)
        if result.status is PaymentStatus.FAILED:
            raise map_lnd_error(
                FailedPayment(result.payment_hash.hex(), result.failure_reason or "UNKNOWN")
            )
        return result

    async def lookup_payment(self, payment_hash: bytes) -> PaymentResult:
        """The payment as lnd records it now (first message of ``/v2/router/track``)."""
        try:
            async with contextlib.aclosing(self._track(payment_hash, inflight=True)) as updates:
                async for payment in updates:
                    return payment_result_from_lnd(payment)
        except PaymentNotInitiated:
            pass
        return PaymentResult(payment_hash=payment_hash, status=PaymentStatus.UNKNOWN)

    def _track(self, payment_hash: bytes, *, inflight: bool) -> AsyncGenerator[JSONObject, None]:
        return self._rest.stream(
            "GET",
            f"/v2/router/track/{b64url(payment_hash)}",
            params={"no_inflight_updates": "false" if inflight else "true"},
            read_timeout=self._rest.timeout if inflight else None,
        )

    @staticmethod
    async def _follow(
        updates: AsyncGenerator[JSONObject, None], deadline: float
    ) -> PaymentResult | None:
        """Read payment updates until a final one; ``None`` if the deadline passes first."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            async with asyncio.timeout(remaining), contextlib.aclosing(updates):
                async for payment in updates:
                    result = payment_result_from_lnd(payment)
                    if result.status in _FINAL_PAYMENT_STATES:
                        return result
        except TimeoutError:
            return None
        raise LightningError("lnd ended the payment stream before the payment was final")

    # -- chain --------------------------------------------------------------------------------

    async def block_height(self) -> int:
        """``GET /v1/getinfo``'s ``block_height``."""
        info = await self._rest.call("GET", "/v1/getinfo")
        return json_int(info.get("block_height"))

    async def node_pubkey(self) -> str:
        """``GET /v1/getinfo``'s ``identity_pubkey``; it never changes, so it is asked once."""
        if self._identity_pubkey is None:
            info = await self._rest.call("GET", "/v1/getinfo")
            self._identity_pubkey = str(info["identity_pubkey"])
        return self._identity_pubkey

    async def capacity(self, *, behind: bytes | None = None) -> NodeCapacity:
        """``GET /v1/channels?active_only=true``, summed (see
        :mod:`~taskhold.lightning.lnd_channels` for which constraint bounds what)."""
        answer = await self._rest.call("GET", "/v1/channels", params={"active_only": "true"})
        return capacity_from_lnd(answer.get("channels") or ())

    async def hold_expiry_delta(self) -> int:
        """The running node's ``invoices.holdexpirydelta`` (``GET /v1/getdebuginfo``): lnd cancels
        an ACCEPTED hold invoice itself this many blocks before its HTLC expires. Read, never
        assumed: the default moved from 12 to 18 in lnd v0.21."""
        info = await self._rest.call("GET", "/v1/getdebuginfo")
        config = info.get("config")
        value = config.get("invoices.holdexpirydelta") if isinstance(config, dict) else None
        if not isinstance(value, str) or not value.isdigit():
            raise LightningError(
                "lnd's getdebuginfo reports no invoices.holdexpirydelta", node_message=str(value)
            )
        return int(value)

    async def close(self) -> None:
        """Close the HTTP connections. Safe to call twice."""
        await self._rest.aclose()
