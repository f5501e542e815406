"""Example-based tests of every rule in ``TRANSITIONS``, the timers, the replays and the reducer."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from support.task_builders import (
    ARBITER,
    ARBITERS,
    DEADLINE,
    DISPUTE_WINDOW,
    EMPLOYER,
    PAYMENT_HASH,
    PREIMAGE,
    REVIEW_WINDOW,
    STRANGER,
    SYSTEM,
    T0,
    WORKER,
    WORKER2,
    apply,
    create_command,
    sample_command,
    task_in,
)

from taskhold.errors import Conflict, Forbidden, Invalid, Refusal
from taskhold.tasks import TRANSITIONS, Role, Task, TaskState, decide, evolve, machine, replay
from taskhold.tasks import commands as c
from taskhold.tasks import events as e
from taskhold.tasks.model import FUNDED_STATES, TERMINAL_STATES

S = TaskState
ACTORS = (EMPLOYER, WORKER, WORKER2, ARBITER, STRANGER, SYSTEM)
COMMAND_TYPES = [
    cls
    for name in c.__all__
    if isinstance(cls := getattr(c, name), type)
    and issubclass(cls, c.Command)
    and cls not in (c.Command, c.CreateTask)
    and not issubclass(cls, c.DepositCommand)  # decided by tasks.deposits: test_deposit_rules.py
    and not issubclass(cls, c.RoundCommand)  # decided by tasks.rounds: test_round_rules.py
    and not issubclass(cls, c.SwapCommand)  # by tasks.swap_reports: test_swap_report_rules.py
]
EVENT_TYPES = [
    cls
    for name in e.__all__
    if isinstance(cls := getattr(e, name), type)
    and issubclass(cls, e.Event)
    and cls not in (e.Event, e.DepositEvent, e.RoundEvent)
]
OPEN_STATES = sorted(frozenset(TaskState) - TERMINAL_STATES)


def refusal(task: Task | None, command: c.Command) -> Refusal:
    with pytest.raises(Refusal) as caught:
        decide(task, command, ARBITERS)
    return caught.value


def at_after(task: Task) -> int:
    return task.updated_at + 1


# --- creation ------------------------------------------------------------------------------


def test_create_makes_a_draft_owned_by_its_signer() -> None:
    task, events = apply(None, create_command())
    assert [type(ev) for ev in events] == [e.TaskCreated]
    assert task.state is S.DRAFT
    assert task.employer_pubkey == EMPLOYER
    assert task.version == 1
    assert task.payout_msat == 99_000


@pytest.mark.parametrize(
    ("change", "kind", "code"),
    [
        ({"actor": SYSTEM}, Forbidden, "wrong_role"),
        ({"amount_msat": 0}, Invalid, "invalid_value"),
        ({"fee_msat": -1}, Invalid, "invalid_value"),
        ({"fee_msat": 100_000}, Invalid, "invalid_value"),
        ({"deadline_at": T0}, Invalid, "deadline_in_past"),
        ({"review_window_s": -1}, Invalid, "invalid_value"),
        ({"dispute_window_s": -1}, Invalid, "invalid_value"),
        ({"deadline_policy": "pay_always"}, Invalid, "invalid_value"),
    ],
)
def test_create_refuses_bad_terms(change: dict[str, Any], kind: type[Refusal], code: str) -> None:
    got = refusal(None, dataclasses.replace(create_command(), **change))
    assert type(got) is kind
    assert got.code == code


def test_create_twice_and_commands_before_create_are_refused() -> None:
    task = task_in(S.DRAFT)
    assert refusal(task, create_command()).code == "task_exists"
    assert refusal(None, sample_command(c.Tick, SYSTEM, T0)).code == "no_such_task"


# --- each rule, allowed state and role -----------------------------------------------------


def test_request_funding() -> None:
    draft = task_in(S.DRAFT)
    task, events = apply(draft, sample_command(c.RequestFunding, EMPLOYER, T0 + 1))
    assert [type(ev) for ev in events] == [e.FundingRequested]
    assert task.state is S.PENDING_FUNDING
    assert task.payment_hash_hex == PAYMENT_HASH
    assert task.funding_round == 1
    assert task.invoice_expires_at == T0 + 601


def test_confirm_funding() -> None:
    pending = task_in(S.PENDING_FUNDING)
    task, events = apply(pending, sample_command(c.ConfirmFunding, SYSTEM, T0 + 9))
    assert [type(ev) for ev in events] == [e.FundingAccepted]
    assert task.state is S.FUNDED
    assert task.funded_at == T0 + 9
    assert task.accepted_htlc_expiry_height == 900


def test_confirm_funding_refuses_an_underpaid_htlc() -> None:
    pending = task_in(S.PENDING_FUNDING)
    command = c.ConfirmFunding(
        actor=SYSTEM, at=T0 + 9, accepted_htlc_expiry_height=900, amount_paid_msat=99_999
    )
    got = refusal(pending, command)
    assert isinstance(got, Invalid)
    assert got.code == "underpaid"


def test_expire_funding() -> None:
    pending = task_in(S.PENDING_FUNDING)
    task, events = apply(pending, sample_command(c.ExpireFunding, SYSTEM, T0 + 700))
    assert [type(ev) for ev in events] == [e.FundingExpired]
    assert task.state is S.EXPIRED
    assert task.closed_at == T0 + 700


def test_claim_by_any_other_key() -> None:
    funded = task_in(S.FUNDED)
    task, events = apply(funded, sample_command(c.Claim, WORKER2, T0 + 9))
    assert events == [e.TaskClaimed(at=T0 + 9, actor=WORKER2, worker_pubkey=WORKER2)]
    assert task.state is S.CLAIMED
    assert task.worker_pubkey == WORKER2
    assert task.claimed_at == T0 + 9
    assert task.role_of(WORKER2, ARBITERS) is Role.WORKER


@pytest.mark.parametrize("actor", [EMPLOYER, ARBITER, SYSTEM])
def test_claim_by_a_party_to_the_task_is_forbidden(actor: str) -> None:
    got = refusal(task_in(S.FUNDED), sample_command(c.Claim, actor, T0 + 9))
    assert isinstance(got, Forbidden)
    assert got.code == "wrong_role"


def test_claim_at_the_deadline_is_refused() -> None:
    got = refusal(task_in(S.FUNDED), sample_command(c.Claim, WORKER, DEADLINE))
    assert isinstance(got, Conflict)
    assert got.code == "deadline_passed"


def test_submit_proof() -> None:
    claimed = task_in(S.CLAIMED)
    task, events = apply(claimed, sample_command(c.SubmitProof, WORKER, DEADLINE))
    assert [type(ev) for ev in events] == [e.ProofSubmitted]
    assert task.state is S.SUBMITTED
    assert task.proof == {"url": "https://example.org/pr/1"}
    assert task.proof_event_id == "f" * 64
    assert task.payout_request == "lnbcrt1worker"
    assert task.submitted_at == DEADLINE


def test_submit_proof_after_the_deadline_is_refused() -> None:
    got = refusal(task_in(S.CLAIMED), sample_command(c.SubmitProof, WORKER, DEADLINE + 1))
    assert got.code == "deadline_passed"


@pytest.mark.parametrize("actor", [WORKER2, EMPLOYER, STRANGER, ARBITER, SYSTEM])
def test_only_the_claimed_worker_submits(actor: str) -> None:
    got = refusal(task_in(S.CLAIMED), sample_command(c.SubmitProof, actor, T0 + 9))
    assert isinstance(got, Forbidden)
    assert got.code == "wrong_role"


def test_approve() -> None:
    task, events = apply(task_in(S.SUBMITTED), sample_command(c.Approve, EMPLOYER, T0 + 9))
    assert events == [e.SubmissionApproved(at=T0 + 9, actor=EMPLOYER)]
    assert task.state is S.VERIFIED
    assert task.verified_at == T0 + 9
    assert task.verified_by == EMPLOYER
    assert task.release_pending


def test_reject_returns_the_task_to_the_worker() -> None:
    task, events = apply(task_in(S.SUBMITTED), sample_command(c.Reject, EMPLOYER, T0 + 9))
    assert [type(ev) for ev in events] == [e.SubmissionRejected]
    assert task.state is S.CLAIMED
    assert task.rejection_reason == "the German is machine-translated"
    assert task.rejected_at == T0 + 9
    resubmitted, _ = apply(task, sample_command(c.SubmitProof, WORKER, T0 + 10))
    assert resubmitted.state is S.SUBMITTED
    assert resubmitted.rejected_at is None
    assert resubmitted.rejection_reason is None


@pytest.mark.parametrize(
    "command",
    [
        c.Reject(actor=EMPLOYER, at=T0 + 9, reason="  "),
        c.OpenDispute(actor=EMPLOYER, at=T0 + 9, reason=""),
        c.OpenDispute(actor=WORKER, at=T0 + 9, reason="\n"),
    ],
)
def test_reject_and_dispute_need_a_reason(command: c.Command) -> None:
    got = refusal(task_in(S.SUBMITTED), command)
    assert isinstance(got, Invalid)
    assert got.code == "reason_required"


def test_the_worker_disputes_a_rejection_and_nothing_else() -> None:
    """A claim with nothing rejected has nothing for the worker to dispute (its only end
    would be a refund, a squatter's way to kill the task); a rejection does."""
    got = refusal(task_in(S.CLAIMED), sample_command(c.OpenDispute, WORKER, T0 + 9))
    assert isinstance(got, Conflict) and got.code == "nothing_to_dispute"
    rejected = task_in(S.SUBMITTED, extra=[(c.Reject, EMPLOYER)])
    task, _ = apply(rejected, sample_command(c.OpenDispute, WORKER, rejected.updated_at + 1))
    assert task.state is S.DISPUTED and task.dispute_opened_by == WORKER


@pytest.mark.parametrize(("state", "actor"), [(S.CLAIMED, EMPLOYER), (S.SUBMITTED, EMPLOYER)])
def test_either_party_opens_a_dispute(state: TaskState, actor: str) -> None:
    """The employer (where an arbiter is configured); the worker disputes a rejection (above),
    not a submission under review (test_gamed_deals.py)."""
    task, events = apply(task_in(state), sample_command(c.OpenDispute, actor, T0 + 9))
    assert events == [e.DisputeOpened(at=T0 + 9, actor=actor, reason="we disagree")]
    assert task.state is S.DISPUTED
    assert task.dispute_opened_by == actor
    assert task.dispute_reason == "we disagree"


def test_dispute_window_closes_when_the_deadline_timer_would_refund() -> None:
    rejected = task_in(S.SUBMITTED, extra=[(c.Reject, EMPLOYER)])
    assert rejected.rejected_at is not None
    closes_at = max(DEADLINE + 1, rejected.rejected_at + DISPUTE_WINDOW)
    apply(rejected, sample_command(c.OpenDispute, WORKER, closes_at - 1))
    got = refusal(rejected, sample_command(c.OpenDispute, WORKER, closes_at))
    assert got.code == "dispute_window_closed"
    # the same instant, the timer orders the refund: one rule, no window in between
    _, events = apply(rejected, c.Tick(actor="system", at=closes_at))
    assert [type(ev) for ev in events] == [e.RefundOrdered]
    _, events = apply(rejected, c.Tick(actor="system", at=closes_at - 1))
    assert events == []


def test_arbiter_awards_the_worker() -> None:
    disputed = task_in(S.DISPUTED)
    command = c.ResolveDispute(actor=ARBITER, at=T0 + 9, winner="worker", note="proof is fine")
    task, events = apply(disputed, command)
    assert [type(ev) for ev in events] == [e.DisputeResolved]
    assert task.state is S.VERIFIED
    assert task.verified_by == ARBITER
    assert task.dispute_resolution == "proof is fine"
    assert task.release_pending


def test_arbiter_awards_the_employer() -> None:
    disputed = task_in(S.DISPUTED)
    command = c.ResolveDispute(actor=ARBITER, at=T0 + 9, winner="employer", note="off topic")
    task, _ = apply(disputed, command)
    assert task.state is S.DISPUTED
    assert task.refund_ordered
    assert task.refund_ordered_reason == "dispute lost by worker"
    refunded, _ = apply(task, sample_command(c.CompleteRefund, SYSTEM, T0 + 10))
    assert refunded.state is S.REFUNDED


def test_arbiter_cannot_award_a_worker_who_never_submitted_proof() -> None:
    disputed = task_in(S.CLAIMED, extra=[(c.OpenDispute, EMPLOYER)])
    assert disputed.state is S.DISPUTED
    assert disputed.proof is None
    command = c.ResolveDispute(actor=ARBITER, at=T0 + 9, winner="worker", note="trust me")
    got = refusal(disputed, command)
    assert isinstance(got, Conflict)
    assert got.code == "no_proof"
    apply(disputed, dataclasses.replace(command, winner="employer"))


def test_arbiter_may_overrule_a_rejection() -> None:
    """The dispute path DESIGN.md opens for a worker who objects to a rejection."""
    disputed = task_in(S.SUBMITTED, extra=[(c.Reject, EMPLOYER), (c.OpenDispute, WORKER)])
    command = c.ResolveDispute(actor=ARBITER, at=T0 + 9, winner="worker", note="it is fine")
    task, _ = apply(disputed, command)
    assert task.state is S.VERIFIED


@pytest.mark.parametrize(
    ("winner", "note", "code"),
    [("nobody", "x", "invalid_winner"), ("employer", " ", "reason_required")],
)
def test_resolution_needs_a_winner_and_a_note(winner: str, note: str, code: str) -> None:
    command = c.ResolveDispute(actor=ARBITER, at=T0 + 9, winner=winner, note=note)
    got = refusal(task_in(S.DISPUTED), command)
    assert isinstance(got, Invalid)
    assert got.code == code


@pytest.mark.parametrize("actor", [EMPLOYER, WORKER, STRANGER, SYSTEM])
def test_only_an_arbiter_resolves(actor: str) -> None:
    command = c.ResolveDispute(actor=actor, at=T0 + 9, winner="employer", note="n")
    got = refusal(task_in(S.DISPUTED), command)
    assert isinstance(got, Forbidden)
    assert got.code == "wrong_role"


def test_cancel_a_draft() -> None:
    task, events = apply(task_in(S.DRAFT), c.Cancel(actor=EMPLOYER, at=T0 + 1, reason=""))
    assert events == [e.TaskCancelled(at=T0 + 1, actor=EMPLOYER)]
    assert task.state is S.CANCELLED
    assert task.closed_at == T0 + 1


@pytest.mark.parametrize(
    ("state", "final"), [(S.PENDING_FUNDING, S.CANCELLED), (S.FUNDED, S.REFUNDED)]
)
def test_cancel_once_an_invoice_exists_orders_a_refund(state: TaskState, final: TaskState) -> None:
    task, events = apply(task_in(state), c.Cancel(actor=EMPLOYER, at=T0 + 9, reason=" "))
    assert events == [
        e.RefundOrdered(at=T0 + 9, actor=EMPLOYER, reason="cancelled by the employer")
    ]
    assert task.state is state
    assert task.refund_ordered
    done, events = apply(task, sample_command(c.CompleteRefund, SYSTEM, T0 + 10))
    assert events == [e.RefundCompleted(at=T0 + 10, actor=SYSTEM, invoice_state="CANCELED")]
    assert done.state is final
    assert done.closed_at == T0 + 10


@pytest.mark.parametrize("state", [S.SUBMITTED, S.VERIFIED])
def test_update_payout_request(state: TaskState) -> None:
    task, events = apply(task_in(state), sample_command(c.UpdatePayoutRequest, WORKER, T0 + 9))
    assert events == [
        e.PayoutRequestUpdated(at=T0 + 9, actor=WORKER, payout_request="lnbcrt1worker2")
    ]
    assert task.payout_request == "lnbcrt1worker2"
    assert task.state is state


def test_update_payout_request_needs_a_proof_first() -> None:
    got = refusal(task_in(S.CLAIMED), sample_command(c.UpdatePayoutRequest, WORKER, T0 + 9))
    assert got.code == "no_proof"
    rejected = task_in(S.SUBMITTED, extra=[(c.Reject, EMPLOYER)])
    task, _ = apply(rejected, sample_command(c.UpdatePayoutRequest, WORKER, T0 + 9))
    assert task.state is S.CLAIMED


def test_update_payout_request_resets_failures() -> None:
    failed = task_in(S.VERIFIED, extra=[(c.RecordPayoutFailure, SYSTEM)])
    assert failed.payout_failures == 1
    task, _ = apply(failed, sample_command(c.UpdatePayoutRequest, WORKER, T0 + 9))
    assert task.payout_failures == 0


def test_record_payout_failure() -> None:
    task, events = apply(task_in(S.VERIFIED), sample_command(c.RecordPayoutFailure, SYSTEM, T0 + 9))
    assert events == [e.PayoutFailed(at=T0 + 9, actor=SYSTEM, reason="no route")]
    assert task.payout_failures == 1
    assert task.last_payout_failure == "no route"
    assert task.release_pending


def test_complete_release() -> None:
    task, events = apply(task_in(S.VERIFIED), sample_command(c.CompleteRelease, SYSTEM, T0 + 9))
    assert [type(ev) for ev in events] == [e.ReleaseCompleted]
    assert task.state is S.PAID
    assert task.preimage_hex == PREIMAGE
    assert task.payout_payment_hash_hex == "33" * 32
    assert task.payout_fee_msat == 12
    assert task.closed_at == T0 + 9


@pytest.mark.parametrize("state", OPEN_STATES)
def test_complete_refund_needs_an_ordered_refund(state: TaskState) -> None:
    got = refusal(task_in(state), sample_command(c.CompleteRefund, SYSTEM, T0 + 99))
    assert isinstance(got, Conflict)
    assert got.code == "no_refund_ordered"


# --- the table as a matrix: wrong role, wrong state ------------------------------------------


def _matrix(want_allowed_state: bool) -> list[tuple[type[c.Command], TaskState]]:
    return [
        (cls, state)
        for cls in COMMAND_TYPES
        for state in OPEN_STATES
        if (state in TRANSITIONS[cls].states) is want_allowed_state
    ]


@pytest.mark.parametrize(("cls", "state"), _matrix(want_allowed_state=True))
def test_wrong_role_is_forbidden(cls: type[c.Command], state: TaskState) -> None:
    task = task_in(state)
    rule = TRANSITIONS[cls]
    outsiders = [a for a in ACTORS if task.role_of(a, ARBITERS) not in rule.roles]
    assert outsiders
    for actor in outsiders:
        got = refusal(task, sample_command(cls, actor, at_after(task)))
        assert isinstance(got, Forbidden), (actor, got)
        assert got.code == "wrong_role"


@pytest.mark.parametrize(("cls", "state"), _matrix(want_allowed_state=False))
def test_wrong_state_is_a_conflict(cls: type[c.Command], state: TaskState) -> None:
    task = task_in(state)
    rule = TRANSITIONS[cls]
    insiders = [a for a in ACTORS if task.role_of(a, ARBITERS) in rule.roles]
    if not insiders:  # e.g. no worker yet: the role check answers first
        for actor in ACTORS:
            assert refusal(task, sample_command(cls, actor, at_after(task))).code == "wrong_role"
    for actor in insiders:
        command = sample_command(cls, actor, at_after(task))
        if cls is c.ConfirmFunding and task.funded_at is not None:
            assert decide(task, command, ARBITERS) == []  # a replay, see test_replays
            continue
        got = refusal(task, command)
        assert isinstance(got, Conflict), (actor, got)
        assert got.code == "wrong_state"


# --- terminal tasks, refunds under way, replays --------------------------------------------

_REPLAYS_ON: dict[type[c.Command], frozenset[TaskState]] = {
    c.ConfirmFunding: TERMINAL_STATES,
    c.Tick: TERMINAL_STATES,
    c.HoldExpiring: TERMINAL_STATES,
    c.CompleteRelease: frozenset({S.PAID}),
    c.SettleUnderLivePayout: frozenset({S.PAID}),
    c.CompleteRefund: frozenset({S.REFUNDED, S.CANCELLED, S.EXPIRED}),
    c.ExpireFunding: frozenset({S.EXPIRED}),
    c.CompleteSplit: frozenset({S.PAID}),
    c.RecordSharePaid: frozenset({S.PAID}),
}
"""System commands that may arrive again after a terminal state; they decide to nothing."""


@pytest.mark.parametrize("state", sorted(TERMINAL_STATES))
@pytest.mark.parametrize("cls", COMMAND_TYPES)
def test_a_terminal_task_refuses_everything(cls: type[c.Command], state: TaskState) -> None:
    task = task_in(state)
    for actor in ACTORS:
        command = sample_command(cls, actor, DEADLINE * 2)
        if actor == SYSTEM and state in _REPLAYS_ON.get(cls, frozenset()):
            assert decide(task, command, ARBITERS) == []
            continue
        got = refusal(task, command)
        assert isinstance(got, Conflict), (actor, got)
        assert got.code == "task_closed"


def _refund_ordered_tasks() -> dict[str, Task]:
    won = c.ResolveDispute(actor=ARBITER, at=T0 + 20, winner="employer", note="n")
    disputed = task_in(S.DISPUTED)
    return {
        "pending funding, cancelled": task_in(S.PENDING_FUNDING, extra=[(c.Cancel, EMPLOYER)]),
        "funded, cancelled": task_in(S.FUNDED, extra=[(c.Cancel, EMPLOYER)]),
        "funded, deadline passed": apply(task_in(S.FUNDED), c.Tick(actor=SYSTEM, at=DEADLINE + 1))[
            0
        ],
        "claimed, hold expiring": task_in(S.CLAIMED, extra=[(c.HoldExpiring, SYSTEM)]),
        "dispute lost by worker": apply(disputed, won)[0],
        "verified, payout failed, hold expiring": task_in(
            S.VERIFIED, extra=[(c.RecordPayoutFailure, SYSTEM), (c.HoldExpiring, SYSTEM)]
        ),
    }


_REFUNDING = _refund_ordered_tasks()


@pytest.mark.parametrize("name", sorted(_REFUNDING))
@pytest.mark.parametrize("cls", COMMAND_TYPES)
def test_while_refunding_only_completion_and_timers_pass(name: str, cls: type[c.Command]) -> None:
    task = _REFUNDING[name]
    assert task.refund_ordered
    assert not task.release_pending
    at = DEADLINE * 2
    for actor in ACTORS:
        command = sample_command(cls, actor, at)
        if actor == SYSTEM and cls in (c.Tick, c.HoldExpiring, c.ConfirmFunding):
            assert decide(task, command, ARBITERS) == []
        elif actor == SYSTEM and cls is c.CompleteRefund:
            done, events = apply(task, command)
            assert [type(ev) for ev in events] == [e.RefundCompleted]
            assert done.state is (S.REFUNDED if task.funded_at is not None else S.CANCELLED)
        elif actor == SYSTEM and cls is c.SettleUnderLivePayout:
            _settle_supersedes_the_refund(task, command)
        elif cls in (c.Tick, c.HoldExpiring, c.ConfirmFunding, c.CompleteRefund):
            got = refusal(task, command)  # passes the refund gate, then fails the role check
            assert isinstance(got, Forbidden), (actor, got)
            assert got.code == "wrong_role"
        elif cls is c.SettleUnderLivePayout:
            got = refusal(task, command)
            assert isinstance(got, Forbidden), (actor, got)
            assert got.code == "wrong_role"
        else:
            got = refusal(task, command)
            assert isinstance(got, Conflict), (actor, got)
            assert got.code == "refund_under_way", (actor, got)


def _settle_supersedes_the_refund(task: Task, command: c.Command) -> None:
    """The escrow node settled the hold of a verified task whose refund was ordered (its payout
    landed after all): the refund can no longer happen, and the release finishes the task. Any
    other task in refund has no payout to settle behind."""
    if task.state is not S.VERIFIED:
        got = refusal(task, command)
        assert isinstance(got, Conflict), got
        assert got.code == "wrong_state"
        return
    done, events = apply(task, command)
    assert [type(ev) for ev in events] == [e.HoldSettledUnderLivePayout]
    assert not done.refund_ordered
    assert done.release_pending
    assert done.hold_settled_at is not None


def test_release_is_refused_once_a_refund_is_ordered() -> None:
    task = _REFUNDING["verified, payout failed, hold expiring"]
    assert task.state is S.VERIFIED
    got = refusal(task, sample_command(c.CompleteRelease, SYSTEM, T0 + 99))
    assert got.code == "refund_under_way"


def test_replays() -> None:
    funded = task_in(S.FUNDED)
    assert decide(funded, sample_command(c.ConfirmFunding, SYSTEM, T0 + 9), ARBITERS) == []
    for state in (S.CLAIMED, S.VERIFIED, S.DISPUTED):
        task = task_in(state)
        assert decide(task, sample_command(c.ConfirmFunding, SYSTEM, T0 + 9), ARBITERS) == []
    paid = task_in(S.PAID)
    assert decide(paid, sample_command(c.CompleteRelease, SYSTEM, T0 + 9), ARBITERS) == []
    refunded = task_in(S.REFUNDED)
    assert decide(refunded, sample_command(c.CompleteRefund, SYSTEM, T0 + 9), ARBITERS) == []
    expired = task_in(S.EXPIRED)
    assert decide(expired, sample_command(c.ExpireFunding, SYSTEM, T0 + 9), ARBITERS) == []


@pytest.mark.parametrize("name", sorted(_REFUNDING))
def test_a_second_hold_expiring_orders_nothing_more(name: str) -> None:
    task = _REFUNDING[name]
    assert decide(task, sample_command(c.HoldExpiring, SYSTEM, T0 + 99), ARBITERS) == []


@pytest.mark.parametrize(
    ("state", "cls"),
    [
        (S.FUNDED, c.ConfirmFunding),
        (S.PAID, c.CompleteRelease),
        (S.REFUNDED, c.CompleteRefund),
        (S.EXPIRED, c.ExpireFunding),
    ],
)
@pytest.mark.parametrize("actor", [EMPLOYER, WORKER, STRANGER, ARBITER])
def test_only_the_system_may_replay_system_commands(
    state: TaskState, cls: type[c.Command], actor: str
) -> None:
    """A replay decides to nothing only for the system; anyone else is refused, not ignored."""
    got = refusal(task_in(state), sample_command(cls, actor, T0 + 99))
    assert got.code in ("wrong_role", "task_closed")


# --- timers --------------------------------------------------------------------------------


def test_review_window_elapsing_verifies_the_submission() -> None:
    submitted = task_in(S.SUBMITTED)
    assert submitted.submitted_at is not None
    ends = submitted.submitted_at + REVIEW_WINDOW
    assert decide(submitted, c.Tick(actor=SYSTEM, at=ends - 1), ARBITERS) == []
    task, events = apply(submitted, c.Tick(actor=SYSTEM, at=ends))
    assert events == [e.ReviewWindowElapsed(at=ends, actor=SYSTEM)]
    assert task.state is S.VERIFIED
    assert task.verified_by == SYSTEM
    assert task.release_pending


@pytest.mark.parametrize("cls", [c.Reject, c.OpenDispute])
def test_the_employer_cannot_contest_once_the_review_window_ran_out(cls: type[c.Command]) -> None:
    """Whether the timer already ran must not decide the outcome: the window is binding."""
    submitted = task_in(S.SUBMITTED)
    assert submitted.submitted_at is not None
    ends = submitted.submitted_at + REVIEW_WINDOW
    apply(submitted, sample_command(cls, EMPLOYER, ends - 1))
    got = refusal(submitted, sample_command(cls, EMPLOYER, ends))
    assert isinstance(got, Conflict)
    assert got.code == "review_window_closed"
    approved, _ = apply(submitted, sample_command(c.Approve, EMPLOYER, ends))
    assert approved.state is S.VERIFIED


@pytest.mark.parametrize("state", [S.FUNDED, S.CLAIMED])
def test_deadline_passing_orders_a_refund(state: TaskState) -> None:
    task = task_in(state)
    assert decide(task, c.Tick(actor=SYSTEM, at=DEADLINE), ARBITERS) == []
    after, events = apply(task, c.Tick(actor=SYSTEM, at=DEADLINE + 1))
    assert [type(ev) for ev in events] == [e.RefundOrdered]
    assert after.state is state
    assert after.refund_ordered
    assert decide(after, c.Tick(actor=SYSTEM, at=DEADLINE + 2), ARBITERS) == []


def test_a_just_rejected_worker_keeps_the_dispute_window() -> None:
    submitted = task_in(S.CLAIMED)
    submitted, _ = apply(submitted, sample_command(c.SubmitProof, WORKER, DEADLINE - 10))
    rejected, _ = apply(submitted, sample_command(c.Reject, EMPLOYER, DEADLINE - 5))
    window_ends = DEADLINE - 5 + DISPUTE_WINDOW
    assert decide(rejected, c.Tick(actor=SYSTEM, at=DEADLINE + 1), ARBITERS) == []
    assert decide(rejected, c.Tick(actor=SYSTEM, at=window_ends - 1), ARBITERS) == []
    disputed, _ = apply(rejected, sample_command(c.OpenDispute, WORKER, window_ends - 1))
    assert disputed.state is S.DISPUTED
    _, events = apply(rejected, c.Tick(actor=SYSTEM, at=window_ends))
    assert [type(ev) for ev in events] == [e.RefundOrdered]


@pytest.mark.parametrize("state", [S.DRAFT, S.PENDING_FUNDING, S.VERIFIED])
def test_tick_leaves_other_states_alone(state: TaskState) -> None:
    """DISPUTED has its own timer: test_gamed_deals.py."""
    task = task_in(state)
    assert decide(task, c.Tick(actor=SYSTEM, at=DEADLINE * 2), ARBITERS) == []


# --- the guardian: HoldExpiring per state ---------------------------------------------------


@pytest.mark.parametrize(
    "task",
    [
        task_in(S.FUNDED),
        task_in(S.CLAIMED),
        task_in(S.CLAIMED, extra=[(c.OpenDispute, EMPLOYER)]),  # disputed before any proof
    ],
    ids=["FUNDED", "CLAIMED", "DISPUTED"],
)
def test_hold_expiring_refunds_without_a_verified_submission(task: Task) -> None:
    task, events = apply(task, c.HoldExpiring(actor=SYSTEM, at=T0 + 99, blocks_left=20))
    assert events == [
        e.RefundOrdered(at=T0 + 99, actor=SYSTEM, reason="hold invoice within 20 blocks of expiry")
    ]
    assert task.refund_ordered


def test_hold_expiring_counts_an_unanswered_submission_as_verified() -> None:
    task, events = apply(task_in(S.SUBMITTED), sample_command(c.HoldExpiring, SYSTEM, T0 + 99))
    assert events == [e.ReviewWindowElapsed(at=T0 + 99, actor=SYSTEM)]
    assert task.release_pending


def test_hold_expiring_leaves_a_verified_task_to_its_release() -> None:
    verified = task_in(S.VERIFIED)
    assert decide(verified, sample_command(c.HoldExpiring, SYSTEM, T0 + 99), ARBITERS) == []


def test_hold_expiring_refunds_a_verified_task_whose_payout_failed() -> None:
    failed = task_in(S.VERIFIED, extra=[(c.RecordPayoutFailure, SYSTEM)])
    task, events = apply(failed, sample_command(c.HoldExpiring, SYSTEM, T0 + 99))
    assert [type(ev) for ev in events] == [e.RefundOrdered]
    assert isinstance(events[0], e.RefundOrdered)
    assert "payout failed (no route)" in events[0].reason
    assert task.refund_ordered
    assert not task.release_pending


def test_hold_expiring_after_a_new_payout_request_waits_for_the_release() -> None:
    failed = task_in(
        S.VERIFIED, extra=[(c.RecordPayoutFailure, SYSTEM), (c.UpdatePayoutRequest, WORKER)]
    )
    assert decide(failed, sample_command(c.HoldExpiring, SYSTEM, T0 + 99), ARBITERS) == []


@pytest.mark.parametrize("state", [S.DRAFT, S.PENDING_FUNDING])
def test_hold_expiring_needs_a_held_htlc(state: TaskState) -> None:
    got = refusal(task_in(state), sample_command(c.HoldExpiring, SYSTEM, T0 + 99))
    assert got.code == "wrong_state"


# --- events: serialisation and the reducer --------------------------------------------------


def sample_events() -> list[e.Event]:
    at, who = T0 + 5, EMPLOYER
    return [
        e.TaskCreated(
            at=at,
            actor=who,
            task_id="t",
            title="x",
            description="y",
            acceptance={"kind": "manual", "checks": [1, 2]},
            amount_msat=10,
            fee_msat=1,
            deadline_at=at + 9,
            review_window_s=1,
            dispute_window_s=2,
            deadline_policy="refund_unless_verified",
        ),
        e.FundingRequested(
            at=at,
            actor=who,
            funding_round=1,
            payment_hash_hex=PAYMENT_HASH,
            payment_request="lnbcrt1",
            cltv_expiry_delta=400,
            invoice_expires_at=at + 600,
        ),
        e.FundingAccepted(at=at, actor=SYSTEM, accepted_htlc_expiry_height=9, amount_paid_msat=10),
        e.FundingExpired(at=at, actor=SYSTEM, reason="expired"),
        e.TaskClaimed(at=at, actor=WORKER, worker_pubkey=WORKER),
        e.ProofSubmitted(
            at=at, actor=WORKER, proof_event_id="f" * 64, proof={"a": [1]}, payout_request="ln"
        ),
        e.ProofRefused(at=at, actor=WORKER, proof_event_id="e" * 64, problems=["no url"]),
        e.SubmissionApproved(at=at, actor=who),
        e.ReviewWindowElapsed(at=at, actor=SYSTEM),
        e.SubmissionRejected(at=at, actor=who, reason="bad"),
        e.DisputeOpened(at=at, actor=WORKER, reason="unfair"),
        e.DisputeResolved(at=at, actor=ARBITER, winner="worker", note="ok"),
        e.DisputeWindowElapsed(at=at, actor=SYSTEM),
        e.RefundOrdered(at=at, actor=SYSTEM, reason="deadline"),
        e.TaskCancelled(at=at, actor=who),
        e.PayoutFailed(at=at, actor=SYSTEM, reason="no route"),
        e.PayoutRequestUpdated(at=at, actor=WORKER, payout_request="ln2"),
        e.ReleaseCompleted(
            at=at,
            actor=SYSTEM,
            preimage_hex=PREIMAGE,
            payout_payment_hash_hex="33",
            payout_fee_msat=1,
        ),
        e.RefundCompleted(at=at, actor=SYSTEM, invoice_state="CANCELED"),
        e.DepositRequested(
            at=at,
            actor=WORKER,
            depositor=WORKER,
            role="worker",
            round=0,
            amount_msat=5,
            payment_hash_hex=PAYMENT_HASH,
            payment_request="lnbcrt2",
            cltv_expiry_delta=400,
            invoice_expires_at=at + 600,
        ),
        e.DepositLocked(at=at, actor=SYSTEM, depositor=WORKER, expiry_height=9, amount_paid_msat=5),
        e.DepositReturnOrdered(at=at, actor=SYSTEM, depositor=WORKER, reason="closed"),
        e.DepositForfeited(at=at, actor=SYSTEM, depositor=WORKER, beneficiary=who, reason="gone"),
        e.DepositPayoutRequested(at=at, actor=who, depositor=WORKER, payout_request="ln3"),
        e.DepositPayoutFailed(at=at, actor=SYSTEM, depositor=WORKER, reason="no route"),
        e.DepositReturned(at=at, actor=SYSTEM, depositor=WORKER, invoice_state="CANCELED"),
        e.DepositPaidOut(
            at=at,
            actor=SYSTEM,
            depositor=WORKER,
            preimage_hex=PREIMAGE,
            payout_payment_hash_hex="44",
            payout_fee_msat=0,
        ),
        e.DepositSettledUnderLivePayout(
            at=at,
            actor=SYSTEM,
            depositor=WORKER,
            preimage_hex=PREIMAGE,
            payout_payment_hash_hex="44",
            blocks_left=18,
        ),
        e.HoldSettledUnderLivePayout(
            at=at, actor=SYSTEM, preimage_hex=PREIMAGE, payout_payment_hash_hex="33", blocks_left=18
        ),
        e.ApplicationFiled(at=at, actor=WORKER, worker_pubkey=WORKER, note="let me"),
        e.WorkerAssigned(at=at, actor=who, worker_pubkey=WORKER, review_window_s=1),
        e.ClaimReleased(at=at, actor=WORKER, worker_pubkey=WORKER),
        e.ClaimRevoked(at=at, actor=who, worker_pubkey=WORKER, reason="no proof"),
        e.SplitDecided(
            at=at,
            actor=ARBITER,
            worker_msat=60,
            employer_msat=39,
            fee_msat=1,
            basis="ruling",
            note="n",
        ),
        e.RefundRequestUpdated(at=at, actor=who, refund_request="ln4"),
        e.RefundShareFailed(at=at, actor=SYSTEM, reason="no route"),
        e.SplitSharePaid(
            at=at,
            actor=SYSTEM,
            share="worker",
            payment_hash_hex="55",
            payment_preimage_hex="66",
            fee_msat=1,
        ),
        e.SplitCompleted(
            at=at,
            actor=SYSTEM,
            preimage_hex=PREIMAGE,
            worker_payment_hash_hex="55",
            employer_payment_hash_hex="77",
        ),
        e.RejectionLapsed(at=at, actor=SYSTEM),
        e.AgreementProposed(at=at, actor=who, worker_msat=0, note="part ways"),
        e.AgreementAccepted(at=at, actor=WORKER, worker_msat=0, proposed_by=who),
        e.AgreementWithdrawn(at=at, actor=who),
        e.RenewalOpened(
            at=at,
            actor=SYSTEM,
            funding_round=2,
            payment_hash_hex="88",
            payment_request="ln5",
            cltv_expiry_delta=432,
            invoice_expires_at=at + 3600,
        ),
        e.Renewed(
            at=at,
            actor=SYSTEM,
            funding_round=2,
            payment_hash_hex="88",
            accepted_htlc_expiry_height=900,
            amount_paid_msat=100_000,
            previous_payment_hash_hex=PAYMENT_HASH,
        ),
        e.RoundCancelled(
            at=at, actor=SYSTEM, funding_round=1, payment_hash_hex=PAYMENT_HASH, reason="renewed"
        ),
        e.SwapReported(
            at=at,
            actor=who,
            role="funding",
            swap_id="swap1",
            swap_api="https://boltz.example/v2",
            lockup_txid="ab" * 32,
        ),
    ]


def test_samples_cover_every_event_type() -> None:
    assert {type(ev) for ev in sample_events()} == set(EVENT_TYPES) == set(e.EVENT_TYPES.values())


@pytest.mark.parametrize("event", sample_events(), ids=lambda ev: type(ev).__name__)
def test_event_dict_round_trip(event: e.Event) -> None:
    data = e.event_to_dict(event)
    assert data["type"] == type(event).__name__
    assert e.event_from_dict(data) == event
    assert e.event_from_dict(json.loads(json.dumps(data))) == event
    assert "type" in data  # event_from_dict must not consume its argument


def test_event_from_dict_refuses_an_unknown_type() -> None:
    with pytest.raises(KeyError):
        e.event_from_dict({"type": "TaskStolen", "at": 1, "actor": "x"})


_APPLIES_TO: dict[type[e.Event], Task | None] = {
    e.TaskCreated: None,
    e.FundingRequested: task_in(S.DRAFT),
    e.FundingAccepted: task_in(S.PENDING_FUNDING),
    e.FundingExpired: task_in(S.PENDING_FUNDING),
    e.TaskClaimed: task_in(S.FUNDED),
    e.ProofSubmitted: task_in(S.CLAIMED),
    e.ProofRefused: task_in(S.CLAIMED),
    e.SubmissionApproved: task_in(S.SUBMITTED),
    e.ReviewWindowElapsed: task_in(S.SUBMITTED),
    e.SubmissionRejected: task_in(S.SUBMITTED),
    e.DisputeOpened: task_in(S.CLAIMED),
    e.DisputeResolved: task_in(S.DISPUTED),
    e.DisputeWindowElapsed: task_in(S.DISPUTED),
    e.RefundOrdered: task_in(S.FUNDED),
    e.TaskCancelled: task_in(S.DRAFT),
    e.PayoutFailed: task_in(S.VERIFIED),
    e.PayoutRequestUpdated: task_in(S.VERIFIED),
    e.ReleaseCompleted: task_in(S.VERIFIED),
    e.RefundCompleted: task_in(S.FUNDED, extra=[(c.Cancel, EMPLOYER)]),
    e.DepositRequested: task_in(S.FUNDED),
}
_FIRST_DEPOSIT = next(
    i for i, ev in enumerate(sample_events()) if isinstance(ev, e.DepositRequested)
)
_WITH_DEPOSIT = evolve(task_in(S.FUNDED), sample_events()[_FIRST_DEPOSIT])
_APPLIES_TO.update(  # the deposit's later events
    {type(ev): _WITH_DEPOSIT for ev in sample_events()[_FIRST_DEPOSIT + 1 :]}
)
_APPLIES_TO[e.HoldSettledUnderLivePayout] = task_in(S.VERIFIED)
_APPLIES_TO.update(
    {
        e.ApplicationFiled: task_in(S.FUNDED),
        e.WorkerAssigned: task_in(S.FUNDED),
        e.ClaimReleased: task_in(S.CLAIMED),
        e.ClaimRevoked: task_in(S.CLAIMED),
    }
)
_APPLIES_TO[e.RejectionLapsed] = task_in(S.SUBMITTED, extra=[(c.Reject, EMPLOYER)])
_APPLIES_TO[e.AgreementProposed] = task_in(S.CLAIMED)
_PROPOSED = task_in(S.CLAIMED, extra=[(c.ProposeAgreement, EMPLOYER)])
_APPLIES_TO[e.AgreementAccepted] = _PROPOSED
_APPLIES_TO[e.AgreementWithdrawn] = _PROPOSED
_OPENED, _RENEWED, _ = (ev for ev in sample_events() if isinstance(ev, e.RoundEvent))
_APPLIES_TO[e.RenewalOpened] = task_in(S.FUNDED)
_APPLIES_TO[e.Renewed] = evolve(task_in(S.FUNDED), _OPENED)
_APPLIES_TO[e.RoundCancelled] = evolve(_APPLIES_TO[e.Renewed], _RENEWED)
_APPLIES_TO[e.SwapReported] = task_in(S.PAID)


@pytest.mark.parametrize("event", sample_events(), ids=lambda ev: type(ev).__name__)
def test_the_reducer_handles_every_event(event: e.Event) -> None:
    before = _APPLIES_TO[type(event)]
    after = evolve(before, event)  # raises Refusal("no reducer ...") if unhandled
    assert after.version == (before.version + 1 if before else 1)
    assert after.updated_at == event.at


def test_the_reducer_refuses_events_out_of_order() -> None:
    created, *rest = sample_events()
    with pytest.raises(Refusal):
        evolve(None, rest[0])
    with pytest.raises(Refusal):
        evolve(task_in(S.DRAFT), created)


def test_replay_rebuilds_the_task() -> None:
    task, history = apply(None, create_command())
    for cls, actor in [
        (c.RequestFunding, EMPLOYER),
        (c.ConfirmFunding, SYSTEM),
        (c.Claim, WORKER),
        (c.SubmitProof, WORKER),
        (c.Approve, EMPLOYER),
        (c.CompleteRelease, SYSTEM),
    ]:
        task, events = apply(task, sample_command(cls, actor, at_after(task)))
        history += events
    assert replay(history) == task
    assert task.version == len(history)
    assert replay([]) is None


# --- coverage of the table (STYLE.md item 12) -----------------------------------------------


def test_every_command_has_a_rule_and_a_handler() -> None:
    assert set(COMMAND_TYPES) == set(TRANSITIONS) == set(machine._HANDLERS)
    assert c.CreateTask not in TRANSITIONS


def test_every_command_has_a_sample() -> None:
    for cls in COMMAND_TYPES:
        assert type(sample_command(cls, SYSTEM, T0)) is cls


def test_every_open_state_has_a_rule() -> None:
    covered = frozenset().union(*(rule.states for rule in TRANSITIONS.values()))
    assert frozenset(OPEN_STATES) <= covered
    assert not covered & TERMINAL_STATES


def test_every_rule_names_roles_and_open_states() -> None:
    for cls, rule in TRANSITIONS.items():
        assert rule.roles, cls
        assert rule.states, cls
        assert rule.verb, cls
        assert rule.needs_arbiter <= rule.roles, cls


@pytest.mark.parametrize(("cls", "state"), _matrix(want_allowed_state=True))
def test_without_an_arbiter_only_the_rules_that_need_one_refuse(
    cls: type[c.Command], state: TaskState
) -> None:
    """Each role a rule marks ``needs_arbiter`` is refused with ``no_arbiter`` and the rule's
    verb; every other decision is the same as with an arbiter configured."""
    task = task_in(state)
    rule = TRANSITIONS[cls]
    for actor in ACTORS:
        command = sample_command(cls, actor, at_after(task))
        role = task.role_of(actor, frozenset())
        if role in rule.needs_arbiter:
            with pytest.raises(Conflict) as caught:
                decide(task, command, frozenset())
            assert caught.value.code == "no_arbiter"
            assert rule.verb in caught.value.detail
        elif actor != ARBITER:  # without arbiters the arbiter's key is a stranger's
            assert _outcome(task, command, frozenset()) == _outcome(task, command, ARBITERS)


def _outcome(task: Task, command: c.Command, arbiters: frozenset[str]) -> object:
    try:
        return decide(task, command, arbiters)
    except Refusal as refusal:
        return (type(refusal), refusal.code)


def test_the_guardian_covers_exactly_the_funded_states() -> None:
    assert TRANSITIONS[c.HoldExpiring].states == FUNDED_STATES


def test_release_refuses_a_preimage_that_does_not_match_the_payment_hash() -> None:
    verified = task_in(S.VERIFIED)
    command = c.CompleteRelease(
        actor="system",
        at=T0 + 50,
        preimage_hex="44" * 32,
        payout_payment_hash_hex="33" * 32,
        payout_fee_msat=0,
    )
    assert refusal(verified, command).code == "bad_preimage"


@pytest.mark.parametrize("state", [S.DRAFT, S.FUNDED, S.CLAIMED, S.SUBMITTED, S.PAID])
def test_replaced_builds_the_task_dataclasses_replace_builds(state: TaskState) -> None:
    """``evolve``'s own copy (slots filled directly, ``__init__`` skipped) gives, field for
    field, the ``Task`` that ``dataclasses.replace`` gives, and leaves the original alone."""
    task = task_in(state)
    before = dataclasses.astuple(task)
    changes = {"version": task.version + 1, "updated_at": task.updated_at + 7, "labels": {"a": "b"}}
    replaced = machine._replaced(task, **changes)
    expected = dataclasses.replace(task, **changes)
    assert type(replaced) is Task
    assert replaced == expected
    assert [getattr(replaced, f.name) for f in dataclasses.fields(Task)] == [
        getattr(expected, f.name) for f in dataclasses.fields(Task)
    ]
    assert dataclasses.astuple(task) == before
    assert machine._replaced(task) == task and machine._replaced(task) is not task
    with pytest.raises(KeyError):
        machine._replaced(task, no_such_field=1)
