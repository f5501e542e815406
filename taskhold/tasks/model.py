"""Task states, roles and the task record the state machine folds events into."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FUNDED_STATES",
    "TERMINAL_STATES",
    "Deposit",
    "DepositState",
    "Role",
    "SwapRecord",
    "Task",
    "TaskState",
    "deposit_view",
    "swap_view",
]


class TaskState(enum.StrEnum):
    """Where a task is in its life. See DESIGN.md section 3."""

    DRAFT = "DRAFT"
    PENDING_FUNDING = "PENDING_FUNDING"
    FUNDED = "FUNDED"
    CLAIMED = "CLAIMED"
    SUBMITTED = "SUBMITTED"
    VERIFIED = "VERIFIED"
    DISPUTED = "DISPUTED"
    PAID = "PAID"
    REFUNDED = "REFUNDED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


TERMINAL_STATES = frozenset(
    {TaskState.PAID, TaskState.REFUNDED, TaskState.CANCELLED, TaskState.EXPIRED}
)
"""States nothing leaves."""

FUNDED_STATES = frozenset(
    {
        TaskState.FUNDED,
        TaskState.CLAIMED,
        TaskState.SUBMITTED,
        TaskState.VERIFIED,
        TaskState.DISPUTED,
    }
)
"""States in which the employer's HTLC is held by the escrow node."""


class DepositState(enum.StrEnum):
    """Where one deposit is. See ``taskhold.tasks.deposits``."""

    OPEN = "OPEN"
    """Invoice issued, not paid yet."""
    HELD = "HELD"
    """The depositor's HTLC is held: the deposit stands for them."""
    FORFEIT = "FORFEIT"
    """Its depositor abandoned the task: it goes to the beneficiary once they send an invoice."""
    RETURNING = "RETURNING"
    """To be cancelled at the node; the HTLC goes back to the depositor."""
    RETURNED = "RETURNED"
    PAID_OUT = "PAID_OUT"


@dataclass(frozen=True, slots=True, kw_only=True)
class Deposit:
    """One small hold invoice a depositor locks on a task instead of proof of work."""

    depositor: str
    role: str
    """``employer`` or ``worker``: the side the depositor takes on the task."""
    round: int
    amount_msat: int
    payment_hash_hex: str
    payment_request: str
    cltv_expiry_delta: int
    invoice_expires_at: int
    requested_at: int
    state: DepositState = DepositState.OPEN
    expiry_height: int | None = None
    beneficiary: str | None = None
    reason: str | None = None
    """Why it was forfeited or returned."""
    payout_request: str | None = None
    """The beneficiary's payout invoice (``payout_invoice`` on the API; the log's name)."""
    payout_failures: int = 0
    last_payout_failure: str | None = None
    payout_payment_hash_hex: str | None = None
    preimage_hex: str | None = None
    hold_settled_at: int | None = None
    """Set when the deposit was settled under a live payout (the declared fallback): it can
    then only end PAID_OUT."""
    closed_at: int | None = None

    @property
    def is_live(self) -> bool:
        """The node may still hold (or be asked to hold) its HTLC."""
        return self.state not in (DepositState.RETURNED, DepositState.PAID_OUT)

    @property
    def payout_may_be_owed(self) -> bool:
        """A forfeit, or a return ordered on a forfeit whose payout the node reported failed:
        its hold is settled, never returned, while that payout may land (the settle then
        supersedes the return, which can no longer happen)."""
        if self.state is DepositState.FORFEIT:
            return True
        return self.state is DepositState.RETURNING and self.payout_request is not None

    @property
    def pending_action(self) -> str | None:
        """The Lightning step the escrow engine owes this deposit, if any."""
        if self.state is DepositState.RETURNING:
            return "return"
        if self.state is DepositState.FORFEIT and self.payout_request is not None:
            return "payout"
        return None


def deposit_view(deposit: Deposit) -> dict[str, Any]:
    """One deposit as the API shows it (in a task and in the answer to a deposit request, which
    is kept for retries, so the action renders it); its preimage is set only once it was paid
    out, when it is public."""
    return {
        "depositor": deposit.depositor,
        "role": deposit.role,
        "round": deposit.round,
        "state": deposit.state.value,
        "amount_msat": deposit.amount_msat,
        "payment_request": deposit.payment_request,
        "payment_hash": deposit.payment_hash_hex,
        "cltv_expiry_delta": deposit.cltv_expiry_delta,
        "expires_at": deposit.invoice_expires_at,
        "accepted_htlc_expiry_height": deposit.expiry_height,
        "beneficiary": deposit.beneficiary,
        "reason": deposit.reason,
        "payout_invoice": deposit.payout_request,
        "payout_failures": deposit.payout_failures,
        "last_payout_failure": deposit.last_payout_failure,
        "payout_payment_hash": deposit.payout_payment_hash_hex,
        "preimage": deposit.preimage_hex,
        "hold_settled_at": deposit.hold_settled_at,
        "requested_at": deposit.requested_at,
        "closed_at": deposit.closed_at,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class SwapRecord:
    """One Boltz swap a party reported for the task (``taskhold.tasks.swap_reports``). Facts
    only: the swap's keys and preimage stay with the party that runs it."""

    role: str
    """``funding`` (the employer's submarine swap) or ``payout`` (the worker's reverse swap)."""
    swap_id: str
    swap_api: str
    """The Boltz API base URL the swap runs at: where anyone can look the swap up."""
    reporter: str
    lockup_txid: str | None = None
    claim_txid: str | None = None
    refund_txid: str | None = None
    first_reported_at: int
    last_reported_at: int


def swap_view(swap: SwapRecord) -> dict[str, Any]:
    """One swap record as the API shows it (public: the log carries the same facts)."""
    return {
        "role": swap.role,
        "swap_id": swap.swap_id,
        "swap_api": swap.swap_api,
        "reporter": swap.reporter,
        "lockup_txid": swap.lockup_txid,
        "claim_txid": swap.claim_txid,
        "refund_txid": swap.refund_txid,
        "first_reported_at": swap.first_reported_at,
        "last_reported_at": swap.last_reported_at,
    }


class Role(enum.StrEnum):
    """Who is acting, relative to one task."""

    EMPLOYER = "employer"
    WORKER = "worker"
    ARBITER = "arbiter"
    SYSTEM = "system"
    """taskhold itself: the escrow engine, the guardian, timers."""
    OTHER = "other"
    """Any other pubkey, e.g. a worker about to claim."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """The current state of one task: a pure fold of its events (see ``machine.evolve``).

    ``version`` counts applied events and is the concurrency guard in storage. ``preimage_hex``
    is set only by the settlement event, when the preimage becomes public.
    """

    task_id: str
    version: int
    state: TaskState
    employer_pubkey: str
    title: str
    description: str
    acceptance: dict[str, Any]
    amount_msat: int
    fee_msat: int
    deadline_at: int
    review_window_s: int
    dispute_window_s: int
    deadline_policy: str
    created_at: int
    updated_at: int
    funding_round: int = 0
    payment_hash_hex: str | None = None
    payment_request: str | None = None
    cltv_expiry_delta: int | None = None
    invoice_expires_at: int | None = None
    funded_at: int | None = None
    accepted_htlc_expiry_height: int | None = None
    worker_pubkey: str | None = None
    claimed_at: int | None = None
    proof: dict[str, Any] | None = None
    proof_event_id: str | None = None
    proofs_refused: int = 0
    """Proofs the automatic checks refused: the worker tried, so did not abandon the task."""
    payout_request: str | None = None
    """The worker's payout invoice (``payout_invoice`` on the API). The name is the public log's:
    events and state hashes carry it, so renaming it would change published entries."""
    submitted_at: int | None = None
    rejection_reason: str | None = None
    rejected_at: int | None = None
    verified_at: int | None = None
    verified_by: str | None = None
    dispute_opened_by: str | None = None
    dispute_opened_at: int | None = None
    dispute_reason: str | None = None
    dispute_resolution: str | None = None
    refund_ordered_reason: str | None = None
    payout_failures: int = 0
    last_payout_failure: str | None = None
    payout_payment_hash_hex: str | None = None
    payout_fee_msat: int | None = None
    preimage_hex: str | None = None
    hold_settled_at: int | None = None
    """Set when the hold was settled under a live payout (the declared fallback): the employer's
    money is taken, so the task can only end PAID."""
    closed_at: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    review_window_by_policy: bool = False
    deposit_pledged: bool = False
    deposits: tuple[Deposit, ...] = ()
    """Every deposit on the task, oldest first; a depositor's newest one is the one that counts."""
    claim_mode: str = "open"
    """``open``, ``apply`` or ``direct`` (see ``events.TaskCreated``)."""
    direct_worker: str | None = None
    claim_timeout_s: int | None = None
    applicants: tuple[str, ...] = ()
    """Keys that applied (claim mode ``apply``), in order; their notes are in the log."""
    barred_workers: tuple[str, ...] = ()
    """Keys that released or were revoked from this task: they never take it again."""
    split_worker_msat: int | None = None
    """Set when the task was split (an arbiter's ruling or both parties' agreement): the
    worker's share. The employer's is ``split_employer_msat``; with ``fee_msat`` they make the
    amount. The worker's share is paid to ``payout_request``, then the employer's to
    ``refund_request``, then the hold is settled (``taskhold.escrow.split``)."""
    split_employer_msat: int | None = None
    split_basis: str | None = None
    """``ruling`` (the arbiter's) or ``agreement`` (signed by both parties)."""
    refund_request: str | None = None
    """The employer's invoice for their share of a split (``refund_invoice`` on the API)."""
    refund_failures: int = 0
    last_refund_failure: str | None = None
    refund_payment_hash_hex: str | None = None
    """The hash the employer's share was paid with, once paid."""
    refund_fee_msat: int | None = None
    rejection_policy: str | None = None
    """Declared at creation: what a rejection nobody disputed or ruled on ends in."""
    agreement_proposed_by: str | None = None
    """The party whose agreement proposal stands (see ``taskhold.tasks.agreements``)."""
    agreement_worker_msat: int | None = None
    agreement_note: str | None = None
    agreement_proposed_at: int | None = None
    agreed_worker_msat: int | None = None
    """What both parties agreed the worker gets, once an agreement was accepted."""
    series_id: str | None = None
    """Set on a milestone: the task id of its series' first milestone (the create request's id).
    Each milestone is a task of its own (see ``taskhold.tasks.milestones``)."""
    milestone_index: int | None = None
    """0 for the first milestone, in the order the employer listed them."""
    milestone_count: int | None = None
    funding_mode: str | None = None
    """``upfront`` (every milestone's hold invoice issued at creation) or ``sequential`` (the
    next one's only once this one is PAID)."""

    @property
    def waits_for_previous_milestone(self) -> bool:
        """A sequential milestone after the first whose funding is not open yet: taskhold opens
        it once the one before is PAID, or cancels it once that one ends otherwise."""
        return (
            self.state is TaskState.DRAFT
            and self.funding_mode == "sequential"
            and bool(self.milestone_index)
        )

    @property
    def awaits_series_worker(self) -> bool:
        """A funded later milestone in claim mode ``series`` with no worker yet: taskhold assigns
        the worker of the series' first milestone."""
        return (
            self.state is TaskState.FUNDED
            and self.claim_mode == "series"
            and self.worker_pubkey is None
            and not self.refund_ordered
        )

    renewal_needed: bool = False
    """The task outlasts one hold: it is renewed round after round (``tasks.rounds``)."""
    renewal_round: int | None = None
    """The open renewal, if any: the round whose hold invoice the employer is asked to pay."""
    last_renewal_round: int = 0
    """The highest round a renewal was opened for: a cancelled renewal's round (its hash) is
    never asked for again, so the next renewal takes the round after it."""
    renewal_payment_hash_hex: str | None = None
    renewal_payment_request: str | None = None
    renewal_cltv_expiry_delta: int | None = None
    renewal_expires_at: int | None = None
    retiring_round: int | None = None
    retiring_payment_hash_hex: str | None = None
    """The previous round's hold after a renewal, until the engine cancelled it."""
    visibility: str = "public"
    """``public`` (details in the clear) or ``private`` (``description`` is empty; the details
    are sealed, and ``details_hash`` commits to them)."""
    details_hash: str | None = None
    details_sealed: dict[str, dict[str, str]] = field(default_factory=dict)
    """Every sealed copy of a private task's details: recipient pubkey -> ``{"sender",
    "ciphertext"}``. Ciphertexts only: taskhold never keeps the plaintext."""
    proof_hash: str | None = None
    """The current proof's commitment when it was sealed (``proof`` is then empty)."""
    proof_sealed: dict[str, dict[str, str]] = field(default_factory=dict)
    swaps: tuple[SwapRecord, ...] = ()
    """Every Boltz swap a party reported for the task, in the order first reported."""

    def deposit_of(self, pubkey: str) -> Deposit | None:
        """``pubkey``'s newest deposit on this task."""
        for deposit in reversed(self.deposits):
            if deposit.depositor == pubkey:
                return deposit
        return None

    def deposit_by_hash(self, payment_hash_hex: str) -> Deposit | None:
        for deposit in self.deposits:
            if deposit.payment_hash_hex == payment_hash_hex:
                return deposit
        return None

    def swap_of(self, role: str, swap_id: str) -> SwapRecord | None:
        for swap in self.swaps:
            if swap.role == role and swap.swap_id == swap_id:
                return swap
        return None

    @property
    def next_round(self) -> int:
        """The round the next renewal opens: past the current one and every one tried."""
        return max(self.funding_round, self.last_renewal_round) + 1

    @property
    def payout_msat(self) -> int:
        """What the worker receives: the reward minus the operator's declared fee, or the
        worker's share of a split."""
        if self.split_worker_msat is not None:
            return self.split_worker_msat
        return self.amount_msat - self.fee_msat

    @property
    def is_split(self) -> bool:
        """The outcome is a split: two shares are paid before the hold is settled."""
        return self.split_worker_msat is not None

    @property
    def worker_share_paid(self) -> bool:
        """A split whose worker share is recorded paid: it can no longer be refunded."""
        return self.is_split and self.payout_payment_hash_hex is not None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def refund_ordered(self) -> bool:
        """A refund (or pre-funding cancel) was decided; only its completion may follow."""
        return self.refund_ordered_reason is not None and not self.is_terminal

    @property
    def release_pending(self) -> bool:
        """The worker is owed the payout: pay, then settle."""
        return self.state is TaskState.VERIFIED and not self.refund_ordered

    def role_of(self, actor: str, arbiters: frozenset[str]) -> Role:
        """The role ``actor`` (a hex pubkey or ``"system"``) plays on this task."""
        if actor == SYSTEM_ACTOR:
            return Role.SYSTEM
        if actor == self.employer_pubkey:
            return Role.EMPLOYER
        if self.worker_pubkey is not None and actor == self.worker_pubkey:
            return Role.WORKER
        if actor in arbiters:
            return Role.ARBITER
        return Role.OTHER


SYSTEM_ACTOR = "system"
"""The actor name taskhold's own components use."""
