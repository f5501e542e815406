"""The table of who a task waits on: each state and step names the right person, by when."""

from __future__ import annotations

import pytest
from support.task_builders import (
    ARBITER,
    ARBITERS,
    DEADLINE,
    DISPUTE_WINDOW,
    EMPLOYER,
    REVIEW_WINDOW,
    SYSTEM,
    WORKER,
    apply,
    create_command,
    sample_command,
    task_in,
)

from taskhold.tasks import Task, TaskState
from taskhold.tasks import commands as c
from taskhold.tasks.next_actions import (
    NEXT_ACTIONS,
    PAYOUT_ON_CHAIN,
    ROUTING_FAILURES,
    next_actions,
    payout_on_chain_due,
)

S = TaskState


def _waits(task: Task) -> set[tuple[str, str]]:
    return {(due.recipient, due.action) for due in next_actions(task, ARBITERS)}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (S.DRAFT, set()),
        (S.PENDING_FUNDING, {(EMPLOYER, "fund")}),
        (S.FUNDED, set()),
        (S.CLAIMED, {(WORKER, "submit_proof")}),
        (S.SUBMITTED, {(EMPLOYER, "approve")}),
        (S.VERIFIED, set()),
        (S.DISPUTED, {(WORKER, "respond_to_dispute"), (ARBITER, "resolve_dispute")}),
        (S.PAID, set()),
        (S.REFUNDED, set()),
        (S.CANCELLED, set()),
        (S.EXPIRED, set()),
    ],
)
def test_each_state_waits_on_the_right_person(state: TaskState, expected: set[object]) -> None:
    assert _waits(task_in(state)) == expected


def test_deadlines_are_the_ones_the_machine_enforces() -> None:
    pending = task_in(S.PENDING_FUNDING)
    (fund,) = next_actions(pending, ARBITERS)
    assert fund.deadline_at == pending.invoice_expires_at
    (proof,) = next_actions(task_in(S.CLAIMED), ARBITERS)
    assert proof.deadline_at == DEADLINE
    submitted = task_in(S.SUBMITTED)
    assert submitted.submitted_at is not None
    (review,) = next_actions(submitted, ARBITERS)
    assert review.deadline_at == submitted.submitted_at + REVIEW_WINDOW
    disputed = task_in(S.DISPUTED)
    assert disputed.dispute_opened_at is not None
    assert {due.deadline_at for due in next_actions(disputed, ARBITERS)} == {
        disputed.dispute_opened_at + DISPUTE_WINDOW
    }


def test_a_rejection_waits_on_the_worker_and_a_worker_dispute_on_the_employer() -> None:
    rejected = task_in(S.SUBMITTED, extra=[(c.Reject, EMPLOYER)])
    assert _waits(rejected) == {(WORKER, "answer_rejection")}
    (answer,) = next_actions(rejected, ARBITERS)
    assert rejected.rejected_at is not None
    assert answer.deadline_at == max(DEADLINE, rejected.rejected_at + DISPUTE_WINDOW)
    disputed = task_in(S.SUBMITTED, extra=[(c.Reject, EMPLOYER), (c.OpenDispute, WORKER)])
    assert _waits(disputed) == {(EMPLOYER, "respond_to_dispute"), (ARBITER, "resolve_dispute")}


def test_a_direct_offer_and_an_application_wait_on_the_right_person() -> None:
    direct, _ = apply(None, create_command(claim_mode="direct", direct_worker=WORKER))
    apply_mode, _ = apply(None, create_command(claim_mode="apply"))
    for cls, actor in [(c.RequestFunding, EMPLOYER), (c.ConfirmFunding, SYSTEM)]:
        direct, _ = apply(direct, sample_command(cls, actor, 1_700_000_001))
        apply_mode, _ = apply(apply_mode, sample_command(cls, actor, 1_700_000_001))
    assert _waits(direct) == {(WORKER, "claim")}
    assert _waits(apply_mode) == set()
    applied, _ = apply(apply_mode, sample_command(c.Apply, WORKER, 1_700_000_002))
    assert _waits(applied) == {(EMPLOYER, "assign")}


def test_many_applications_make_a_handful_of_new_waits_not_one_each() -> None:
    """A stranger with a hundred keys applies a hundred times: the employer is told at the 1st,
    2nd, 4th… application (7 waits for 100), not a hundred times."""
    task, _ = apply(None, create_command(claim_mode="apply"))
    for cls, actor in [(c.RequestFunding, EMPLOYER), (c.ConfirmFunding, SYSTEM)]:
        task, _ = apply(task, sample_command(cls, actor, 1_700_000_001))
    keys: set[str] = set()
    for n in range(100):
        applicant = f"{n + 1:064x}"
        task, _ = apply(task, sample_command(c.Apply, applicant, 1_700_000_002 + n))
        keys |= {due.key for due in next_actions(task, ARBITERS)}
    assert len(task.applicants) == 100
    assert len(keys) == 7


def test_a_failed_payout_waits_on_the_worker_for_a_new_invoice() -> None:
    failed = task_in(S.VERIFIED, extra=[(c.RecordPayoutFailure, SYSTEM)])
    assert _waits(failed) == {(WORKER, "send_payout_invoice")}


def test_a_new_wait_of_the_same_kind_has_a_new_key() -> None:
    first = task_in(S.SUBMITTED)
    again = task_in(S.SUBMITTED, extra=[(c.Reject, EMPLOYER)])
    resubmitted, _ = apply(
        again,
        c.SubmitProof(
            actor=WORKER,
            at=again.updated_at,
            proof_event_id="9" * 64,
            proof={"url": "https://example.org/pr/2"},
            payout_request="lnbcrt1worker",
        ),
    )
    (before,), (after,) = next_actions(first, ARBITERS), next_actions(resubmitted, ARBITERS)
    assert before.action == after.action == "approve"
    assert before.key != after.key


def test_every_row_has_a_distinct_action() -> None:
    actions = [row.action for row in NEXT_ACTIONS]
    assert len(actions) == len(set(actions))


def _failed(reason: str, *, times: int = 1) -> Task:
    task = task_in(S.VERIFIED)
    for n in range(times):
        failure = c.RecordPayoutFailure(actor=SYSTEM, at=task.updated_at + 1 + n, reason=reason)
        task, _ = apply(task, failure)
    return task


@pytest.mark.parametrize("reason", sorted(ROUTING_FAILURES))
def test_an_unroutable_payout_offers_the_worker_an_on_chain_payout(reason: str) -> None:
    task = _failed(reason)
    assert _waits(task) == {(WORKER, "send_payout_invoice"), (WORKER, PAYOUT_ON_CHAIN)}
    (offer,) = [due for due in next_actions(task, ARBITERS) if due.action == PAYOUT_ON_CHAIN]
    assert offer.since == "1" and offer.deadline_at is None
    again = next(
        d for d in next_actions(_failed(reason, times=2), ARBITERS) if d.action == offer.action
    )
    assert again.key != offer.key  # each failure round is a wait of its own


@pytest.mark.parametrize(
    "reason",
    ["FAILURE_REASON_INCORRECT_PAYMENT_DETAILS", "FAILURE_REASON_TIMEOUT", "no route", None],
)
def test_any_other_payout_failure_offers_nothing_on_chain(reason: str | None) -> None:
    task = _failed(reason or "")
    assert PAYOUT_ON_CHAIN not in {action for _, action in _waits(task)}


def test_no_on_chain_offer_once_a_new_invoice_is_sent_or_a_refund_is_ordered() -> None:
    task = _failed("FAILURE_REASON_NO_ROUTE")
    renewed, _ = apply(task, sample_command(c.UpdatePayoutRequest, WORKER, task.updated_at + 1))
    assert not payout_on_chain_due(renewed)
    refunding, _ = apply(task, sample_command(c.HoldExpiring, SYSTEM, task.updated_at + 1))
    assert refunding.refund_ordered and not payout_on_chain_due(refunding)
    paid, _ = apply(task, sample_command(c.CompleteRelease, SYSTEM, task.updated_at + 1))
    assert not payout_on_chain_due(paid)


def test_the_routing_failures_are_the_lightning_backends_own() -> None:
    """The rules spell lnd's failure reasons without importing Lightning code: pinned here."""
    from taskhold.lightning import lnd_errors, sim_records

    assert lnd_errors.NO_ROUTE in ROUTING_FAILURES
    assert frozenset({sim_records.NO_ROUTE}) == ROUTING_FAILURES
    assert sim_records.INSUFFICIENT_BALANCE not in ROUTING_FAILURES  # the escrow's own balance
    assert ROUTING_FAILURES < sim_records.FAILURE_REASONS
