"""The deposit rules of ``taskhold.tasks.deposits``, decided and folded without any I/O."""

from __future__ import annotations

import hashlib

import pytest
from support.task_builders import (
    ARBITER,
    ARBITERS,
    DEADLINE,
    EMPLOYER,
    REVIEW_WINDOW,
    STRANGER,
    SYSTEM,
    T0,
    WORKER,
    WORKER2,
    apply,
    create_command,
    drive_to_settlement,
    sample_command,
    task_in,
)

from taskhold.errors import Conflict, Forbidden, Invalid, Refusal
from taskhold.tasks import Task, TaskState, decide, replay
from taskhold.tasks import commands as c
from taskhold.tasks import events as e
from taskhold.tasks.deposits import next_deposit_round
from taskhold.tasks.model import DepositState

S, D = TaskState, DepositState


def preimage_of(depositor: str, deposit_round: int = 0) -> str:
    return hashlib.sha256(f"{depositor}/{deposit_round}".encode()).hexdigest()


def hash_of(depositor: str, deposit_round: int = 0) -> str:
    return hashlib.sha256(bytes.fromhex(preimage_of(depositor, deposit_round))).hexdigest()


def request(task: Task, depositor: str, at: int | None = None) -> c.RequestDeposit:
    deposit_round = next_deposit_round(task, depositor)
    return c.RequestDeposit(
        actor=depositor,
        at=at or task.updated_at + 1,
        round=deposit_round,
        amount_msat=5_000,
        payment_hash_hex=hash_of(depositor, deposit_round),
        payment_request="lnbcrt50n1deposit",
        cltv_expiry_delta=200,
        invoice_expires_at=T0 + 3_600,
    )


def locked(task: Task, depositor: str) -> Task:
    task, _ = apply(task, request(task, depositor))
    deposit = task.deposit_of(depositor)
    assert deposit is not None
    task, events = apply(
        task,
        c.ConfirmDeposit(
            actor=SYSTEM,
            at=task.updated_at + 1,
            payment_hash_hex=deposit.payment_hash_hex,
            expiry_height=900,
            amount_paid_msat=deposit.amount_msat,
        ),
    )
    assert [type(ev) for ev in events] == [e.DepositLocked]
    return task


def state_of(task: Task, depositor: str) -> DepositState:
    deposit = task.deposit_of(depositor)
    assert deposit is not None
    return deposit.state


def refusal(task: Task, command: c.Command) -> Refusal:
    with pytest.raises(Refusal) as caught:
        decide(task, command, ARBITERS)
    return caught.value


def test_a_worker_deposit_is_returned_when_the_task_is_paid() -> None:
    task = locked(task_in(S.FUNDED), WORKER)
    task, _ = apply(task, sample_command(c.Claim, WORKER, task.updated_at + 1))
    assert state_of(task, WORKER) is D.HELD
    for cls, actor in [(c.SubmitProof, WORKER), (c.Approve, EMPLOYER)]:
        task, _ = apply(task, sample_command(cls, actor, task.updated_at + 1))
    task, events = apply(task, sample_command(c.CompleteRelease, SYSTEM, task.updated_at + 1))
    assert [type(ev) for ev in events] == [e.ReleaseCompleted, e.DepositReturnOrdered]
    assert task.state is S.PAID
    assert state_of(task, WORKER) is D.RETURNING
    deposit = task.deposit_of(WORKER)
    assert deposit is not None and deposit.pending_action == "return"


def test_claiming_without_proof_by_the_deadline_forfeits_to_the_employer() -> None:
    task = locked(task_in(S.FUNDED), WORKER)
    task, _ = apply(task, sample_command(c.Claim, WORKER, task.updated_at + 1))
    task, events = apply(task, c.Tick(actor=SYSTEM, at=DEADLINE + 1))
    assert [type(ev) for ev in events] == [e.RefundOrdered, e.DepositForfeited]
    deposit = task.deposit_of(WORKER)
    assert deposit is not None
    assert (deposit.state, deposit.beneficiary) == (D.FORFEIT, EMPLOYER)
    assert deposit.pending_action is None  # waits for the employer's invoice
    task = drive_to_settlement(task, DEADLINE + 2)
    assert task.state is S.REFUNDED
    assert state_of(task, WORKER) is D.FORFEIT  # the task's end does not return a forfeit


def test_a_rejected_worker_is_not_an_abandoning_one() -> None:
    task = locked(task_in(S.FUNDED), WORKER)
    for cls, actor in [(c.Claim, WORKER), (c.SubmitProof, WORKER), (c.Reject, EMPLOYER)]:
        task, _ = apply(task, sample_command(cls, actor, task.updated_at + 1))
    task, events = apply(task, c.Tick(actor=SYSTEM, at=DEADLINE + 10**6))
    assert e.DepositForfeited not in [type(ev) for ev in events]
    task = drive_to_settlement(task, DEADLINE + 10**6 + 1)
    assert state_of(task, WORKER) is D.RETURNING


def test_a_silent_employer_forfeits_to_the_worker() -> None:
    task, _ = apply(task_in(S.DRAFT), request(task_in(S.DRAFT), EMPLOYER))
    deposit = task.deposit_of(EMPLOYER)
    assert deposit is not None and deposit.role == "employer"
    task = locked(task_in(S.DRAFT), EMPLOYER)
    for cls, actor in [
        (c.RequestFunding, EMPLOYER),
        (c.ConfirmFunding, SYSTEM),
        (c.Claim, WORKER),
        (c.SubmitProof, WORKER),
    ]:
        task, _ = apply(task, sample_command(cls, actor, task.updated_at + 1))
    assert task.submitted_at is not None
    task, events = apply(task, c.Tick(actor=SYSTEM, at=task.submitted_at + task.review_window_s))
    assert [type(ev) for ev in events] == [e.ReviewWindowElapsed, e.DepositForfeited]
    forfeit = task.deposit_of(EMPLOYER)
    assert forfeit is not None and forfeit.beneficiary == WORKER


def test_an_approving_employer_keeps_the_deposit() -> None:
    task = locked(task_in(S.DRAFT), EMPLOYER)
    for cls, actor in [
        (c.RequestFunding, EMPLOYER),
        (c.ConfirmFunding, SYSTEM),
        (c.Claim, WORKER),
        (c.SubmitProof, WORKER),
        (c.Approve, EMPLOYER),
        (c.CompleteRelease, SYSTEM),
    ]:
        task, _ = apply(task, sample_command(cls, actor, task.updated_at + 1))
    assert state_of(task, EMPLOYER) is D.RETURNING


def test_other_deposits_are_returned_when_one_worker_claims() -> None:
    task = locked(locked(task_in(S.FUNDED), WORKER), WORKER2)
    task, _ = apply(task, request(task, STRANGER))  # asked, never paid
    task, events = apply(task, sample_command(c.Claim, WORKER, task.updated_at + 1))
    returned = {ev.depositor for ev in events if isinstance(ev, e.DepositReturnOrdered)}
    assert returned == {WORKER2, STRANGER}
    assert state_of(task, WORKER) is D.HELD


def test_who_may_lock_a_deposit_and_when() -> None:
    funded = task_in(S.FUNDED)
    late = refusal(funded, request(funded, EMPLOYER))
    assert (type(late), late.code) == (Conflict, "wrong_state")
    draft = task_in(S.DRAFT)
    early = refusal(draft, request(draft, WORKER))
    assert (type(early), early.code) == (Conflict, "wrong_state")
    arbiter = refusal(funded, request(funded, ARBITER))
    assert (type(arbiter), arbiter.code) == (Forbidden, "wrong_role")
    claimed = task_in(S.CLAIMED)
    assert refusal(claimed, request(claimed, WORKER)).code == "wrong_role"
    assert refusal(funded, request(funded, WORKER, at=DEADLINE)).code == "deadline_passed"
    held = locked(funded, WORKER)
    assert refusal(held, request(held, WORKER)).code == "deposit_exists"
    wrong_round = request(funded, WORKER)
    assert (
        refusal(funded, c.RequestDeposit(**{**_fields(wrong_round), "round": 3})).code
        == "wrong_round"
    )
    paid = drive_to_settlement(task_in(S.VERIFIED), DEADLINE)
    assert refusal(paid, request(paid, STRANGER)).code == "task_closed"


def _fields(command: c.Command) -> dict[str, object]:
    return {name: getattr(command, name) for name in command.__dataclass_fields__}


def test_only_the_beneficiary_sends_the_payout_invoice_and_the_preimage_must_match() -> None:
    task = locked(task_in(S.FUNDED), WORKER)
    task, _ = apply(task, sample_command(c.Claim, WORKER, task.updated_at + 1))
    task, _ = apply(task, c.Tick(actor=SYSTEM, at=DEADLINE + 1))
    send = c.RequestDepositPayout(
        actor=WORKER, at=DEADLINE + 2, depositor=WORKER, payout_request="lnbcrt1"
    )
    assert refusal(task, send).code == "wrong_role"
    deposit_hash = hash_of(WORKER)
    early = c.CompleteDepositPayout(
        actor=SYSTEM,
        at=DEADLINE + 2,
        payment_hash_hex=deposit_hash,
        preimage_hex=preimage_of(WORKER),
        payout_payment_hash_hex="33" * 32,
        payout_fee_msat=0,
    )
    assert refusal(task, early).code == "no_payout_invoice"
    task, _ = apply(task, c.RequestDepositPayout(**{**_fields(send), "actor": EMPLOYER}))
    deposit = task.deposit_of(WORKER)
    assert deposit is not None and deposit.pending_action == "payout"
    wrong = c.CompleteDepositPayout(**{**_fields(early), "preimage_hex": "00" * 32})
    assert isinstance(refusal(task, wrong), Invalid)
    task, events = apply(task, early)
    assert [type(ev) for ev in events] == [e.DepositPaidOut]
    assert state_of(task, WORKER) is D.PAID_OUT
    assert decide(task, early, ARBITERS) == []  # a replay after a crash changes nothing


def test_a_deposit_near_its_hold_expiry_is_returned_even_when_forfeit() -> None:
    task = locked(task_in(S.FUNDED), WORKER)
    task, _ = apply(task, sample_command(c.Claim, WORKER, task.updated_at + 1))
    task, _ = apply(task, c.Tick(actor=SYSTEM, at=DEADLINE + 1))
    expiring = c.DepositExpiring(
        actor=SYSTEM, at=DEADLINE + 5, payment_hash_hex=hash_of(WORKER), blocks_left=3
    )
    task, events = apply(task, expiring)
    assert [type(ev) for ev in events] == [e.DepositReturnOrdered]
    done = c.CompleteDepositReturn(
        actor=SYSTEM, at=DEADLINE + 6, payment_hash_hex=hash_of(WORKER), invoice_state="CANCELED"
    )
    task, _ = apply(task, done)
    assert state_of(task, WORKER) is D.RETURNED
    assert decide(task, done, ARBITERS) == []


def test_node_facts_come_only_from_taskhold_itself() -> None:
    task, _ = apply(task_in(S.FUNDED), request(task_in(S.FUNDED), WORKER))
    forged = c.ConfirmDeposit(
        actor=WORKER,
        at=task.updated_at + 1,
        payment_hash_hex=hash_of(WORKER),
        expiry_height=900,
        amount_paid_msat=5_000,
    )
    assert refusal(task, forged).code == "wrong_role"
    short = c.ConfirmDeposit(**{**_fields(forged), "actor": SYSTEM, "amount_paid_msat": 4_999})
    assert refusal(task, short).code == "underpaid"
    unknown = c.ConfirmDeposit(**{**_fields(forged), "actor": SYSTEM, "payment_hash_hex": "0" * 64})
    assert refusal(task, unknown).code == "no_such_deposit"


def test_a_returned_unpaid_deposit_can_be_asked_for_again_with_a_new_hash() -> None:
    task, _ = apply(task_in(S.FUNDED), request(task_in(S.FUNDED), WORKER))
    gone = c.DepositInvoiceCancelled(
        actor=SYSTEM, at=task.updated_at + 1, payment_hash_hex=hash_of(WORKER)
    )
    task, _ = apply(task, gone)
    assert state_of(task, WORKER) is D.RETURNED
    task, _ = apply(task, request(task, WORKER))
    again = task.deposit_of(WORKER)
    assert again is not None and (again.round, again.state) == (1, D.OPEN)
    assert again.payment_hash_hex == hash_of(WORKER, 1)
    late = c.ConfirmDeposit(
        actor=SYSTEM,
        at=task.updated_at + 1,
        payment_hash_hex=hash_of(WORKER, 0),
        expiry_height=900,
        amount_paid_msat=5_000,
    )
    assert decide(task, late, ARBITERS) == []  # the old round is over


def test_a_pledged_task_is_funded_only_once_the_employer_deposit_is_held() -> None:
    pledged = task_in(S.DRAFT)
    pledged = Task(**{**_fields_of_task(pledged), "deposit_pledged": True})
    fund = sample_command(c.RequestFunding, EMPLOYER, pledged.updated_at + 1)
    assert refusal(pledged, fund).code == "deposit_required"
    held = locked(pledged, EMPLOYER)
    task, _ = apply(held, sample_command(c.RequestFunding, EMPLOYER, held.updated_at + 1))
    assert task.state is S.PENDING_FUNDING


def _fields_of_task(task: Task) -> dict[str, object]:
    return {name: getattr(task, name) for name in task.__dataclass_fields__}


def test_a_claim_may_only_shorten_the_review_window() -> None:
    funded = task_in(S.FUNDED)
    shorter = c.Claim(actor=WORKER, at=funded.updated_at + 1, review_window_s=REVIEW_WINDOW // 2)
    task, _ = apply(funded, shorter)
    assert task.review_window_s == REVIEW_WINDOW // 2
    longer = c.Claim(actor=WORKER, at=funded.updated_at + 1, review_window_s=REVIEW_WINDOW + 1)
    assert refusal(funded, longer).code == "bad_review_window"
    kept, _ = apply(funded, c.Claim(actor=WORKER, at=funded.updated_at + 1))
    assert kept.review_window_s == REVIEW_WINDOW


def test_deposit_histories_replay_to_the_same_task() -> None:
    task, history = apply(None, create_command())
    at = T0
    steps: list[c.Command] = [
        sample_command(c.RequestFunding, EMPLOYER, at + 1),
        sample_command(c.ConfirmFunding, SYSTEM, at + 2),
    ]
    for command in steps:
        task, events = apply(task, command)
        history += events
    for command in [
        request(task, WORKER, at=at + 3),
        c.ConfirmDeposit(
            actor=SYSTEM,
            at=at + 4,
            payment_hash_hex=hash_of(WORKER),
            expiry_height=900,
            amount_paid_msat=5_000,
        ),
        sample_command(c.Claim, WORKER, at + 5),
        c.Tick(actor=SYSTEM, at=DEADLINE + 1),
    ]:
        task, events = apply(task, command)
        history += events
    assert replay(history) == task
    assert state_of(task, WORKER) is D.FORFEIT
    assert task.version == len(history)
