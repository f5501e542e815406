"""Boltz's swap status strings (``SwapUpdateEvent``) and what each lifecycle does with them.

Submarine: the client locks on chain, Boltz pays the invoice and claims. Reverse: Boltz locks on
chain, the client claims with the preimage. The sets say which statuses end a swap, which are
failures, and when a cooperative refund or claim signature can be asked for (docs/lifecycle.md).
"""

from __future__ import annotations

__all__ = [
    "FINAL",
    "INVOICE_EXPIRED",
    "INVOICE_FAILED_TO_PAY",
    "INVOICE_PAID",
    "INVOICE_PENDING",
    "INVOICE_SET",
    "INVOICE_SETTLED",
    "MINERFEE_PAID",
    "REVERSE_CLAIMABLE",
    "REVERSE_FAILED",
    "REVERSE_FINAL",
    "REVERSE_STATUSES",
    "SUBMARINE_FAILED",
    "SUBMARINE_FINAL",
    "SUBMARINE_REFUNDABLE",
    "SUBMARINE_STATUSES",
    "SWAP_CREATED",
    "SWAP_EXPIRED",
    "TRANSACTION_CLAIMED",
    "TRANSACTION_CLAIM_PENDING",
    "TRANSACTION_CONFIRMED",
    "TRANSACTION_FAILED",
    "TRANSACTION_LOCKUP_FAILED",
    "TRANSACTION_MEMPOOL",
    "TRANSACTION_REFUNDED",
]

SWAP_CREATED = "swap.created"
SWAP_EXPIRED = "swap.expired"
INVOICE_SET = "invoice.set"
INVOICE_PENDING = "invoice.pending"
INVOICE_PAID = "invoice.paid"
INVOICE_FAILED_TO_PAY = "invoice.failedToPay"
INVOICE_SETTLED = "invoice.settled"
INVOICE_EXPIRED = "invoice.expired"
MINERFEE_PAID = "minerfee.paid"
TRANSACTION_MEMPOOL = "transaction.mempool"
TRANSACTION_CONFIRMED = "transaction.confirmed"
TRANSACTION_CLAIM_PENDING = "transaction.claim.pending"
TRANSACTION_CLAIMED = "transaction.claimed"
TRANSACTION_LOCKUP_FAILED = "transaction.lockupFailed"
TRANSACTION_FAILED = "transaction.failed"
TRANSACTION_REFUNDED = "transaction.refunded"

SUBMARINE_STATUSES = frozenset(
    {
        SWAP_CREATED,
        INVOICE_SET,
        TRANSACTION_MEMPOOL,
        TRANSACTION_CONFIRMED,
        INVOICE_PENDING,
        INVOICE_PAID,
        TRANSACTION_CLAIM_PENDING,
        TRANSACTION_CLAIMED,
        INVOICE_FAILED_TO_PAY,
        TRANSACTION_LOCKUP_FAILED,
        SWAP_EXPIRED,
    }
)
SUBMARINE_FINAL = frozenset({TRANSACTION_CLAIMED, INVOICE_FAILED_TO_PAY, SWAP_EXPIRED})
SUBMARINE_FAILED = frozenset({INVOICE_FAILED_TO_PAY, TRANSACTION_LOCKUP_FAILED, SWAP_EXPIRED})
"""``transaction.lockupFailed`` (a wrong amount) is a failure but not final: it becomes
``swap.expired``."""
SUBMARINE_REFUNDABLE = SUBMARINE_FAILED
"""Where Boltz co-signs a cooperative refund; after the timeout the script path always works."""

REVERSE_STATUSES = frozenset(
    {
        SWAP_CREATED,
        MINERFEE_PAID,
        TRANSACTION_MEMPOOL,
        TRANSACTION_CONFIRMED,
        INVOICE_SETTLED,
        INVOICE_EXPIRED,
        SWAP_EXPIRED,
        TRANSACTION_FAILED,
        TRANSACTION_REFUNDED,
    }
)
REVERSE_FAILED = frozenset(
    {INVOICE_EXPIRED, SWAP_EXPIRED, TRANSACTION_FAILED, TRANSACTION_REFUNDED}
)
REVERSE_FINAL = REVERSE_FAILED | {INVOICE_SETTLED}
REVERSE_CLAIMABLE = frozenset({TRANSACTION_MEMPOOL, TRANSACTION_CONFIRMED, INVOICE_SETTLED})
"""Where Boltz co-signs a cooperative claim (its lockup is out)."""

FINAL = SUBMARINE_FINAL | REVERSE_FINAL
"""No status final in one lifecycle is a step of the other, so one set serves a poller."""
