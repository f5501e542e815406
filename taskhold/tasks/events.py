"""The facts a task's history is made of. Frozen, serialisable, replayed by ``machine.evolve``.

Ids, timestamps and preimages are made by the command layer and arrive here as plain values; the
reducer never invents them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .plain import as_plain

__all__ = [
    "AgreementAccepted",
    "AgreementProposed",
    "AgreementWithdrawn",
    "ApplicationFiled",
    "ClaimReleased",
    "ClaimRevoked",
    "DepositEvent",
    "DepositForfeited",
    "DepositLocked",
    "DepositPaidOut",
    "DepositPayoutFailed",
    "DepositPayoutRequested",
    "DepositRequested",
    "DepositReturnOrdered",
    "DepositReturned",
    "DepositSettledUnderLivePayout",
    "DisputeOpened",
    "DisputeResolved",
    "DisputeWindowElapsed",
    "Event",
    "FundingAccepted",
    "FundingExpired",
    "FundingRequested",
    "HoldSettledUnderLivePayout",
    "PayoutFailed",
    "PayoutRequestUpdated",
    "ProofRefused",
    "ProofSubmitted",
    "RefundCompleted",
    "RefundOrdered",
    "RefundRequestUpdated",
    "RefundShareFailed",
    "RejectionLapsed",
    "ReleaseCompleted",
    "RenewalOpened",
    "Renewed",
    "ReviewWindowElapsed",
    "RoundCancelled",
    "RoundEvent",
    "SplitCompleted",
    "SplitDecided",
    "SplitSharePaid",
    "SubmissionApproved",
    "SubmissionRejected",
    "SwapReported",
    "TaskCancelled",
    "TaskClaimed",
    "TaskCreated",
    "WorkerAssigned",
    "event_from_dict",
    "event_to_dict",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every task event. ``at`` is unix seconds, ``actor`` a hex pubkey or ``system``."""

    at: int
    actor: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCreated(Event):
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
    """taskhold chose the review window (the employer gave none): fixed again at claim time
    from both parties' records, never longer."""
    deposit_pledged: bool = False
    """The employer skipped proof of work by promising a deposit; funding waits for it."""
    claim_mode: str = "open"
    """Who may become the worker: ``open`` (first claim), ``apply`` (the employer assigns one
    applicant) or ``direct`` (only ``direct_worker``). Entries from before claim modes: open."""
    direct_worker: str | None = None
    claim_timeout_s: int | None = None
    """Seconds from a claim to its first proof, after which the employer may revoke the claim;
    None (entries from before claim timeouts) means a claim is never revoked."""
    rejection_policy: str | None = None
    """What a rejection nobody disputed or ruled on ends in (``machine.REJECTION_POLICIES``);
    None on tasks created before the policy was declared."""
    series_id: str | None = None
    """The milestone series this task belongs to (``taskhold.tasks.milestones``): the task id
    of its first milestone. None for a task on its own, and on entries from before milestones."""
    milestone_index: int | None = None
    milestone_count: int | None = None
    funding_mode: str | None = None
    renewal_needed: bool = False
    """The task outlasts one hold: its hold is renewed round after round (``tasks.rounds``)."""
    visibility: str = "public"
    """``public`` (the details are in the clear: a bounty) or ``private`` (the description is
    empty; the details are sealed to the parties and ``details_hash`` commits to them)."""
    details_hash: str | None = None
    """sha256 of the sealed details payload (``taskhold.nostr.confidential``); private only."""
    details_sealed: dict[str, dict[str, str]] | None = None
    """Sealed copies of the details payload: recipient pubkey -> ``{"sender", "ciphertext"}``
    (NIP-44 v2). Never the plaintext."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingRequested(Event):
    funding_round: int
    payment_hash_hex: str
    payment_request: str
    cltv_expiry_delta: int
    invoice_expires_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingAccepted(Event):
    accepted_htlc_expiry_height: int
    amount_paid_msat: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingExpired(Event):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskClaimed(Event):
    worker_pubkey: str
    review_window_s: int | None = None
    """The review window fixed at claim from both parties' records; None keeps the task's."""
    details_sealed: dict[str, dict[str, str]] | None = None
    """A private task's details, sealed by the operator for the new worker."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProofSubmitted(Event):
    proof_event_id: str
    proof: dict[str, Any]
    payout_request: str
    proof_hash: str | None = None
    """A sealed proof: sha256 of its payload; ``proof`` is empty and the operator checked the
    opened proof against the acceptance spec (this entry is the passing verdict)."""
    proof_sealed: dict[str, dict[str, str]] | None = None
    """The sealed proof's copies by recipient (``{"sender", "ciphertext"}``), as the worker
    signed them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProofRefused(Event):
    """The automatic check's verdict on a proof that failed the acceptance spec."""

    proof_event_id: str
    problems: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmissionApproved(Event):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewWindowElapsed(Event):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmissionRejected(Event):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DisputeOpened(Event):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DisputeResolved(Event):
    winner: str
    """``worker`` (release) or ``employer`` (refund)."""
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DisputeWindowElapsed(Event):
    """Nobody resolved the dispute within its window: a submission that passed the automatic
    checks is verified (the declared default; without a proof the task is refunded instead)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundOrdered(Event):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCancelled(Event):
    """Cancelled while nothing could have been paid (DRAFT): no invoice to cancel."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PayoutFailed(Event):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PayoutRequestUpdated(Event):
    payout_request: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseCompleted(Event):
    """The worker was paid and the hold invoice settled. Reveals the preimage, and the
    payout's preimage: the proof that the payout's hash (signed by the worker) was paid. None in
    entries from before that proof."""

    preimage_hex: str
    payout_payment_hash_hex: str
    payout_fee_msat: int
    payout_preimage_hex: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldSettledUnderLivePayout(Event):
    """The declared fallback: the hold invoice was settled while the worker's payout was still
    in flight at the guardian's deadline. Reveals the preimage; the worker stays owed, and the
    task becomes PAID once the payout lands."""

    preimage_hex: str
    payout_payment_hash_hex: str
    blocks_left: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundCompleted(Event):
    """The hold invoice is cancelled at the node; the employer's HTLC went back."""

    invoice_state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectionLapsed(Event):
    """A rejected submission no arbiter ruled against before the claim ran out is verified
    (rejection policy ``release_unless_ruled``, or any policy without an arbiter)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgreementProposed(Event):
    worker_msat: int
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgreementAccepted(Event):
    """Both parties signed: the proposer's request and this one's. What follows is decided by
    ``agreements.agreement_outcome``."""

    worker_msat: int
    proposed_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgreementWithdrawn(Event):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositEvent(Event):
    """Base of the events of one deposit, named by its depositor's pubkey (see
    ``taskhold.tasks.deposits``)."""

    depositor: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositRequested(DepositEvent):
    role: str
    round: int
    amount_msat: int
    payment_hash_hex: str
    payment_request: str
    cltv_expiry_delta: int
    invoice_expires_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositLocked(DepositEvent):
    expiry_height: int
    amount_paid_msat: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositReturnOrdered(DepositEvent):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositForfeited(DepositEvent):
    beneficiary: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositPayoutRequested(DepositEvent):
    payout_request: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositPayoutFailed(DepositEvent):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositReturned(DepositEvent):
    """The deposit's hold invoice is cancelled: the depositor's HTLC went back (or never came)."""

    invoice_state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositSettledUnderLivePayout(DepositEvent):
    """The declared fallback for a forfeited deposit: its hold invoice was settled while the
    beneficiary's payout was still in flight at the guardian's deadline. Reveals its preimage;
    the beneficiary stays owed until ``DepositPaidOut``."""

    preimage_hex: str
    payout_payment_hash_hex: str
    blocks_left: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositPaidOut(DepositEvent):
    """The beneficiary was paid and the deposit's hold invoice settled. Reveals its preimage
    and the payout's (None in entries from before that proof)."""

    preimage_hex: str
    payout_payment_hash_hex: str
    payout_fee_msat: int
    payout_preimage_hex: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationFiled(Event):
    """A would-be worker applied to a task in claim mode ``apply``."""

    worker_pubkey: str
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitDecided(Event):
    """The amount is split: ``worker_msat`` to the worker, ``employer_msat`` back to the
    employer, ``fee_msat`` to the operator; the three make the task's amount. ``basis`` is
    ``ruling`` (an arbiter's) or ``agreement`` (signed by both parties)."""

    worker_msat: int
    employer_msat: int
    fee_msat: int
    basis: str
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerAssigned(Event):
    """The employer made one applicant the worker: a claim in their name."""

    worker_pubkey: str
    review_window_s: int | None = None
    details_sealed: dict[str, dict[str, str]] | None = None
    """As for ``TaskClaimed``: the details sealed for the assigned worker."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimReleased(Event):
    """The worker gave the task back before any proof; they may not take it again."""

    worker_pubkey: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimRevoked(Event):
    """The employer took the task back once the claim timeout passed without a proof; the
    worker may not take it again. The hold stays: nothing is refunded."""

    worker_pubkey: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundRequestUpdated(Event):
    """The employer's invoice for their share of a split (op ``refund-invoice``)."""

    refund_request: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundShareFailed(Event):
    """An attempt to pay the employer's share of a split failed."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitSharePaid(Event):
    """One share of a split landed (``share`` is ``worker`` or ``employer``); its payment's
    preimage is the payee's proof of payment. Each share is paid at most once."""

    share: str
    payment_hash_hex: str
    payment_preimage_hex: str
    fee_msat: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitCompleted(Event):
    """Both shares landed, then the hold was settled with ``preimage_hex`` (it names both
    shares' payments again, so the settlement entry stands alone)."""

    preimage_hex: str
    worker_payment_hash_hex: str
    employer_payment_hash_hex: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundEvent(Event):
    """Base of the events of a task's funding rounds (``taskhold.tasks.rounds``)."""

    funding_round: int
    payment_hash_hex: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewalOpened(RoundEvent):
    """The hold invoice of the next round, for the employer to pay before the current hold
    nears its end; its preimage is derived for ``funding_round``."""

    payment_request: str
    cltv_expiry_delta: int
    invoice_expires_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Renewed(RoundEvent):
    """The renewal's HTLC is held: the task is in ``funding_round`` now, held until the
    node's ``accepted_htlc_expiry_height``; the previous round's hold is cancelled next."""

    accepted_htlc_expiry_height: int
    amount_paid_msat: int
    previous_payment_hash_hex: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundCancelled(RoundEvent):
    """A round other than the current one was cancelled at the node: the previous round
    after a renewal, or a renewal the task no longer takes (unpaid, or decided meanwhile)."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SwapReported(Event):
    """A party reported facts of a Boltz swap it runs for the task (``tasks.swap_reports``):
    ``role`` is ``funding`` (the employer's submarine swap) or ``payout`` (the worker's
    reverse swap); the txids are the ones this report gives, each set once per swap."""

    role: str
    swap_id: str
    swap_api: str
    lockup_txid: str | None = None
    claim_txid: str | None = None
    refund_txid: str | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        TaskCreated,
        FundingRequested,
        FundingAccepted,
        FundingExpired,
        TaskClaimed,
        ProofSubmitted,
        ProofRefused,
        SubmissionApproved,
        ReviewWindowElapsed,
        SubmissionRejected,
        DisputeOpened,
        DisputeResolved,
        DisputeWindowElapsed,
        RefundOrdered,
        TaskCancelled,
        PayoutFailed,
        PayoutRequestUpdated,
        ReleaseCompleted,
        HoldSettledUnderLivePayout,
        RefundCompleted,
        DepositRequested,
        DepositLocked,
        DepositReturnOrdered,
        DepositForfeited,
        DepositPayoutRequested,
        DepositPayoutFailed,
        DepositReturned,
        DepositSettledUnderLivePayout,
        DepositPaidOut,
        ApplicationFiled,
        WorkerAssigned,
        ClaimReleased,
        ClaimRevoked,
        SplitDecided,
        RefundRequestUpdated,
        RefundShareFailed,
        SplitSharePaid,
        SplitCompleted,
        RejectionLapsed,
        AgreementProposed,
        AgreementAccepted,
        AgreementWithdrawn,
        RenewalOpened,
        Renewed,
        RoundCancelled,
        SwapReported,
    )
}


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-ready dict with the event's type under ``type``."""
    data = as_plain(event)
    data["type"] = type(event).__name__
    return data


def event_from_dict(data: dict[str, Any]) -> Event:
    """Inverse of :func:`event_to_dict`. Raises ``KeyError`` for an unknown type."""
    fields = dict(data)
    cls = EVENT_TYPES[fields.pop("type")]
    return cls(**fields)
