"""Swap status values (Boltz's ``SwapUpdateEvent`` strings) and the moves allowed between them.

Every status change goes through :func:`check_move` against :data:`TRANSITIONS`, one table per
swap kind, so a watcher bug or a hostile request cannot jump a swap to a state Boltz's lifecycle
never reaches (for example ``transaction.claimed`` without ``invoice.paid``).
"""

from __future__ import annotations

from enum import StrEnum

from taskhold.swaps.tree import SwapType

__all__ = [
    "COOPERATIVE_REFUND_STATES",
    "FINAL",
    "REVERSE_CLAIM_SIGNING_STATES",
    "TRANSITIONS",
    "IllegalMove",
    "Status",
    "check_move",
]


class Status(StrEnum):
    SWAP_CREATED = "swap.created"
    SWAP_EXPIRED = "swap.expired"
    INVOICE_SET = "invoice.set"
    INVOICE_PENDING = "invoice.pending"
    INVOICE_PAID = "invoice.paid"
    INVOICE_FAILED_TO_PAY = "invoice.failedToPay"
    INVOICE_SETTLED = "invoice.settled"
    INVOICE_EXPIRED = "invoice.expired"
    TX_MEMPOOL = "transaction.mempool"
    TX_CONFIRMED = "transaction.confirmed"
    TX_LOCKUP_FAILED = "transaction.lockupFailed"
    TX_CLAIM_PENDING = "transaction.claim.pending"
    TX_CLAIMED = "transaction.claimed"
    TX_FAILED = "transaction.failed"
    TX_REFUNDED = "transaction.refunded"


S = Status

TRANSITIONS: dict[SwapType, dict[Status, frozenset[Status]]] = {
    # the client locks up on chain; the server pays the invoice, then claims with its preimage
    SwapType.SUBMARINE: {
        S.INVOICE_SET: frozenset(
            {S.TX_MEMPOOL, S.TX_CONFIRMED, S.TX_LOCKUP_FAILED, S.SWAP_EXPIRED}
        ),
        S.TX_MEMPOOL: frozenset({S.TX_CONFIRMED, S.TX_LOCKUP_FAILED, S.SWAP_EXPIRED}),
        S.TX_CONFIRMED: frozenset({S.INVOICE_PENDING, S.SWAP_EXPIRED}),
        S.INVOICE_PENDING: frozenset({S.INVOICE_PAID, S.INVOICE_FAILED_TO_PAY}),
        S.INVOICE_PAID: frozenset({S.TX_CLAIM_PENDING}),
        S.TX_CLAIM_PENDING: frozenset({S.TX_CLAIMED}),
        S.TX_LOCKUP_FAILED: frozenset({S.SWAP_EXPIRED}),
    },
    # the server locks up once its hold invoice is paid; the client claims with the preimage
    SwapType.REVERSE: {
        S.SWAP_CREATED: frozenset({S.TX_MEMPOOL, S.TX_FAILED, S.INVOICE_EXPIRED, S.SWAP_EXPIRED}),
        S.TX_MEMPOOL: frozenset({S.TX_CONFIRMED, S.INVOICE_SETTLED, S.TX_REFUNDED}),
        S.TX_CONFIRMED: frozenset({S.INVOICE_SETTLED, S.TX_REFUNDED}),
    },
}

FINAL: dict[SwapType, frozenset[Status]] = {
    kind: frozenset({to for targets in table.values() for to in targets} - set(table))
    for kind, table in TRANSITIONS.items()
}
"""States nothing leaves: the watcher stops looking at a swap in one of them."""

COOPERATIVE_REFUND_STATES = frozenset({S.INVOICE_FAILED_TO_PAY, S.TX_LOCKUP_FAILED, S.SWAP_EXPIRED})
"""Where Boltz co-signs a submarine refund (and then only with no pending or paid payment)."""

REVERSE_CLAIM_SIGNING_STATES = frozenset({S.TX_MEMPOOL, S.TX_CONFIRMED, S.INVOICE_SETTLED})
"""Where Boltz co-signs a reverse claim (after the preimage opened the swap's hash)."""


class IllegalMove(Exception):
    """A status change the lifecycle does not allow: a bug in the caller, never client input."""


def check_move(kind: SwapType, current: Status, to: Status) -> None:
    if to not in TRANSITIONS[kind].get(current, frozenset()):
        raise IllegalMove(f"a {kind.value} swap cannot move from {current} to {to}")
