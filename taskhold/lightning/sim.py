"""A deterministic simulator backend: nodes of an in-memory regtest Lightning network.

:class:`SimNode` implements :class:`~taskhold.lightning.base.LightningBackend` on top of a shared
:class:`~taskhold.lightning.sim_network.SimNetwork`, so the escrow engine's tests exercise the
same calls they make on lnd, with blocks mined and faults injected on demand. The network's
bookkeeping records live in :mod:`taskhold.lightning.sim_records`.

Invoices are real BOLT11 regtest invoices signed with the node's own secp256k1 key, so code that
decodes or checks a payment request sees what it would see from lnd. A node's key is derived
from its name unless given, so every run produces the same pubkeys and preimages.

Choices where lnd gives no single answer, kept lnd-like:

- Paying an expired invoice fails the payment with ``FAILURE_REASON_INCORRECT_PAYMENT_DETAILS``
  (what lnd's exit hop answers for a cancelled invoice) and is recorded FAILED. lnd refuses an
  invoice its own clock sees as expired before sending anything; the reason is the same kind of
  fact: retrying this invoice cannot succeed.
- An invoice that does not decode, is for another network or has no amount raises
  :class:`LightningError`: nothing was attempted, so nothing is recorded.
- ``timeout_seconds`` of :meth:`SimNode.pay_invoice` bounds the wait for a final outcome. If the
  HTLC is still held when it runs out, the payment is returned IN_FLIGHT, as lnd's backend
  does; it may still succeed, and paying the same invoice again waits for that HTLC instead of
  sending another.
- ``cltv_limit`` bounds the payment's total time lock. The simulator has no hops and no block
  padding, so that is the payee invoice's final CLTV delta; over the limit the payment fails
  with ``FAILURE_REASON_NO_ROUTE`` and nothing is held.
- ``SimNetwork.payment_latency_s`` (zero unless a bench sets it) delays each payment before its
  HTLC goes out; other calls go on meanwhile, so concurrent payouts overlap.
- ``unreachable`` models a lost API connection, not an offline node: other nodes can still pay it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace

import bolt11
import coincurve
from bolt11 import Bolt11, MilliSatoshi, Tag, TagChar, Tags

from taskhold.lightning.base import (
    HoldInvoice,
    InvoiceStatus,
    LightningError,
    NodeCapacity,
    NodeUnreachable,
    PaymentFailed,
    PaymentResult,
    PaymentStatus,
)
from taskhold.lightning.sim_network import SimNetwork
from taskhold.lightning.sim_records import AutoCancel, SettledPayment

__all__ = ["AutoCancel", "SettledPayment", "SimNetwork", "SimNode"]

MIN_CLTV_EXPIRY_DELTA = 18
"""lnd's ``routing.MinCLTVDelta``: the smallest final CLTV delta an invoice may ask for."""
MAX_CLTV_EXPIRY_DELTA = 65535
DEFAULT_CLTV_EXPIRY_DELTA = 80
"""lnd's ``bitcoin.timelockdelta`` default, used for ordinary invoices."""


@dataclass(frozen=True, slots=True)
class _Request:
    """The parts of a decoded payment request a payment needs."""

    payee: str
    payment_hash: bytes
    amount_msat: int
    min_final_cltv_expiry: int


class SimNode:
    """One simulated Lightning node; the escrow node, a payer and a payee are all ``SimNode``.

    Methods of :class:`LightningBackend` raise :class:`NodeUnreachable` while ``unreachable`` is
    true. :meth:`create_invoice` and :meth:`send_payment` are wallet helpers for tests and demos:
    they act as the node's owner would, so they ignore ``unreachable``.
    """

    network: str = "bcrt"
    """BOLT11 prefix (the ``LightningBackend`` attribute); the simulation is ``sim_network``."""

    def __init__(
        self,
        network: SimNetwork,
        name: str,
        *,
        balance_msat: int = 1_000_000_000,
        key_hex: str | None = None,
    ) -> None:
        self.sim_network = network
        self.name = name
        if key_hex is None:
            key_hex = hashlib.sha256(b"taskhold/sim/node-key/" + name.encode()).hexdigest()
        self._key_hex = key_hex
        self._key = coincurve.PrivateKey(bytes.fromhex(key_hex))
        self.pubkey_hex: str = self._key.public_key.format(compressed=True).hex()
        self._unreachable = False
        self._invoice_count = 0
        network.join(self.pubkey_hex, balance_msat)

    def __repr__(self) -> str:
        return f"SimNode({self.name!r}, pubkey={self.pubkey_hex[:16]}…)"

    # -- state tests look at ---------------------------------------------------------------------

    @property
    def unreachable(self) -> bool:
        """While true every backend call raises :class:`NodeUnreachable`; streams are dropped."""
        return self._unreachable

    @unreachable.setter
    def unreachable(self, value: bool) -> None:
        self._unreachable = value
        if value:
            self.sim_network.interrupt_subscriptions(self.pubkey_hex)

    @property
    def balance_msat(self) -> int:
        """Settled, spendable money; HTLCs this node has in flight are already deducted."""
        return self.sim_network.balance_msat(self.pubkey_hex)

    @property
    def locked_msat(self) -> int:
        """Money in this node's IN_FLIGHT payments (amount + fee)."""
        return self.sim_network.locked_msat(self.pubkey_hex)

    # -- LightningBackend -----------------------------------------------------------------------

    async def create_hold_invoice(
        self,
        payment_hash: bytes,
        amount_msat: int,
        *,
        memo: str,
        expiry_seconds: int,
        cltv_expiry_delta: int,
    ) -> HoldInvoice:
        self._check_reachable()
        if len(payment_hash) != 32:
            raise LightningError("payment hash must be 32 bytes")
        payment_request = self._add_invoice(
            payment_hash,
            amount_msat,
            preimage=None,
            memo=memo,
            expiry_seconds=expiry_seconds,
            cltv_expiry_delta=cltv_expiry_delta,
        )
        return HoldInvoice(
            payment_hash=payment_hash,
            payment_request=payment_request,
            amount_msat=amount_msat,
            cltv_expiry_delta=cltv_expiry_delta,
            expiry_seconds=expiry_seconds,
        )

    async def lookup_invoice(self, payment_hash: bytes) -> InvoiceStatus:
        self._check_reachable()
        return self.sim_network.invoice_status(self.pubkey_hex, payment_hash)

    def subscribe_invoice(self, payment_hash: bytes) -> AsyncIterator[InvoiceStatus]:
        """Raises :class:`InvoiceNotFound` at once for an unknown hash, before any iteration."""
        self._check_reachable()
        return self.sim_network.invoice_updates(self.pubkey_hex, payment_hash)

    def subscribe_invoices(self) -> AsyncGenerator[InvoiceStatus, None]:
        self._check_reachable()
        return self.sim_network.all_invoice_updates(self.pubkey_hex)

    async def settle_invoice(self, preimage: bytes) -> None:
        self._check_reachable()
        self.sim_network.settle(self.pubkey_hex, preimage)

    async def cancel_invoice(self, payment_hash: bytes) -> None:
        self._check_reachable()
        self.sim_network.cancel(self.pubkey_hex, payment_hash)

    async def pay_invoice(
        self,
        payment_request: str,
        *,
        max_fee_msat: int,
        timeout_seconds: int,
        cltv_limit: int,
        behind: bytes | None = None,
    ) -> PaymentResult:
        self._check_reachable()
        request = self._decode(payment_request)
        if self.sim_network.payment_latency_s > 0:
            await asyncio.sleep(self.sim_network.payment_latency_s)
            self._check_reachable()
        result = self._send(request, max_fee_msat, cltv_limit=cltv_limit)
        if result.status is PaymentStatus.IN_FLIGHT:
            result = await self.sim_network.wait_payment(
                self.pubkey_hex, request.payment_hash, timeout_seconds
            )
        if result.status is not PaymentStatus.FAILED:
            return result  # SUCCEEDED, or still held by the payee when the wait ran out
        reason = result.failure_reason
        assert reason is not None, "a FAILED payment always has a reason"
        raise PaymentFailed(f"payment {request.payment_hash.hex()} failed: {reason}", reason=reason)

    async def lookup_payment(self, payment_hash: bytes) -> PaymentResult:
        self._check_reachable()
        return self.sim_network.payment_result(self.pubkey_hex, payment_hash)

    async def block_height(self) -> int:
        self._check_reachable()
        return self.sim_network.height

    async def node_pubkey(self) -> str:
        self._check_reachable()
        return self.pubkey_hex

    async def capacity(self, *, behind: bytes | None = None) -> NodeCapacity:
        self._check_reachable()
        return self.sim_network.capacity(self.pubkey_hex)

    async def close(self) -> None:
        """Nothing to release; never raises, even while ``unreachable``."""

    # -- wallet helpers (not part of LightningBackend) ------------------------------------------

    async def create_invoice(
        self, amount_msat: int, *, memo: str = "", expiry_seconds: int = 3600
    ) -> str:
        """An ordinary invoice: the node knows the preimage, so paying it settles at once."""
        self._invoice_count += 1
        preimage = hmac.digest(
            bytes.fromhex(self._key_hex),
            b"taskhold/sim/preimage/" + str(self._invoice_count).encode(),
            "sha256",
        )
        return self._add_invoice(
            hashlib.sha256(preimage).digest(),
            amount_msat,
            preimage=preimage,
            memo=memo,
            expiry_seconds=expiry_seconds,
            cltv_expiry_delta=DEFAULT_CLTV_EXPIRY_DELTA,
        )

    async def send_payment(
        self,
        payment_request: str,
        *,
        max_fee_msat: int | None = None,
        amount_msat: int | None = None,
    ) -> PaymentResult:
        """Pay and return as soon as the HTLC is held (IN_FLIGHT) or the payment is final.

        Like reading lnd's ``/v2/router/send`` stream until IN_FLIGHT. A failure is returned as
        a FAILED result, not raised. ``max_fee_msat=None`` means no fee limit. ``amount_msat``
        sends more (or less) than the invoice asks, as a payer's node may: receivers accept
        overpayment, so taskhold must notice it.
        """
        request = self._decode(payment_request)
        if amount_msat is not None:
            request = replace(request, amount_msat=amount_msat)
        return self._send(request, max_fee_msat)

    # -- internals --------------------------------------------------------------------------------

    def _check_reachable(self) -> None:
        if self._unreachable:
            raise NodeUnreachable(f"sim node {self.name!r} is unreachable")

    def _send(
        self, request: _Request, max_fee_msat: int | None, *, cltv_limit: int | None = None
    ) -> PaymentResult:
        return self.sim_network.send(
            self.pubkey_hex,
            request.payee,
            request.payment_hash,
            request.amount_msat,
            max_fee_msat=max_fee_msat,
            time_lock=request.min_final_cltv_expiry,
            cltv_limit=cltv_limit,
        )

    def _add_invoice(
        self,
        payment_hash: bytes,
        amount_msat: int,
        *,
        preimage: bytes | None,
        memo: str,
        expiry_seconds: int,
        cltv_expiry_delta: int,
    ) -> str:
        if amount_msat <= 0:
            raise LightningError("amount_msat must be positive")
        if expiry_seconds <= 0:
            raise LightningError("expiry_seconds must be positive")
        if not MIN_CLTV_EXPIRY_DELTA <= cltv_expiry_delta <= MAX_CLTV_EXPIRY_DELTA:
            raise LightningError(
                f"cltv_expiry_delta must be in [{MIN_CLTV_EXPIRY_DELTA}, "
                f"{MAX_CLTV_EXPIRY_DELTA}], got {cltv_expiry_delta}"
            )
        date = int(self.sim_network.clock())
        payment_secret = hmac.digest(
            bytes.fromhex(self._key_hex), b"taskhold/sim/secret/" + payment_hash, "sha256"
        )
        tags = Tags(
            [
                Tag(TagChar.payment_hash, payment_hash.hex()),
                Tag(TagChar.description, memo),
                Tag(TagChar.payment_secret, payment_secret.hex()),
                Tag(TagChar.expire_time, expiry_seconds),
                Tag(TagChar.min_final_cltv_expiry, cltv_expiry_delta),
            ]
        )
        invoice = Bolt11(
            currency=self.network, amount_msat=MilliSatoshi(amount_msat), date=date, tags=tags
        )
        payment_request: str = bolt11.encode(invoice, self._key_hex)
        self.sim_network.add_invoice(
            self.pubkey_hex,
            payment_hash,
            amount_msat,
            cltv_expiry_delta=cltv_expiry_delta,
            expires_at=date + expiry_seconds,
            preimage=preimage,
            payment_request=payment_request,
        )
        return payment_request

    def _decode(self, payment_request: str) -> _Request:
        try:
            decoded = bolt11.decode(payment_request)
        except bolt11.Bolt11Exception as exc:
            raise LightningError("invalid payment request", node_message=str(exc)) from exc
        if decoded.currency != self.network:
            raise LightningError(f"invoice is for network {decoded.currency!r}, not {self.network}")
        if decoded.amount_msat is None:
            raise LightningError("invoices without an amount are not supported")
        return _Request(
            payee=str(decoded.payee),
            payment_hash=bytes.fromhex(decoded.payment_hash),
            amount_msat=int(decoded.amount_msat),
            min_final_cltv_expiry=int(decoded.min_final_cltv_expiry or 18),
        )
