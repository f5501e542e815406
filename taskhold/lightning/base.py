"""The Lightning seam: one small Protocol shaped like hold invoices.

Every backend (``sim``, ``lnd``) implements :class:`LightningBackend`. The escrow engine talks
only to this Protocol, so the same code path runs on the simulator and on a real node. Backends
map their own failures to the typed exceptions below at one boundary; callers never look at
message text.

Identifiers are always raw 32-byte ``bytes`` at this seam (payment hashes, preimages). Encoding to
hex or base64 is each adapter's private business.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "AcceptedHtlc",
    "AlreadyExists",
    "HoldInvoice",
    "InvoiceNotFound",
    "InvoiceState",
    "InvoiceStatus",
    "LightningBackend",
    "LightningError",
    "NodeCapacity",
    "NodeUnreachable",
    "PaymentFailed",
    "PaymentResult",
    "PaymentStatus",
    "WrongInvoiceState",
]


class InvoiceState(enum.StrEnum):
    """State of a hold invoice on the escrow node (lnd's names)."""

    OPEN = "OPEN"
    ACCEPTED = "ACCEPTED"
    SETTLED = "SETTLED"
    CANCELED = "CANCELED"


class PaymentStatus(enum.StrEnum):
    """State of an outgoing payment. ``UNKNOWN`` means the node never saw this hash."""

    UNKNOWN = "UNKNOWN"
    IN_FLIGHT = "IN_FLIGHT"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class HoldInvoice:
    """What the node returns when a hold invoice is created."""

    payment_hash: bytes
    payment_request: str
    amount_msat: int
    cltv_expiry_delta: int
    expiry_seconds: int


@dataclass(frozen=True, slots=True)
class AcceptedHtlc:
    """One HTLC held against a hold invoice; it times out at block ``expiry_height``."""

    amount_msat: int
    accept_height: int
    expiry_height: int


@dataclass(frozen=True, slots=True)
class InvoiceStatus:
    """A snapshot of a hold invoice as the node reports it."""

    payment_hash: bytes
    state: InvoiceState
    amount_msat: int
    amount_paid_msat: int = 0
    htlcs: tuple[AcceptedHtlc, ...] = field(default_factory=tuple)
    payment_request: str = ""
    """The BOLT11 string, so a crashed funding attempt can reuse the invoice it created."""

    @property
    def accepted_htlc_expiry_height(self) -> int | None:
        """The earliest expiry height of the held HTLCs: the guardian's real deadline."""
        return min((h.expiry_height for h in self.htlcs), default=None)


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """Outcome of an outgoing payment. ``preimage`` is set only when ``SUCCEEDED``."""

    payment_hash: bytes
    status: PaymentStatus
    amount_msat: int = 0
    fee_msat: int = 0
    preimage: bytes | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    """What the node can take on now, summed over its active channels.

    Every funded task holds one incoming HTLC (a slot, 483 at most per channel direction) and
    its amount of inbound liquidity until it is settled or cancelled, and every release first
    pays the worker from outbound liquidity. Admission control compares these figures with
    what taskhold has already promised (:mod:`taskhold.escrow.admission`).
    """

    inbound_msat: int
    """The most the node can still receive, over all active channels."""
    outbound_msat: int
    """The most the node can still send, over all active channels."""
    htlc_slots_free: int
    """Incoming HTLCs the node can still accept."""
    htlc_slots_max: int
    """Incoming HTLCs its active channels accept at most, held ones included."""
    largest_inbound_msat: int = 0
    """Inbound room of the single best channel: one HTLC must fit in one channel."""


class LightningError(Exception):
    """Base of every error a backend raises. ``node_message`` keeps the node's own words."""

    def __init__(self, message: str, *, node_message: str | None = None) -> None:
        super().__init__(message)
        self.node_message = node_message


class NodeUnreachable(LightningError):
    """The node could not be reached (connection refused, timeout, TLS). Safe to retry."""


class InvoiceNotFound(LightningError):
    """No invoice with this payment hash exists on the node."""


class AlreadyExists(LightningError):
    """An invoice with this payment hash already exists on the node."""


class WrongInvoiceState(LightningError):
    """The invoice is not in a state that allows the call (e.g. settle a CANCELED invoice)."""


class PaymentFailed(LightningError):
    """A payment attempt ended FAILED; ``reason`` is the node's failure reason."""

    def __init__(self, message: str, *, reason: str, node_message: str | None = None) -> None:
        super().__init__(message, node_message=node_message)
        self.reason = reason


@runtime_checkable
class LightningBackend(Protocol):
    """Hold-invoice operations the escrow engine needs from a node.

    Every method is idempotent where the node allows: settling a SETTLED invoice and cancelling a
    CANCELED one succeed; paying a hash that was already paid raises nothing new but returns the
    recorded result (look it up with :meth:`lookup_payment`).
    """

    network: str
    """BOLT11 network prefix this backend's invoices use: ``bcrt`` (regtest), ``tb``, ``bc``."""

    async def create_hold_invoice(
        self,
        payment_hash: bytes,
        amount_msat: int,
        *,
        memo: str,
        expiry_seconds: int,
        cltv_expiry_delta: int,
    ) -> HoldInvoice:
        """Add a hold invoice for ``payment_hash``; :class:`AlreadyExists` on a reused hash."""
        ...

    async def lookup_invoice(self, payment_hash: bytes) -> InvoiceStatus:
        """Current state of a hold invoice, including the accepted HTLCs' expiry heights."""
        ...

    def subscribe_invoice(self, payment_hash: bytes) -> AsyncIterator[InvoiceStatus]:
        """Yield the invoice's state now and after every change, until SETTLED or CANCELED."""
        ...

    def subscribe_invoices(self) -> AsyncGenerator[InvoiceStatus, None]:
        """Every invoice of this node: each pending one (OPEN or ACCEPTED) once at the start,
        then any invoice after it changes state, for as long as the caller reads.

        One subscription for all invoices, so the connections to the node stay constant however
        many invoices are open. A state may be reported more than once; a change that happens
        while the node is unreachable may be missed, so callers re-read what they depend on
        after :class:`NodeUnreachable` ends the iteration.
        """
        ...

    async def settle_invoice(self, preimage: bytes) -> None:
        """Settle the ACCEPTED hold invoice whose hash is ``sha256(preimage)``."""
        ...

    async def cancel_invoice(self, payment_hash: bytes) -> None:
        """Cancel an OPEN or ACCEPTED hold invoice; held HTLCs go back to the payer."""
        ...

    async def pay_invoice(
        self,
        payment_request: str,
        *,
        max_fee_msat: int,
        timeout_seconds: int,
        cltv_limit: int,
        behind: bytes | None = None,
    ) -> PaymentResult:
        """Pay a BOLT11 invoice within ``cltv_limit`` blocks of total time lock (route and
        final CLTV, lnd's ``cltv_limit``): SUCCEEDED with the preimage; IN_FLIGHT if the payee
        still holds the HTLC when ``timeout_seconds`` run out (it may still land: follow it with
        :meth:`lookup_payment`); :class:`PaymentFailed` if it failed, or no route fits the limit.

        ``behind`` names the hold invoice the payment stands behind: a pool of nodes
        (:mod:`.pool`) pays from the node that holds it; a single node ignores it.
        """
        ...

    async def lookup_payment(self, payment_hash: bytes) -> PaymentResult:
        """The outcome of an earlier outgoing payment; ``UNKNOWN`` if the node never tried it."""
        ...

    async def block_height(self) -> int:
        """The node's current best block height."""
        ...

    async def node_pubkey(self) -> str:
        """The node's identity public key (hex): the payee of every invoice it issues."""
        ...

    async def capacity(self, *, behind: bytes | None = None) -> NodeCapacity:
        """Liquidity and free HTLC slots of the node's active channels, as they stand now;
        a pool's sum, or with ``behind`` the figures of the node holding that hold invoice."""
        ...

    async def close(self) -> None:
        """Release connections. Safe to call twice."""
        ...
