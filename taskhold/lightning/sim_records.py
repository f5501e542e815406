"""Records the simulated network keeps: what the simulator's tests read, and its own bookkeeping.

:class:`AutoCancel` and :class:`SettledPayment` are the evidence tests check ("lnd cancelled it",
"the worker was paid exactly once"). :class:`InvoiceRecord` and :class:`PaymentRecord` are the
mutable state behind one invoice and one outgoing payment; only the network changes them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from taskhold.lightning.base import (
    AcceptedHtlc,
    InvoiceState,
    InvoiceStatus,
    PaymentResult,
    PaymentStatus,
)

__all__ = [
    "FAILURE_REASONS",
    "FINAL_INVOICE_STATES",
    "INCORRECT_PAYMENT_DETAILS",
    "INSUFFICIENT_BALANCE",
    "NO_ROUTE",
    "TIMEOUT",
    "AutoCancel",
    "HasPubkey",
    "InvoiceRecord",
    "PaymentRecord",
    "SettledPayment",
]

NO_ROUTE = "FAILURE_REASON_NO_ROUTE"
INCORRECT_PAYMENT_DETAILS = "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS"
INSUFFICIENT_BALANCE = "FAILURE_REASON_INSUFFICIENT_BALANCE"
TIMEOUT = "FAILURE_REASON_TIMEOUT"
FAILURE_REASONS = frozenset(
    {TIMEOUT, NO_ROUTE, INCORRECT_PAYMENT_DETAILS, INSUFFICIENT_BALANCE, "FAILURE_REASON_ERROR"}
)
"""lnd's ``PaymentFailureReason`` names the simulator reports."""

FINAL_INVOICE_STATES = frozenset({InvoiceState.SETTLED, InvoiceState.CANCELED})


class HasPubkey(Protocol):
    """Anything that names a node by its public key (a ``SimNode``)."""

    @property
    def pubkey_hex(self) -> str: ...


@dataclass(frozen=True, slots=True)
class AutoCancel:
    """lnd's own cancel of an ACCEPTED hold invoice, at block ``height``."""

    issuer_pubkey_hex: str
    payment_hash: bytes
    height: int


@dataclass(frozen=True, slots=True)
class SettledPayment:
    """Money that reached a receiver: one entry per settled invoice."""

    payment_hash: bytes
    payer_pubkey_hex: str
    payee_pubkey_hex: str
    amount_msat: int
    fee_msat: int
    height: int


@dataclass(eq=False, slots=True)
class PaymentRecord:
    """One node's outgoing payment of one hash. ``done`` is set once it is final."""

    payment_hash: bytes
    amount_msat: int
    fee_msat: int = 0
    status: PaymentStatus = PaymentStatus.IN_FLIGHT
    preimage: bytes | None = None
    failure_reason: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def result(self) -> PaymentResult:
        return PaymentResult(
            payment_hash=self.payment_hash,
            status=self.status,
            amount_msat=self.amount_msat,
            fee_msat=self.fee_msat,
            preimage=self.preimage,
            failure_reason=self.failure_reason,
        )


@dataclass(eq=False, slots=True)
class InvoiceRecord:
    """An invoice as its issuing node keeps it. ``preimage`` is unknown for hold invoices."""

    issuer: str
    payment_hash: bytes
    amount_msat: int
    cltv_expiry_delta: int
    expires_at: float
    hold: bool
    preimage: bytes | None
    payment_request: str
    state: InvoiceState = InvoiceState.OPEN
    htlcs: tuple[AcceptedHtlc, ...] = ()
    payer: str | None = None
    payment: PaymentRecord | None = None
    subscribers: list[asyncio.Queue[InvoiceStatus | None]] = field(default_factory=list)

    def status(self) -> InvoiceStatus:
        return InvoiceStatus(
            payment_hash=self.payment_hash,
            state=self.state,
            amount_msat=self.amount_msat,
            amount_paid_msat=sum(h.amount_msat for h in self.htlcs),
            htlcs=self.htlcs,
            payment_request=self.payment_request,
        )
