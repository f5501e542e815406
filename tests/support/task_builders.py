"""Shared builders for the task state machine tests: actors, commands, tasks in every state.

Tasks are built only through ``decide`` and ``evolve``, never by editing fields, so a task "in
state X" is always one the machine itself can reach.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from taskhold.tasks import SYSTEM_ACTOR, Task, TaskState, decide, evolve
from taskhold.tasks import commands as c
from taskhold.tasks import events as e

__all__ = [
    "AMOUNT_MSAT",
    "ARBITER",
    "ARBITERS",
    "DEADLINE",
    "DISPUTE_WINDOW",
    "EMPLOYER",
    "PAYMENT_HASH",
    "PREIMAGE",
    "REVIEW_WINDOW",
    "STRANGER",
    "SYSTEM",
    "T0",
    "WORKER",
    "WORKER2",
    "apply",
    "create_command",
    "drive_to_settlement",
    "sample_command",
    "task_in",
]

EMPLOYER = "e" * 64
WORKER = "a" * 64
WORKER2 = "b" * 64
ARBITER = "c" * 64
STRANGER = "d" * 64
SYSTEM = SYSTEM_ACTOR
ARBITERS = frozenset({ARBITER})

T0 = 1_700_000_000
DEADLINE = T0 + 10_000
REVIEW_WINDOW = 3_600
DISPUTE_WINDOW = 7_200
AMOUNT_MSAT = 100_000
PREIMAGE = "22" * 32
PAYMENT_HASH = hashlib.sha256(bytes.fromhex(PREIMAGE)).hexdigest()


def create_command(
    *,
    at: int = T0,
    deadline_at: int = DEADLINE,
    review_window_s: int = REVIEW_WINDOW,
    dispute_window_s: int = DISPUTE_WINDOW,
    claim_mode: str = "open",
    direct_worker: str | None = None,
    claim_timeout_s: int | None = None,
    rejection_policy: str | None = None,
) -> c.CreateTask:
    return c.CreateTask(
        actor=EMPLOYER,
        at=at,
        task_id="task-1",
        title="Translate a README",
        description="English to German",
        acceptance={"kind": "manual"},
        amount_msat=AMOUNT_MSAT,
        fee_msat=1_000,
        deadline_at=deadline_at,
        review_window_s=review_window_s,
        dispute_window_s=dispute_window_s,
        deadline_policy="refund_unless_verified",
        claim_mode=claim_mode,
        direct_worker=direct_worker,
        claim_timeout_s=claim_timeout_s,
        rejection_policy=rejection_policy,
    )


def apply(task: Task | None, command: c.Command) -> tuple[Task, list[e.Event]]:
    """Decide and fold; the task must exist afterwards."""
    events = decide(task, command, ARBITERS)
    for event in events:
        task = evolve(task, event)
    assert task is not None
    return task, events


def sample_command(cls: type[c.Command], actor: str, at: int) -> c.Command:
    """One well-formed command of type ``cls``: reasons non-empty, amounts sufficient."""
    match cls:
        case c.RequestFunding:
            return c.RequestFunding(
                actor=actor,
                at=at,
                funding_round=1,
                payment_hash_hex=PAYMENT_HASH,
                payment_request="lnbcrt1escrow",
                cltv_expiry_delta=400,
                invoice_expires_at=at + 600,
            )
        case c.ConfirmFunding:
            return c.ConfirmFunding(
                actor=actor, at=at, accepted_htlc_expiry_height=900, amount_paid_msat=AMOUNT_MSAT
            )
        case c.ExpireFunding:
            return c.ExpireFunding(actor=actor, at=at, reason="invoice expired")
        case c.Claim:
            return c.Claim(actor=actor, at=at)
        case c.SubmitProof:
            return c.SubmitProof(
                actor=actor,
                at=at,
                proof_event_id="f" * 64,
                proof={"url": "https://example.org/pr/1"},
                payout_request="lnbcrt1worker",
            )
        case c.RefuseProof:
            return c.RefuseProof(
                actor=actor, at=at, proof_event_id="e" * 64, problems=["field 'url' is required"]
            )
        case c.Approve:
            return c.Approve(actor=actor, at=at)
        case c.Reject:
            return c.Reject(actor=actor, at=at, reason="the German is machine-translated")
        case c.OpenDispute:
            return c.OpenDispute(actor=actor, at=at, reason="we disagree")
        case c.ResolveDispute:
            return c.ResolveDispute(actor=actor, at=at, winner="employer", note="no proof")
        case c.Cancel:
            return c.Cancel(actor=actor, at=at, reason="changed my mind")
        case c.UpdatePayoutRequest:
            return c.UpdatePayoutRequest(actor=actor, at=at, payout_request="lnbcrt1worker2")
        case c.Tick:
            return c.Tick(actor=actor, at=at)
        case c.HoldExpiring:
            return c.HoldExpiring(actor=actor, at=at, blocks_left=20)
        case c.RecordPayoutFailure:
            return c.RecordPayoutFailure(actor=actor, at=at, reason="no route")
        case c.CompleteRelease:
            return c.CompleteRelease(
                actor=actor,
                at=at,
                preimage_hex=PREIMAGE,
                payout_payment_hash_hex="33" * 32,
                payout_fee_msat=12,
            )
        case c.SettleUnderLivePayout:
            return c.SettleUnderLivePayout(
                actor=actor,
                at=at,
                preimage_hex=PREIMAGE,
                payout_payment_hash_hex="33" * 32,
                blocks_left=18,
            )
        case c.CompleteRefund:
            return c.CompleteRefund(actor=actor, at=at, invoice_state="CANCELED")
        case c.Apply:
            return c.Apply(actor=actor, at=at, note="I have translated three READMEs")
        case c.Assign:
            return c.Assign(actor=actor, at=at, worker_pubkey=WORKER)
        case c.Unclaim:
            return c.Unclaim(actor=actor, at=at)
        case c.RevokeClaim:
            return c.RevokeClaim(actor=actor, at=at, reason="no proof in time")
        case c.UpdateRefundRequest:
            return c.UpdateRefundRequest(actor=actor, at=at, refund_request="lnbcrt1employer")
        case c.RecordRefundShareFailure:
            return c.RecordRefundShareFailure(actor=actor, at=at, reason="no route")
        case c.RecordSharePaid:
            return c.RecordSharePaid(
                actor=actor,
                at=at,
                share="worker",
                payment_hash_hex="33" * 32,
                payment_preimage_hex="44" * 32,
                fee_msat=3,
            )
        case c.CompleteSplit:
            return c.CompleteSplit(actor=actor, at=at, preimage_hex=PREIMAGE)
        case c.ProposeAgreement:
            return c.ProposeAgreement(actor=actor, at=at, worker_msat=0, note="let us part")
        case c.AcceptAgreement:
            return c.AcceptAgreement(actor=actor, at=at, worker_msat=0)
        case c.WithdrawAgreement:
            return c.WithdrawAgreement(actor=actor, at=at)
        case c.OpenMilestone:
            return c.OpenMilestone(
                actor=actor,
                at=at,
                funding_round=1,
                payment_hash_hex=PAYMENT_HASH,
                payment_request="lnbcrt1escrow",
                cltv_expiry_delta=400,
                invoice_expires_at=at + 600,
            )
        case c.CancelMilestone:
            return c.CancelMilestone(actor=actor, at=at, reason="milestone 1 was refunded")
        case c.AssignSeriesWorker:
            return c.AssignSeriesWorker(actor=actor, at=at, worker_pubkey=WORKER)
    raise AssertionError(f"no sample for {cls.__name__}")


_PATHS: dict[TaskState, list[tuple[type[c.Command], str]]] = {
    TaskState.DRAFT: [],
    TaskState.PENDING_FUNDING: [(c.RequestFunding, EMPLOYER)],
    TaskState.FUNDED: [(c.RequestFunding, EMPLOYER), (c.ConfirmFunding, SYSTEM)],
    TaskState.CLAIMED: [
        (c.RequestFunding, EMPLOYER),
        (c.ConfirmFunding, SYSTEM),
        (c.Claim, WORKER),
    ],
    TaskState.SUBMITTED: [
        (c.RequestFunding, EMPLOYER),
        (c.ConfirmFunding, SYSTEM),
        (c.Claim, WORKER),
        (c.SubmitProof, WORKER),
    ],
    TaskState.VERIFIED: [
        (c.RequestFunding, EMPLOYER),
        (c.ConfirmFunding, SYSTEM),
        (c.Claim, WORKER),
        (c.SubmitProof, WORKER),
        (c.Approve, EMPLOYER),
    ],
    TaskState.DISPUTED: [
        (c.RequestFunding, EMPLOYER),
        (c.ConfirmFunding, SYSTEM),
        (c.Claim, WORKER),
        (c.SubmitProof, WORKER),
        (c.OpenDispute, EMPLOYER),
    ],
    TaskState.PAID: [
        (c.RequestFunding, EMPLOYER),
        (c.ConfirmFunding, SYSTEM),
        (c.Claim, WORKER),
        (c.SubmitProof, WORKER),
        (c.Approve, EMPLOYER),
        (c.CompleteRelease, SYSTEM),
    ],
    TaskState.REFUNDED: [
        (c.RequestFunding, EMPLOYER),
        (c.ConfirmFunding, SYSTEM),
        (c.Cancel, EMPLOYER),
        (c.CompleteRefund, SYSTEM),
    ],
    TaskState.CANCELLED: [(c.Cancel, EMPLOYER)],
    TaskState.EXPIRED: [(c.RequestFunding, EMPLOYER), (c.ExpireFunding, SYSTEM)],
}


def task_in(state: TaskState, *, extra: Iterable[tuple[type[c.Command], str]] = ()) -> Task:
    """A task the machine drove into ``state`` (then through ``extra``), one second per step."""
    task, _ = apply(None, create_command())
    at = T0
    for cls, actor in [*_PATHS[state], *extra]:
        at += 1
        task, _ = apply(task, sample_command(cls, actor, at))
    if not extra:
        assert task.state is state
    return task


def _finish_split(task: Task, at: int) -> Task:
    """A split whose worker share landed is finished by paying the employer's share (owed,
    even if late), then completing it."""
    for share, byte in (("worker", "55"), ("employer", "77")):
        pay = c.RecordSharePaid(
            actor=SYSTEM,
            at=at,
            share=share,
            payment_hash_hex=byte * 32,
            payment_preimage_hex="66" * 32,
            fee_msat=0,
        )
        task, _ = apply(task, pay)
    task, _ = apply(task, c.CompleteSplit(actor=SYSTEM, at=at, preimage_hex=PREIMAGE))
    return task


def drive_to_settlement(task: Task, at: int, *, payout_fails: bool = False) -> Task:
    """The guardian's path: only SYSTEM commands take a funded task to PAID or REFUNDED.

    ``HoldExpiring`` applies the deadline policy; a verified task is released unless its payout
    fails, in which case one recorded failure and a second ``HoldExpiring`` order the refund.
    """
    task, _ = apply(task, sample_command(c.HoldExpiring, SYSTEM, at))
    if task.release_pending and payout_fails:
        task, _ = apply(task, sample_command(c.RecordPayoutFailure, SYSTEM, at))
        task, _ = apply(task, sample_command(c.HoldExpiring, SYSTEM, at))
    if task.release_pending and task.is_split:
        task = _finish_split(task, at)
    elif task.release_pending:
        task, _ = apply(task, sample_command(c.CompleteRelease, SYSTEM, at))
    elif task.refund_ordered:
        task, _ = apply(task, sample_command(c.CompleteRefund, SYSTEM, at))
    return task
