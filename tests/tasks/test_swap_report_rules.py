"""The swap-report rules (``taskhold.tasks.swap_reports``): only the employer reports the funding
swap and only the worker the payout swap, a recorded txid never changes, a swap is claimed or
refunded, a repeat adds nothing, a task takes a bounded number of swaps, and facts still arrive
after the task closed."""

from __future__ import annotations

import dataclasses

import pytest
from support.task_builders import (
    ARBITER,
    ARBITERS,
    EMPLOYER,
    STRANGER,
    SYSTEM,
    WORKER,
    apply,
    drive_to_settlement,
    task_in,
)

from taskhold.errors import Conflict, Forbidden, Invalid, Refusal
from taskhold.tasks import Task, TaskState, decide, evolve
from taskhold.tasks import commands as c
from taskhold.tasks import events as e
from taskhold.tasks.swap_reports import MAX_SWAPS_PER_ROLE, SWAP_RULES

S = TaskState
AT = 2_000_000_000
API = "https://boltz.example/v2"
LOCKUP, CLAIM, REFUND = "a1" * 32, "c1" * 32, "e1" * 32


def report(
    actor: str = EMPLOYER, role: str = "funding", swap_id: str = "swapF1", **facts: str
) -> c.ReportSwap:
    return c.ReportSwap(actor=actor, at=AT, role=role, swap_id=swap_id, swap_api=API, **facts)


def refused(task: Task | None, command: c.Command) -> Refusal:
    with pytest.raises(Refusal) as caught:
        decide(task, command, ARBITERS)
    return caught.value


# --- hostile first ------------------------------------------------------------------------


@pytest.mark.parametrize("actor", [STRANGER, WORKER, ARBITER, SYSTEM])
def test_only_the_employer_reports_the_funding_swap(actor: str) -> None:
    problem = refused(task_in(S.VERIFIED), report(actor, lockup_txid=LOCKUP))
    assert isinstance(problem, Forbidden) and problem.code == "wrong_role"


@pytest.mark.parametrize("actor", [STRANGER, EMPLOYER, ARBITER, SYSTEM])
def test_only_the_worker_reports_the_payout_swap(actor: str) -> None:
    problem = refused(task_in(S.VERIFIED), report(actor, "payout", "swapP1", claim_txid=CLAIM))
    assert isinstance(problem, Forbidden) and problem.code == "wrong_role"


def test_a_recorded_txid_never_changes() -> None:
    task, _ = apply(task_in(S.FUNDED), report(lockup_txid=LOCKUP))
    problem = refused(task, report(lockup_txid="a2" * 32))
    assert isinstance(problem, Conflict) and problem.code == "swap_fact_conflict"
    assert task.swaps[0].lockup_txid == LOCKUP


def test_a_swap_is_claimed_or_refunded_never_both() -> None:
    problem = refused(task_in(S.FUNDED), report(claim_txid=CLAIM, refund_txid=REFUND))
    assert problem.code == "swap_fact_conflict"
    task, _ = apply(task_in(S.FUNDED), report(lockup_txid=LOCKUP, refund_txid=REFUND))
    problem = refused(task, report(claim_txid=CLAIM))
    assert isinstance(problem, Conflict) and problem.code == "swap_fact_conflict"


def test_a_known_swap_keeps_its_api() -> None:
    task, _ = apply(task_in(S.FUNDED), report(lockup_txid=LOCKUP))
    moved = dataclasses.replace(report(refund_txid=REFUND), swap_api="https://other.example")
    assert refused(task, moved).code == "swap_fact_conflict"


def test_a_task_takes_a_bounded_number_of_swaps_per_role() -> None:
    task = task_in(S.VERIFIED)
    for n in range(MAX_SWAPS_PER_ROLE):
        task, _ = apply(task, report(swap_id=f"spam{n}"))
    problem = refused(task, report(swap_id="spam-more"))
    assert isinstance(problem, Conflict) and problem.code == "too_many_swaps"
    # the employer's spam takes nothing from the worker's swaps, nor from facts on known ones
    task, _ = apply(task, report(WORKER, "payout", "swapP1"))
    task, events = apply(task, report(swap_id="spam0", lockup_txid=LOCKUP))
    assert len(events) == 1 and len(task.swaps) == MAX_SWAPS_PER_ROLE + 1


def test_a_closed_task_takes_facts_but_still_caps_them() -> None:
    paid = drive_to_settlement(task_in(S.VERIFIED), AT)
    assert paid.state is S.PAID
    task, events = apply(paid, report(WORKER, "payout", "swapP1", claim_txid=CLAIM))
    assert [type(ev) for ev in events] == [e.SwapReported] and task.state is S.PAID
    for n in range(1, MAX_SWAPS_PER_ROLE):
        task, _ = apply(task, report(WORKER, "payout", f"swapP{n + 1}"))
    assert refused(task, report(WORKER, "payout", "swapP9")).code == "too_many_swaps"
    refunded = task_in(S.REFUNDED)
    task, events = apply(refunded, report(refund_txid=REFUND))
    assert task.swaps[0].refund_txid == REFUND and task.state is S.REFUNDED


@pytest.mark.parametrize(
    "change",
    [
        {"lockup_txid": "A1" * 32},  # upper case
        {"lockup_txid": "a1" * 31},  # short
        {"claim_txid": "zz" * 32},
        {"refund_txid": ""},
        {"swap_id": ""},
        {"swap_id": "x" * 65},
        {"swap_id": "a b"},
        {"swap_api": "http://boltz.example/v2"},  # http off loopback
        {"swap_api": "ftp://boltz.example"},
        {"swap_api": "https://user:pw@boltz.example"},
        {"swap_api": "not a url"},
        {"role": "bribe"},
    ],
)
def test_malformed_reports_are_invalid(change: dict[str, str]) -> None:
    command = dataclasses.replace(report(lockup_txid=LOCKUP), **change)
    problem = refused(task_in(S.FUNDED), command)
    assert isinstance(problem, Invalid) and problem.code == "bad_swap_report"


def test_funding_is_reported_only_once_a_hold_invoice_exists() -> None:
    problem = refused(task_in(S.DRAFT), report(lockup_txid=LOCKUP))
    assert isinstance(problem, Conflict) and problem.code == "wrong_state"
    task, _ = apply(task_in(S.PENDING_FUNDING), report(lockup_txid=LOCKUP))
    assert task.swaps[0].reporter == EMPLOYER


@pytest.mark.parametrize("state", [S.FUNDED, S.CLAIMED, S.SUBMITTED, S.DISPUTED])
def test_payout_is_reported_only_once_verified(state: TaskState) -> None:
    task = task_in(state)
    actor = task.worker_pubkey or STRANGER
    problem = refused(task, report(actor, "payout", "swapP1"))
    assert problem.code in ("wrong_state", "wrong_role")
    if task.worker_pubkey is not None:
        assert isinstance(problem, Conflict) and problem.code == "wrong_state"


def test_no_task_no_report() -> None:
    assert refused(None, report()).code == "no_such_task"


# --- what a report records -----------------------------------------------------------------


def test_the_same_report_again_decides_to_nothing() -> None:
    task, _ = apply(task_in(S.FUNDED), report(lockup_txid=LOCKUP))
    assert decide(task, report(lockup_txid=LOCKUP), ARBITERS) == []
    assert decide(task, report(), ARBITERS) == []  # the bare swap id adds nothing either


def test_facts_accumulate_on_one_record() -> None:
    task, _ = apply(task_in(S.FUNDED), report())
    later = dataclasses.replace(report(lockup_txid=LOCKUP), at=AT + 5)
    task, _ = apply(task, later)
    task, _ = apply(task, dataclasses.replace(report(refund_txid=REFUND), at=AT + 9))
    [swap] = task.swaps
    assert (swap.lockup_txid, swap.claim_txid, swap.refund_txid) == (LOCKUP, None, REFUND)
    assert (swap.first_reported_at, swap.last_reported_at) == (AT, AT + 9)
    assert (swap.role, swap.swap_id, swap.swap_api, swap.reporter) == (
        "funding",
        "swapF1",
        API,
        EMPLOYER,
    )


def test_replay_rebuilds_the_swaps() -> None:
    task = task_in(S.VERIFIED)
    history: list[e.Event] = []
    for command in [
        report(lockup_txid=LOCKUP),
        report(WORKER, "payout", "swapP1", lockup_txid="b1" * 32),
        report(WORKER, "payout", "swapP1", claim_txid=CLAIM),
    ]:
        task, events = apply(task, command)
        history += events
    rebuilt = task_in(S.VERIFIED)
    for event in history:
        rebuilt = evolve(rebuilt, event)
    assert rebuilt == task
    assert [s.role for s in task.swaps] == ["funding", "payout"]


def test_the_rules_name_both_roles() -> None:
    assert set(SWAP_RULES) == {"funding", "payout"}
