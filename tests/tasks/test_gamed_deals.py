"""Deals a hostile counterparty could game, each closed by a rule of the state machine.

Every test plays the attacker: an employer who already has the work and wants the reward back,
a worker who wants to keep a deposit after abandoning a task, an employer who wants a worker's
deposit for a spec no proof can meet, a stranger who spams a task with free deposit invoices.
"""

from __future__ import annotations

import dataclasses

import pytest
from support.task_builders import (
    ARBITER,
    ARBITERS,
    DEADLINE,
    DISPUTE_WINDOW,
    EMPLOYER,
    SYSTEM,
    WORKER,
    apply,
    sample_command,
    task_in,
)
from test_deposit_rules import locked, request, state_of

from taskhold.errors import Conflict, Refusal
from taskhold.tasks import Task, TaskState, decide, evolve
from taskhold.tasks import commands as c
from taskhold.tasks import events as e
from taskhold.tasks.model import DepositState

S, D = TaskState, DepositState
NO_ARBITERS: frozenset[str] = frozenset()


def apply_with(
    task: Task, command: c.Command, arbiters: frozenset[str]
) -> tuple[Task, list[e.Event]]:
    events = decide(task, command, arbiters)
    for event in events:
        task = evolve(task, event)
    return task, events


def refused(task: Task, command: c.Command, arbiters: frozenset[str] = ARBITERS) -> Refusal:
    with pytest.raises(Refusal) as caught:
        decide(task, command, arbiters)
    return caught.value


def step(task: Task, *steps: tuple[type[c.Command], str]) -> Task:
    for cls, actor in steps:
        task, _ = apply(task, sample_command(cls, actor, task.updated_at + 1))
    return task


def claimed_with_deposit() -> Task:
    return step(locked(task_in(S.FUNDED), WORKER), (c.Claim, WORKER))


# --- an employer who has the work and wants the reward back -------------------------------


@pytest.mark.parametrize("state", [S.CLAIMED, S.SUBMITTED])
def test_without_an_arbiter_the_employer_cannot_open_a_dispute(state: TaskState) -> None:
    task = task_in(state)
    got = refused(task, sample_command(c.OpenDispute, EMPLOYER, task.updated_at + 1), NO_ARBITERS)
    assert isinstance(got, Conflict)
    assert got.code == "no_arbiter"
    assert "no arbiter" in str(got)


def test_an_unresolved_dispute_releases_a_checked_submission_when_its_window_ends() -> None:
    """The arbiter stays silent: the dispute must not quietly fall to a refund at the hold
    margin, because the employer already holds the work the checks accepted."""
    disputed = task_in(S.DISPUTED)  # the employer disputed a submission
    assert disputed.dispute_opened_at is not None
    ends = disputed.dispute_opened_at + DISPUTE_WINDOW
    assert decide(disputed, c.Tick(actor=SYSTEM, at=ends - 1), ARBITERS) == []
    task, events = apply(disputed, c.Tick(actor=SYSTEM, at=ends))
    assert events == [e.DisputeWindowElapsed(at=ends, actor=SYSTEM)]
    assert task.state is S.VERIFIED
    assert task.release_pending
    # the arbiter could have decided until then
    apply(disputed, c.ResolveDispute(actor=ARBITER, at=ends - 1, winner="employer", note="no"))


def test_the_guardian_applies_the_dispute_default_not_a_refund() -> None:
    task, events = apply(task_in(S.DISPUTED), sample_command(c.HoldExpiring, SYSTEM, DEADLINE))
    assert [type(ev) for ev in events] == [e.DisputeWindowElapsed]
    assert task.release_pending and not task.refund_ordered


def test_without_an_arbiter_a_rejection_after_the_deadline_is_no_free_refund() -> None:
    """Reject once the worker can no longer resubmit: the worker disputes, and with nobody to
    decide, the checked submission is released when the dispute window ends."""
    task = task_in(S.CLAIMED)
    task, _ = apply(task, sample_command(c.SubmitProof, WORKER, DEADLINE - 10))
    task, _ = apply_with(task, sample_command(c.Reject, EMPLOYER, DEADLINE + 1), NO_ARBITERS)
    assert refused(task, sample_command(c.SubmitProof, WORKER, DEADLINE + 2)).code == (
        "deadline_passed"
    )
    task, _ = apply_with(task, sample_command(c.OpenDispute, WORKER, DEADLINE + 2), NO_ARBITERS)
    assert task.state is S.DISPUTED
    task, events = apply_with(
        task, c.Tick(actor=SYSTEM, at=DEADLINE + 2 + DISPUTE_WINDOW), NO_ARBITERS
    )
    assert [type(ev) for ev in events] == [e.DisputeWindowElapsed]
    assert task.release_pending


def test_the_worker_cannot_dispute_to_cut_the_review_window_short() -> None:
    task = task_in(S.SUBMITTED)
    got = refused(task, sample_command(c.OpenDispute, WORKER, task.updated_at + 1))
    assert isinstance(got, Conflict)
    assert got.code == "review_pending"


def test_a_dispute_without_proof_ends_in_a_refund() -> None:
    disputed = task_in(S.CLAIMED, extra=[(c.OpenDispute, EMPLOYER)])
    assert disputed.dispute_opened_at is not None
    task, events = apply(
        disputed, c.Tick(actor=SYSTEM, at=disputed.dispute_opened_at + DISPUTE_WINDOW)
    )
    assert [type(ev) for ev in events] == [e.RefundOrdered]
    assert task.refund_ordered


# --- a worker who wants to keep the deposit after abandoning the task ---------------------


def test_a_worker_cannot_dispute_instead_of_delivering() -> None:
    """A worker disputes a rejection. With nothing rejected a dispute could only end in a
    refund: a squatter's way to kill the task (the employer could no longer revoke the claim
    and give the task to someone else). The claim then runs out like any abandoned one."""
    task = claimed_with_deposit()
    got = refused(task, sample_command(c.OpenDispute, WORKER, DEADLINE - 1))
    assert isinstance(got, Conflict) and got.code == "nothing_to_dispute"
    task, events = apply(task, c.Tick(actor=SYSTEM, at=DEADLINE + 1))
    assert [type(ev) for ev in events] == [e.RefundOrdered, e.DepositForfeited]
    assert state_of(task, WORKER) is D.FORFEIT


def test_an_employer_who_disputes_before_any_proof_takes_no_deposit() -> None:
    """The employer's dispute stopped the worker from submitting: that is no abandonment."""
    task = claimed_with_deposit()
    task, _ = apply(task, sample_command(c.OpenDispute, EMPLOYER, DEADLINE - 1))
    task, events = apply(task, sample_command(c.HoldExpiring, SYSTEM, DEADLINE))
    assert e.DepositForfeited not in [type(ev) for ev in events]
    assert state_of(task, WORKER) is not D.FORFEIT


# --- an employer whose spec no proof can meet -------------------------------------------------


def test_a_worker_whose_proofs_were_all_refused_keeps_the_deposit() -> None:
    task = step(claimed_with_deposit(), (c.RefuseProof, WORKER))
    assert task.proofs_refused == 1
    task, events = apply(task, c.Tick(actor=SYSTEM, at=DEADLINE + 1))
    assert [type(ev) for ev in events] == [e.RefundOrdered]
    task, _ = apply(task, sample_command(c.CompleteRefund, SYSTEM, DEADLINE + 2))
    assert state_of(task, WORKER) is D.RETURNING


# --- free spam --------------------------------------------------------------------------------


def test_refused_proofs_stop_being_recorded_past_the_cap() -> None:
    task = task_in(S.CLAIMED)
    command = c.RefuseProof(
        actor=WORKER, at=task.updated_at + 1, proof_event_id="e" * 64, problems=["x"], max_refused=3
    )
    for _ in range(3):
        task, _ = apply(task, command)
    got = refused(task, command)
    assert isinstance(got, Conflict)
    assert got.code == "too_many_refused_proofs"
    task, _ = apply(task, sample_command(c.SubmitProof, WORKER, task.updated_at + 1))
    assert task.state is S.SUBMITTED  # a proof that passes is still taken


def test_deposits_waiting_for_a_claim_are_capped_per_task() -> None:
    task = task_in(S.FUNDED)
    strangers = [f"{n:064x}" for n in range(1, 5)]
    for stranger in strangers[:3]:
        task, _ = apply(task, _capped(request(task, stranger), 3))
    got = refused(task, _capped(request(task, strangers[3]), 3))
    assert isinstance(got, Conflict)
    assert got.code == "too_many_deposits"
    # a returned deposit frees its place
    first = task.deposit_of(strangers[0])
    assert first is not None
    task, _ = apply(
        task,
        c.DepositInvoiceCancelled(
            actor=SYSTEM, at=task.updated_at + 1, payment_hash_hex=first.payment_hash_hex
        ),
    )
    apply(task, _capped(request(task, strangers[3]), 3))


def test_deposits_are_capped_over_a_task_s_life() -> None:
    """Returned deposits stay in the task's record, so asking again and again is capped too."""
    task = task_in(S.FUNDED)
    for _ in range(3):
        task, _ = apply(task, dataclasses.replace(request(task, WORKER), max_per_task=3))
        deposit = task.deposit_of(WORKER)
        assert deposit is not None
        cancelled = c.DepositInvoiceCancelled(
            actor=SYSTEM, at=task.updated_at + 1, payment_hash_hex=deposit.payment_hash_hex
        )
        task, _ = apply(task, cancelled)
    got = refused(task, dataclasses.replace(request(task, WORKER), max_per_task=3))
    assert got.code == "too_many_deposits"


def _capped(command: c.RequestDeposit, cap: int) -> c.RequestDeposit:
    return dataclasses.replace(command, max_open_per_task=cap)


def test_a_dispute_recorded_without_its_opening_time_is_left_to_the_guardian() -> None:
    """A projection written before disputes had a timer: Tick must not fail on it."""
    old = dataclasses.replace(task_in(S.DISPUTED), dispute_opened_at=None)
    assert decide(old, c.Tick(actor=SYSTEM, at=DEADLINE * 2), ARBITERS) == []
    _, events = apply(old, sample_command(c.HoldExpiring, SYSTEM, DEADLINE * 2))
    assert [type(ev) for ev in events] == [e.DisputeWindowElapsed]
