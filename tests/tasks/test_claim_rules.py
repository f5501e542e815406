"""Claim modes (open, apply, direct) and claim discipline (claim timeout, unclaim, revoke), as
the state machine decides them, with what they do to a worker's deposit."""

from __future__ import annotations

import pytest
from support.task_builders import (
    ARBITERS,
    DEADLINE,
    EMPLOYER,
    STRANGER,
    SYSTEM,
    T0,
    WORKER,
    WORKER2,
    apply,
    create_command,
    sample_command,
)

from taskhold.errors import Refusal, RefusalCode
from taskhold.tasks import Task, TaskState, decide, replay
from taskhold.tasks import commands as c
from taskhold.tasks import events as e
from taskhold.tasks.model import DepositState

S = TaskState
TIMEOUT = 600


def funded(**terms: object) -> Task:
    task, _ = apply(None, create_command(**terms))  # type: ignore[arg-type]
    task, _ = apply(task, sample_command(c.RequestFunding, EMPLOYER, T0 + 1))
    task, _ = apply(task, sample_command(c.ConfirmFunding, SYSTEM, T0 + 2))
    return task


def claimed(worker: str = WORKER, at: int = T0 + 10) -> Task:
    task, _ = apply(funded(claim_timeout_s=TIMEOUT), c.Claim(actor=worker, at=at))
    return task


def refused(task: Task, command: c.Command) -> RefusalCode:
    with pytest.raises(Refusal) as caught:
        decide(task, command, ARBITERS)
    return caught.value.code


# --- creation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "code"),
    [
        ({"claim_mode": "first"}, RefusalCode.BAD_CLAIM_MODE),
        ({"claim_mode": "direct"}, RefusalCode.BAD_CLAIM_MODE),
        ({"claim_mode": "open", "direct_worker": WORKER}, RefusalCode.BAD_CLAIM_MODE),
        ({"claim_mode": "apply", "direct_worker": WORKER}, RefusalCode.BAD_CLAIM_MODE),
        ({"claim_mode": "direct", "direct_worker": EMPLOYER}, RefusalCode.BAD_CLAIM_MODE),
        ({"claim_timeout_s": 0}, RefusalCode.BAD_CLAIM_TIMEOUT),
        ({"claim_timeout_s": DEADLINE - T0 + 1}, RefusalCode.BAD_CLAIM_TIMEOUT),
    ],
)
def test_create_refuses_claim_terms_that_do_not_fit(terms: dict[str, object], code: str) -> None:
    with pytest.raises(Refusal) as caught:
        decide(None, create_command(**terms), ARBITERS)  # type: ignore[arg-type]
    assert caught.value.code == code


def test_claim_terms_are_in_the_created_event_and_the_task() -> None:
    command = create_command(claim_mode="direct", direct_worker=WORKER, claim_timeout_s=TIMEOUT)
    task, [created] = apply(None, command)
    assert isinstance(created, e.TaskCreated)
    assert (created.claim_mode, created.direct_worker, created.claim_timeout_s) == (
        "direct",
        WORKER,
        TIMEOUT,
    )
    assert (task.claim_mode, task.direct_worker, task.claim_timeout_s) == (
        "direct",
        WORKER,
        TIMEOUT,
    )


def test_an_event_from_before_claim_modes_folds_to_an_open_task_without_timeout() -> None:
    data = e.event_to_dict(e.TaskCreated(**{f: getattr(create_command(), f) for f in _OLD}))
    for name in ("claim_mode", "direct_worker", "claim_timeout_s"):
        del data[name]
    task = replay([e.event_from_dict(data)])
    assert task is not None
    assert (task.claim_mode, task.direct_worker, task.claim_timeout_s) == ("open", None, None)
    assert (task.applicants, task.barred_workers) == ((), ())


_OLD = [
    name
    for name in c.CreateTask.__dataclass_fields__
    if name not in ("claim_mode", "direct_worker", "claim_timeout_s")
]


# --- direct --------------------------------------------------------------------------------


def test_a_direct_task_refuses_every_other_key() -> None:
    task = funded(claim_mode="direct", direct_worker=WORKER2)
    for key in (WORKER, STRANGER):
        assert refused(task, c.Claim(actor=key, at=T0 + 5)) == RefusalCode.DIRECT_WORKER_ONLY
        assert refused(task, sample_command(c.Apply, key, T0 + 5)) == RefusalCode.NOT_APPLY_MODE
        assign = c.Assign(actor=EMPLOYER, at=T0 + 5, worker_pubkey=key)
        assert refused(task, assign) == RefusalCode.NOT_APPLY_MODE
    task, [claim] = apply(task, c.Claim(actor=WORKER2, at=T0 + 5))
    assert isinstance(claim, e.TaskClaimed) and task.worker_pubkey == WORKER2


# --- apply ---------------------------------------------------------------------------------


def test_an_apply_task_takes_applications_and_one_assignment() -> None:
    task = funded(claim_mode="apply")
    assert refused(task, c.Claim(actor=WORKER, at=T0 + 5)) == RefusalCode.APPLY_ONLY
    assign = c.Assign(actor=EMPLOYER, at=T0 + 5, worker_pubkey=WORKER)
    assert refused(task, assign) == RefusalCode.NOT_AN_APPLICANT
    task, [filed] = apply(task, c.Apply(actor=WORKER, at=T0 + 5, note=" done it before "))
    assert isinstance(filed, e.ApplicationFiled) and filed.note == "done it before"
    again = c.Apply(actor=WORKER, at=T0 + 6, note="please")
    assert refused(task, again) == RefusalCode.ALREADY_APPLIED
    blank = c.Apply(actor=WORKER2, at=T0 + 6, note="  ")
    assert refused(task, blank) == RefusalCode.REASON_REQUIRED
    task, _ = apply(task, c.Apply(actor=WORKER2, at=T0 + 6, note="me too"))
    assert task.applicants == (WORKER, WORKER2)
    by_worker = c.Assign(actor=WORKER, at=T0 + 7, worker_pubkey=WORKER)
    assert refused(task, by_worker) == RefusalCode.WRONG_ROLE
    task, [assigned] = apply(task, c.Assign(actor=EMPLOYER, at=T0 + 7, worker_pubkey=WORKER2))
    assert isinstance(assigned, e.WorkerAssigned)
    assert (task.state, task.worker_pubkey, task.claimed_at) == (S.CLAIMED, WORKER2, T0 + 7)
    second = c.Assign(actor=EMPLOYER, at=T0 + 8, worker_pubkey=WORKER)
    assert refused(task, second) == RefusalCode.WRONG_STATE


def test_applications_are_capped_per_task() -> None:
    task = funded(claim_mode="apply")
    task, _ = apply(task, c.Apply(actor=WORKER, at=T0 + 5, note="1", max_applications=2))
    task, _ = apply(task, c.Apply(actor=WORKER2, at=T0 + 5, note="2", max_applications=2))
    third = c.Apply(actor=STRANGER, at=T0 + 5, note="3", max_applications=2)
    assert refused(task, third) == RefusalCode.TOO_MANY_APPLICATIONS


def test_an_employer_cannot_apply_to_their_own_task() -> None:
    task = funded(claim_mode="apply")
    assert refused(task, sample_command(c.Apply, EMPLOYER, T0 + 5)) == RefusalCode.WRONG_ROLE


# --- unclaim and revoke --------------------------------------------------------------------


def test_a_worker_unclaims_and_is_barred_for_good() -> None:
    task = claimed()
    assert refused(task, c.Unclaim(actor=EMPLOYER, at=T0 + 11)) == RefusalCode.WRONG_ROLE
    task, [released] = apply(task, c.Unclaim(actor=WORKER, at=T0 + 11))
    assert released == e.ClaimReleased(at=T0 + 11, actor=WORKER, worker_pubkey=WORKER)
    assert (task.state, task.worker_pubkey, task.claimed_at) == (S.FUNDED, None, None)
    assert task.barred_workers == (WORKER,)
    assert refused(task, c.Claim(actor=WORKER, at=T0 + 12)) == RefusalCode.BARRED_WORKER
    task, _ = apply(task, c.Claim(actor=WORKER2, at=T0 + 12))
    assert task.worker_pubkey == WORKER2


def test_revoke_waits_for_the_claim_timeout() -> None:
    task = claimed(at=T0 + 10)
    early = c.RevokeClaim(actor=EMPLOYER, at=T0 + 10 + TIMEOUT - 1, reason="slow")
    assert refused(task, early) == RefusalCode.CLAIM_TIMEOUT_RUNNING
    by_stranger = c.RevokeClaim(actor=STRANGER, at=T0 + 10 + TIMEOUT, reason="")
    assert refused(task, by_stranger) == RefusalCode.WRONG_ROLE
    task, [revoked] = apply(task, c.RevokeClaim(actor=EMPLOYER, at=T0 + 10 + TIMEOUT, reason=""))
    assert isinstance(revoked, e.ClaimRevoked) and revoked.worker_pubkey == WORKER
    assert revoked.reason == "no proof within the claim timeout"
    assert (task.state, task.worker_pubkey, task.barred_workers) == (S.FUNDED, None, (WORKER,))
    assert task.refund_ordered_reason is None, "a revocation refunds nothing"


def test_a_task_without_a_claim_timeout_is_never_revoked() -> None:
    task, _ = apply(funded(), c.Claim(actor=WORKER, at=T0 + 10))
    late = c.RevokeClaim(actor=EMPLOYER, at=DEADLINE - 1, reason="slow")
    assert refused(task, late) == RefusalCode.CLAIM_TIMEOUT_RUNNING


@pytest.mark.parametrize("rejected", [False, True])
def test_a_worker_who_sent_a_proof_is_neither_revoked_nor_released(rejected: bool) -> None:
    task = claimed(at=T0 + 10)
    task, _ = apply(task, sample_command(c.SubmitProof, WORKER, T0 + 11))
    if rejected:  # back to CLAIMED: a rejection is a dispute path, never a revocation
        task, _ = apply(task, sample_command(c.Reject, EMPLOYER, T0 + 12))
        assert task.state is S.CLAIMED
    late = T0 + 10 + TIMEOUT + 1
    revoke = c.RevokeClaim(actor=EMPLOYER, at=late, reason="slow")
    expected = RefusalCode.PROOF_ON_RECORD if rejected else RefusalCode.WRONG_STATE
    assert refused(task, revoke) == expected
    assert refused(task, c.Unclaim(actor=WORKER, at=late)) == expected


@pytest.mark.parametrize("how", ["unclaim", "revoke"])
def test_a_released_worker_cannot_come_back_by_any_path(how: str) -> None:
    task = funded(claim_mode="apply", claim_timeout_s=TIMEOUT)
    task, _ = apply(task, c.Apply(actor=WORKER, at=T0 + 5, note="me"))
    task, _ = apply(task, c.Assign(actor=EMPLOYER, at=T0 + 6, worker_pubkey=WORKER))
    if how == "unclaim":
        task, _ = apply(task, c.Unclaim(actor=WORKER, at=T0 + 7))
    else:
        task, _ = apply(task, c.RevokeClaim(actor=EMPLOYER, at=T0 + 6 + TIMEOUT, reason="x"))
    at = T0 + 6 + TIMEOUT + 1
    assign = c.Assign(actor=EMPLOYER, at=at, worker_pubkey=WORKER)
    assert refused(task, assign) == RefusalCode.BARRED_WORKER
    assert refused(task, c.Apply(actor=WORKER, at=at, note="again")) == RefusalCode.BARRED_WORKER


# --- deposits ------------------------------------------------------------------------------


def with_held_deposit(task: Task, worker: str) -> Task:
    task, _ = apply(
        task,
        c.RequestDeposit(
            actor=worker,
            at=T0 + 3,
            round=0,
            amount_msat=5_000,
            payment_hash_hex="55" * 32,
            payment_request="lnbcrt50n1deposit",
            cltv_expiry_delta=200,
            invoice_expires_at=T0 + 3_600,
        ),
    )
    task, _ = apply(
        task,
        c.ConfirmDeposit(
            actor=SYSTEM,
            at=T0 + 4,
            payment_hash_hex="55" * 32,
            expiry_height=900,
            amount_paid_msat=5_000,
        ),
    )
    return task


def deposit_after(command_at: int, command: type[c.Command]) -> tuple[DepositState, str | None]:
    task = with_held_deposit(funded(claim_timeout_s=TIMEOUT), WORKER)
    task, _ = apply(task, c.Claim(actor=WORKER, at=T0 + 10))
    if command is c.Unclaim:
        task, _ = apply(task, c.Unclaim(actor=WORKER, at=command_at))
    else:
        task, _ = apply(task, c.RevokeClaim(actor=EMPLOYER, at=command_at, reason="late"))
    deposit = task.deposit_of(WORKER)
    assert deposit is not None
    return deposit.state, deposit.beneficiary


def test_unclaiming_before_the_timeout_returns_the_deposit() -> None:
    assert deposit_after(T0 + 11, c.Unclaim) == (DepositState.RETURNING, None)


def test_unclaiming_after_the_timeout_forfeits_the_deposit_like_a_revocation() -> None:
    late = T0 + 10 + TIMEOUT
    assert deposit_after(late, c.Unclaim) == (DepositState.FORFEIT, EMPLOYER)
    assert deposit_after(late, c.RevokeClaim) == (DepositState.FORFEIT, EMPLOYER)
