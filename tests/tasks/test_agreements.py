"""Two-party agreements, played by the side that would game them: a worker accepting their own
proposal, a stranger or an arbiter joining in, an accept racing a changed proposal or a
withdrawal, a cancel once a payout may be under way."""

from __future__ import annotations

import pytest
from support.task_builders import (
    ARBITER,
    EMPLOYER,
    STRANGER,
    SYSTEM,
    T0,
    WORKER,
    apply,
    sample_command,
    task_in,
)
from test_deposit_rules import locked

from taskhold.errors import Conflict, Forbidden, Invalid, Refusal
from taskhold.tasks import Task, TaskState, decide
from taskhold.tasks import commands as c
from taskhold.tasks import events as e
from taskhold.tasks.agreements import CANCELLED_BY_AGREEMENT
from taskhold.tasks.model import DepositState

S = TaskState
ARBITERS = frozenset({ARBITER})
PAYOUT = 99_000


def T(task: Task) -> int:
    """The next second on the task's clock."""
    return task.updated_at + 1


def propose(task: Task, actor: str, worker_msat: int, note: str = "") -> Task:
    at = task.updated_at + 1
    task, _ = apply(
        task, c.ProposeAgreement(actor=actor, at=at, worker_msat=worker_msat, note=note)
    )
    return task


def accept(task: Task, actor: str, worker_msat: int) -> tuple[Task, list[e.Event]]:
    return apply(
        task, c.AcceptAgreement(actor=actor, at=task.updated_at + 1, worker_msat=worker_msat)
    )


def refused(task: Task, command: c.Command) -> Refusal:
    with pytest.raises(Refusal) as caught:
        decide(task, command, ARBITERS)
    return caught.value


@pytest.mark.parametrize("state", [S.CLAIMED, S.SUBMITTED, S.DISPUTED])
@pytest.mark.parametrize(("proposer", "acceptor"), [(EMPLOYER, WORKER), (WORKER, EMPLOYER)])
def test_a_cancel_both_sign_orders_the_refund_at_once(
    state: TaskState, proposer: str, acceptor: str
) -> None:
    task = propose(task_in(state), proposer, 0, "let us part")
    assert (task.agreement_proposed_by, task.agreement_worker_msat) == (proposer, 0)
    task, events = accept(task, acceptor, 0)
    assert [type(ev) for ev in events] == [e.AgreementAccepted, e.RefundOrdered]
    assert isinstance(events[1], e.RefundOrdered)
    assert events[1].reason == CANCELLED_BY_AGREEMENT
    assert task.refund_ordered and task.agreed_worker_msat == 0
    assert task.agreement_proposed_by is None


@pytest.mark.parametrize("state", [S.SUBMITTED, S.DISPUTED])
def test_agreeing_on_the_whole_payout_verifies_the_submission(state: TaskState) -> None:
    task, events = accept(propose(task_in(state), WORKER, PAYOUT), EMPLOYER, PAYOUT)
    assert [type(ev) for ev in events] == [e.AgreementAccepted]
    assert task.state is S.VERIFIED and task.release_pending
    assert task.verified_by == EMPLOYER


@pytest.mark.parametrize("state", [S.SUBMITTED, S.DISPUTED])
@pytest.mark.parametrize(("proposer", "acceptor"), [(EMPLOYER, WORKER), (WORKER, EMPLOYER)])
def test_agreeing_on_part_of_the_payout_splits_the_amount(
    state: TaskState, proposer: str, acceptor: str
) -> None:
    """Whoever signs last, the submission counts as verified by the employer, who agreed to
    pay: never by the worker (the split's event is signed by the one who accepted)."""
    share = PAYOUT * 6 // 10
    task, events = accept(propose(task_in(state), proposer, share), acceptor, share)
    assert [type(ev) for ev in events] == [e.AgreementAccepted, e.SplitDecided]
    assert task.state is S.VERIFIED and task.is_split and task.split_basis == "agreement"
    assert task.verified_by == EMPLOYER
    assert task.split_worker_msat == share
    assert task.split_worker_msat + task.split_employer_msat + task.fee_msat == task.amount_msat


def test_nothing_but_a_cancel_can_be_agreed_before_a_proof() -> None:
    task = task_in(S.CLAIMED)
    got = refused(task, c.ProposeAgreement(actor=WORKER, at=T(task), worker_msat=PAYOUT))
    assert got.code == "no_proof"


@pytest.mark.parametrize("worker_msat", [-1, PAYOUT + 1])
def test_an_amount_outside_the_payout_is_invalid(worker_msat: int) -> None:
    task = task_in(S.SUBMITTED)
    got = refused(task, c.ProposeAgreement(actor=EMPLOYER, at=T(task), worker_msat=worker_msat))
    assert isinstance(got, Invalid) and got.code == "bad_agreement_amount"


def test_a_party_cannot_accept_their_own_proposal() -> None:
    task = propose(task_in(S.SUBMITTED), WORKER, PAYOUT)
    got = refused(task, c.AcceptAgreement(actor=WORKER, at=T(task), worker_msat=PAYOUT))
    assert isinstance(got, Forbidden) and got.code == "own_proposal"


@pytest.mark.parametrize("outsider", [STRANGER, ARBITER, SYSTEM])
def test_only_the_two_parties_take_part(outsider: str) -> None:
    task = propose(task_in(S.SUBMITTED), EMPLOYER, 0)
    for command in (
        c.ProposeAgreement(actor=outsider, at=T(task), worker_msat=0),
        c.AcceptAgreement(actor=outsider, at=T(task), worker_msat=0),
        c.WithdrawAgreement(actor=outsider, at=T(task)),
    ):
        got = refused(task, command)
        assert isinstance(got, Forbidden) and got.code == "wrong_role"


def test_an_accept_of_a_changed_proposal_is_refused() -> None:
    """The worker proposed the whole payout, then (racing the employer's accept) a cancel:
    the accept names the amount it saw, so it cannot accept the one it did not."""
    task = propose(propose(task_in(S.SUBMITTED), EMPLOYER, PAYOUT), EMPLOYER, 0)
    got = refused(task, c.AcceptAgreement(actor=WORKER, at=T(task), worker_msat=PAYOUT))
    assert isinstance(got, Conflict) and got.code == "proposal_changed"


def test_accept_and_withdraw_race_with_one_winner() -> None:
    task = propose(task_in(S.SUBMITTED), EMPLOYER, 0)
    withdrawn, _ = apply(task, c.WithdrawAgreement(actor=EMPLOYER, at=T(task)))
    assert withdrawn.agreement_proposed_by is None
    got = refused(withdrawn, c.AcceptAgreement(actor=WORKER, at=T(withdrawn), worker_msat=0))
    assert got.code == "no_proposal"
    accepted, _ = accept(task, WORKER, 0)
    assert refused(accepted, c.WithdrawAgreement(actor=EMPLOYER, at=T(accepted))).code == (
        "refund_under_way"
    )


def test_only_the_proposer_withdraws() -> None:
    task = propose(task_in(S.SUBMITTED), EMPLOYER, 0)
    got = refused(task, c.WithdrawAgreement(actor=WORKER, at=T(task)))
    assert isinstance(got, Forbidden) and got.code == "not_your_proposal"


@pytest.mark.parametrize("state", [S.FUNDED, S.VERIFIED, S.PAID])
def test_no_agreement_outside_a_claim_and_never_once_a_payout_may_run(state: TaskState) -> None:
    """From VERIFIED on the engine pays the worker: a cancel then could answer a payout in
    flight by cancelling the hold that funds it."""
    task = task_in(state)
    got = refused(task, c.ProposeAgreement(actor=EMPLOYER, at=T(task), worker_msat=0))
    assert got.code in ("wrong_state", "wrong_role", "task_closed")


def test_a_standing_proposal_lapses_when_the_task_is_verified() -> None:
    task = propose(task_in(S.SUBMITTED), WORKER, 0)
    task, _ = apply(task, sample_command(c.Approve, EMPLOYER, T(task)))
    assert task.state is S.VERIFIED and task.agreement_proposed_by is None
    got = refused(task, c.AcceptAgreement(actor=EMPLOYER, at=T(task), worker_msat=0))
    assert got.code == "wrong_state"


def test_a_cancel_both_signed_forfeits_no_deposit() -> None:
    """A worker who agreed to part did not abandon the task: the deposit goes back."""
    task = step_claimed_with_deposit()
    task, events = accept(propose(task, EMPLOYER, 0), WORKER, 0)
    assert e.DepositForfeited not in [type(ev) for ev in events]
    deposit = task.deposit_of(WORKER)
    assert deposit is not None and deposit.state is DepositState.HELD
    task, events = apply(task, sample_command(c.CompleteRefund, SYSTEM, T(task)))
    assert task.state is S.REFUNDED
    assert [type(ev) for ev in events] == [e.RefundCompleted, e.DepositReturnOrdered]


def step_claimed_with_deposit() -> Task:
    task, _ = apply(locked(task_in(S.FUNDED), WORKER), c.Claim(actor=WORKER, at=T0 + 100))
    return task
