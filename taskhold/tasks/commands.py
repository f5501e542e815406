"""What someone asks of a task. Commands are decided by ``machine.decide`` into events.

Each carries its ``actor`` (hex pubkey, or ``system`` for taskhold's own components) and ``at``
(unix seconds, supplied by the caller so the machine stays pure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "Approve",
    "Cancel",
    "Claim",
    "Command",
    "CompleteRefund",
    "CompleteRelease",
    "ConfirmFunding",
    "CreateTask",
    "ExpireFunding",
    "HoldExpiring",
    "OpenDispute",
    "RecordPayoutFailure",
    "RefuseProof",
    "Reject",
    "RequestFunding",
    "ResolveDispute",
    "SubmitProof",
    "Tick",
    "UpdatePayoutRequest",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    actor: str
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateTask(Command):
    task_id: str
    title: str
    description: str
    acceptance: dict[str, Any]
    amount_msat: int
    fee_msat: int
    deadline_at: int
    review_window_s: int
    dispute_window_s: int
    deadline_policy: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestFunding(Command):
    funding_round: int
    payment_hash_hex: str
    payment_request: str
    cltv_expiry_delta: int
    invoice_expires_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmFunding(Command):
    accepted_htlc_expiry_height: int
    amount_paid_msat: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpireFunding(Command):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitProof(Command):
    proof_event_id: str
    proof: dict[str, Any]
    payout_request: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RefuseProof(Command):
    """Record that a worker's proof failed the acceptance spec (the verdict is public too)."""

    proof_event_id: str
    problems: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Approve(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject(Command):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenDispute(Command):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolveDispute(Command):
    winner: str
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel(Command):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdatePayoutRequest(Command):
    payout_request: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick(Command):
    """Wall-clock timers: the review window and the submission deadline."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldExpiring(Command):
    """The guardian saw the held HTLC come within its margin of expiry (by block height)."""

    blocks_left: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordPayoutFailure(Command):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteRelease(Command):
    preimage_hex: str
    payout_payment_hash_hex: str
    payout_fee_msat: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteRefund(Command):
    invoice_state: str
