"""What someone asks of a task. Commands are decided by ``machine.decide`` into events.

Each carries its ``actor`` (hex pubkey, or ``system`` for taskhold's own components) and ``at``
(unix seconds, supplied by the caller so the machine stays pure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "AcceptAgreement",
    "Apply",
    "Approve",
    "Assign",
    "AssignSeriesWorker",
    "Cancel",
    "CancelMilestone",
    "CancelRound",
    "Claim",
    "Command",
    "CompleteDepositPayout",
    "CompleteDepositReturn",
    "CompleteRefund",
    "CompleteRelease",
    "CompleteRenewal",
    "CompleteSplit",
    "ConfirmDeposit",
    "ConfirmFunding",
    "CreateTask",
    "DepositCommand",
    "DepositExpiring",
    "DepositInvoiceCancelled",
    "ExpireFunding",
    "HoldExpiring",
    "OpenDispute",
    "OpenMilestone",
    "OpenRenewal",
    "ProposeAgreement",
    "RecordDepositPayoutFailure",
    "RecordPayoutFailure",
    "RecordRefundShareFailure",
    "RecordSharePaid",
    "RefuseProof",
    "Reject",
    "ReportSwap",
    "RequestDeposit",
    "RequestDepositPayout",
    "RequestFunding",
    "ResolveDispute",
    "RevokeClaim",
    "RoundCommand",
    "SettleDepositUnderLivePayout",
    "SettleUnderLivePayout",
    "SubmitProof",
    "SwapCommand",
    "SystemDepositCommand",
    "Tick",
    "Unclaim",
    "UpdatePayoutRequest",
    "UpdateRefundRequest",
    "WithdrawAgreement",
    "invoice_fields",
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
    review_window_by_policy: bool = False
    deposit_pledged: bool = False
    claim_mode: str = "open"
    direct_worker: str | None = None
    claim_timeout_s: int | None = None
    rejection_policy: str | None = None
    series_id: str | None = None
    milestone_index: int | None = None
    milestone_count: int | None = None
    funding_mode: str | None = None
    renewal_needed: bool = False
    visibility: str = "public"
    details_hash: str | None = None
    details_sealed: dict[str, dict[str, str]] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestFunding(Command):
    funding_round: int
    payment_hash_hex: str
    payment_request: str
    cltv_expiry_delta: int
    invoice_expires_at: int


_INVOICE_FIELDS = (
    "funding_round",
    "payment_hash_hex",
    "payment_request",
    "cltv_expiry_delta",
    "invoice_expires_at",
)
"""The hold invoice a funding command carries (``RequestFunding``, ``OpenMilestone``,
``OpenRenewal``), copied as is into the event that records it."""


def invoice_fields(cmd: RequestFunding | OpenMilestone | OpenRenewal) -> dict[str, Any]:
    return {name: getattr(cmd, name) for name in _INVOICE_FIELDS}


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmFunding(Command):
    accepted_htlc_expiry_height: int
    amount_paid_msat: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpireFunding(Command):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim(Command):
    review_window_s: int | None = None
    """The review window fixed from both parties' records (never longer); None keeps it."""
    details_sealed: dict[str, dict[str, str]] | None = None
    """A private task's details sealed by the operator for the claimant (see ``TaskCreated``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitProof(Command):
    proof_event_id: str
    proof: dict[str, Any]
    payout_request: str
    proof_hash: str | None = None
    """A sealed proof's commitment (``proof`` is then empty; see ``actions.private``)."""
    proof_sealed: dict[str, dict[str, str]] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RefuseProof(Command):
    """Record that a worker's proof failed the acceptance spec (the verdict is public too)."""

    proof_event_id: str
    problems: list[str]
    max_refused: int = 10
    """How many refused proofs a task records (``refused_proofs_max_per_task``); past it a
    failing proof is refused without a log entry."""


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
    worker_msat: int | None = None
    """The worker's share when ``winner`` is ``split``."""


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
    payout_short: bool = False
    """The task's payout waits for the escrow node's own outbound liquidity (not counted as a
    failure of the worker's): the declared policy refunds it like a failed one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordPayoutFailure(Command):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteRelease(Command):
    preimage_hex: str
    payout_payment_hash_hex: str
    payout_fee_msat: int
    payout_preimage_hex: str | None = None
    """The payout's preimage, the worker's node's proof of payment."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SettleUnderLivePayout(Command):
    """The guardian settled the hold while the payout was still in flight (declared fallback)."""

    preimage_hex: str
    payout_payment_hash_hex: str
    blocks_left: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteRefund(Command):
    invoice_state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Apply(Command):
    """A would-be worker asks for a task in claim mode ``apply``, with a signed note."""

    note: str
    max_applications: int = 100
    """How many applications one task takes (``applications_max_per_task``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Assign(Command):
    """The employer picks one applicant as the task's worker."""

    worker_pubkey: str
    review_window_s: int | None = None
    """As for ``Claim``: the review window fixed from both parties' records; None keeps it."""
    details_sealed: dict[str, dict[str, str]] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Unclaim(Command):
    """The worker gives the task back before sending a proof."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeClaim(Command):
    """The employer takes the task back from a worker who sent no proof within the claim
    timeout."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositCommand(Command):
    """Base of the commands on one deposit; decided by ``taskhold.tasks.deposits``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemDepositCommand(DepositCommand):
    """A deposit command of taskhold's own, naming the deposit by its payment hash."""

    payment_hash_hex: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestDeposit(DepositCommand):
    """The actor asks for a deposit invoice on this task (employer before funding, a would-be
    worker before claiming)."""

    round: int
    amount_msat: int
    payment_hash_hex: str
    payment_request: str
    cltv_expiry_delta: int
    invoice_expires_at: int
    max_open_per_task: int = 10
    """How many deposits may wait for a claim on one task (``deposit_max_open_per_task``)."""
    max_per_task: int = 100
    """How many deposits one task takes in its life (``deposit_max_per_task``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmDeposit(SystemDepositCommand):
    expiry_height: int
    amount_paid_msat: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SettleDepositUnderLivePayout(SystemDepositCommand):
    """The guardian settled a forfeited deposit while its payout was still in flight."""

    preimage_hex: str
    payout_payment_hash_hex: str
    blocks_left: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositInvoiceCancelled(SystemDepositCommand):
    """The node cancelled a deposit's invoice on its own (expired unpaid, or auto-cancel)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositExpiring(SystemDepositCommand):
    blocks_left: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestDepositPayout(DepositCommand):
    """The beneficiary of a forfeited deposit sends the invoice to be paid."""

    depositor: str
    payout_request: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordDepositPayoutFailure(SystemDepositCommand):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteDepositReturn(SystemDepositCommand):
    invoice_state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteDepositPayout(SystemDepositCommand):
    preimage_hex: str
    payout_payment_hash_hex: str
    payout_fee_msat: int
    payout_preimage_hex: str | None = None
    """The payout's preimage, the beneficiary's node's proof of payment."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateRefundRequest(Command):
    """The employer gives (or replaces) the invoice their share of a split is paid to."""

    refund_request: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordRefundShareFailure(Command):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordSharePaid(Command):
    share: str
    payment_hash_hex: str
    payment_preimage_hex: str
    fee_msat: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteSplit(Command):
    preimage_hex: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposeAgreement(Command):
    """The employer or the worker proposes to end the task by agreement: the worker gets
    ``worker_msat`` (0 cancels, the payout releases, anything between splits); it replaces any
    standing proposal."""

    worker_msat: int
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptAgreement(Command):
    """The other party accepts the standing proposal, repeating its ``worker_msat``."""

    worker_msat: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WithdrawAgreement(Command):
    """The proposer takes the standing proposal back."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenMilestone(Command):
    """taskhold issues a milestone's hold invoice, as its series' funding mode says: at
    creation (``upfront``, and the first of a ``sequential`` series), or once the milestone
    before is PAID (``sequential``)."""

    funding_round: int
    payment_hash_hex: str
    payment_request: str
    cltv_expiry_delta: int
    invoice_expires_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelMilestone(Command):
    """A waiting sequential milestone is cancelled because one before it ended unpaid; nothing
    was funded, so no money moves."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AssignSeriesWorker(Command):
    """taskhold makes the worker of a series' first milestone the worker of a later, funded one
    (claim mode ``series``)."""

    worker_pubkey: str


# Funding rounds: a hold renewed past the CLTV cap (decided by ``taskhold.tasks.rounds``)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundCommand(Command):
    """Base of the commands on a task's funding rounds; taskhold's own, never a participant's."""

    payment_hash_hex: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenRenewal(RoundCommand):
    """Record the hold invoice of round ``funding_round`` for the employer to pay."""

    funding_round: int
    payment_request: str
    cltv_expiry_delta: int
    invoice_expires_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteRenewal(RoundCommand):
    """The node holds the renewal's HTLC: the task moves to that round."""

    accepted_htlc_expiry_height: int
    amount_paid_msat: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRound(RoundCommand):
    """A round other than the current one was cancelled at the node."""

    reason: str


# Swap reports: a party's Boltz swap for the task (decided by ``taskhold.tasks.swap_reports``)


@dataclass(frozen=True, slots=True, kw_only=True)
class SwapCommand(Command):
    """Base of the commands on a task's swap records; they act on a closed task too."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportSwap(SwapCommand):
    """The employer reports the funding (submarine) swap that pays the hold invoice, or the
    worker the payout (reverse) swap whose invoice is the payout invoice: the swap's id, the
    Boltz API it runs at, and the txids known so far. Each party runs its own swap with its
    own keys; taskhold only records what they say happened on chain."""

    role: str
    swap_id: str
    swap_api: str
    lockup_txid: str | None = None
    claim_txid: str | None = None
    refund_txid: str | None = None
