"""The milestone rules of the task machine (``taskhold.tasks.milestones``), pure: a milestone's
series fields fit together, taskhold alone opens its funding, nobody claims a later milestone
(the series' worker is assigned), and a waiting one is cancelled without money."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from support.task_builders import (
    ARBITERS,
    DEADLINE,
    EMPLOYER,
    PAYMENT_HASH,
    STRANGER,
    SYSTEM,
    T0,
    WORKER,
    WORKER2,
    apply,
    create_command,
)

from taskhold.errors import Refusal
from taskhold.tasks import Task, TaskState, decide
from taskhold.tasks import commands as c
from taskhold.tasks.milestones import milestone_task_id

SERIES = "5" * 64

S = TaskState


def milestone(index: int, *, mode: str = "sequential", **change: Any) -> Task:
    fields: dict[str, Any] = {
        "task_id": milestone_task_id(SERIES, index),
        "series_id": SERIES,
        "milestone_index": index,
        "milestone_count": 3,
        "funding_mode": mode,
        "claim_mode": "series" if index else "open",
    }
    fields.update(change)
    task, _ = apply(None, dataclasses.replace(create_command(), **fields))
    return task


def opened(task: Task, at: int = T0 + 1) -> Task:
    command = c.OpenMilestone(
        actor=SYSTEM,
        at=at,
        funding_round=1,
        payment_hash_hex=PAYMENT_HASH,
        payment_request="lnbcrt1milestone",
        cltv_expiry_delta=400,
        invoice_expires_at=at + 600,
    )
    return apply(task, command)[0]


def funded(task: Task) -> Task:
    confirm = c.ConfirmFunding(
        actor=SYSTEM, at=T0 + 2, accepted_htlc_expiry_height=900, amount_paid_msat=100_000
    )
    return apply(opened(task), confirm)[0]


def refusal(task: Task | None, command: c.Command) -> Refusal:
    with pytest.raises(Refusal) as caught:
        decide(task, command, ARBITERS)
    return caught.value


def test_a_milestone_carries_its_series_and_waits_in_draft() -> None:
    later = milestone(1)
    assert (later.series_id, later.milestone_index, later.milestone_count) == (SERIES, 1, 3)
    assert later.state is S.DRAFT and later.waits_for_previous_milestone
    assert not milestone(0).waits_for_previous_milestone
    assert not milestone(1, mode="upfront").waits_for_previous_milestone
    assert not apply(None, create_command())[0].waits_for_previous_milestone


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"task_id": "f" * 64}, "bad_milestones"),  # not the id derived from series and index
        ({"milestone_index": 3}, "bad_milestones"),
        ({"milestone_count": None}, "bad_milestones"),
        ({"funding_mode": "lazy"}, "bad_milestones"),
        ({"series_id": None}, "bad_milestones"),
    ],
)
def test_series_fields_must_fit_together(change: dict[str, Any], code: str) -> None:
    fields: dict[str, Any] = {
        "task_id": milestone_task_id(SERIES, 1),
        "series_id": SERIES,
        "milestone_index": 1,
        "milestone_count": 3,
        "funding_mode": "sequential",
    }
    fields.update(change)
    assert refusal(None, dataclasses.replace(create_command(), **fields)).code == code


def test_claim_mode_series_is_for_later_milestones_only() -> None:
    lone = dataclasses.replace(create_command(), claim_mode="series")
    assert refusal(None, lone).code == "bad_claim_mode"
    first = dataclasses.replace(
        create_command(),
        task_id=SERIES,
        series_id=SERIES,
        milestone_index=0,
        milestone_count=2,
        funding_mode="upfront",
        claim_mode="series",
    )
    assert refusal(None, first).code == "bad_claim_mode"


def test_the_employer_cannot_fund_a_milestone_taskhold_opens() -> None:
    fund = c.RequestFunding(
        actor=EMPLOYER,
        at=T0 + 1,
        funding_round=1,
        payment_hash_hex=PAYMENT_HASH,
        payment_request="lnbcrt1early",
        cltv_expiry_delta=400,
        invoice_expires_at=T0 + 600,
    )
    for index in (0, 1):
        assert refusal(milestone(index), fund).code == "milestone_funded_by_series"


def test_only_taskhold_opens_a_milestone_and_only_a_milestone() -> None:
    task = opened(milestone(1))
    assert task.state is S.PENDING_FUNDING and task.funding_round == 1
    draft = milestone(1)
    for actor in (EMPLOYER, WORKER, STRANGER):
        forged = c.OpenMilestone(
            actor=actor,
            at=T0 + 1,
            funding_round=1,
            payment_hash_hex=PAYMENT_HASH,
            payment_request="lnbcrt1x",
            cltv_expiry_delta=400,
            invoice_expires_at=T0 + 600,
        )
        assert refusal(draft, forged).code == "wrong_role"
    lone = apply(None, create_command())[0]
    assert refusal(lone, dataclasses.replace(forged, actor=SYSTEM)).code == "wrong_state"


def test_nobody_claims_a_later_milestone_and_the_series_worker_is_assigned() -> None:
    task = funded(milestone(1))
    for actor in (WORKER, WORKER2, STRANGER):
        assert refusal(task, c.Claim(actor=actor, at=T0 + 3)).code == "series_worker_only"
    assert task.awaits_series_worker
    assigned, events = apply(
        task, c.AssignSeriesWorker(actor=SYSTEM, at=T0 + 3, worker_pubkey=WORKER)
    )
    assert assigned.state is S.CLAIMED and assigned.worker_pubkey == WORKER
    assert events[0].actor == SYSTEM and not assigned.awaits_series_worker
    # the employer cannot do it, nor can taskhold assign the employer or after the deadline
    by_employer = c.AssignSeriesWorker(actor=EMPLOYER, at=T0 + 3, worker_pubkey=WORKER)
    assert refusal(task, by_employer).code == "wrong_role"
    employer = c.AssignSeriesWorker(actor=SYSTEM, at=T0 + 3, worker_pubkey=EMPLOYER)
    assert refusal(task, employer).code == "wrong_role"
    late = c.AssignSeriesWorker(actor=SYSTEM, at=DEADLINE, worker_pubkey=WORKER)
    assert refusal(task, late).code == "deadline_passed"


def test_an_assigned_worker_who_gives_it_back_is_not_assigned_again() -> None:
    task = funded(milestone(1))
    task, _ = apply(task, c.AssignSeriesWorker(actor=SYSTEM, at=T0 + 3, worker_pubkey=WORKER))
    task, _ = apply(task, c.Unclaim(actor=WORKER, at=T0 + 4))
    again = c.AssignSeriesWorker(actor=SYSTEM, at=T0 + 5, worker_pubkey=WORKER)
    assert refusal(task, again).code == "barred_worker"


def test_the_first_milestone_is_claimed_as_its_claim_mode_says() -> None:
    first = funded(milestone(0))
    claimed, _ = apply(first, c.Claim(actor=WORKER, at=T0 + 3))
    assert claimed.state is S.CLAIMED
    series_worker = c.AssignSeriesWorker(actor=SYSTEM, at=T0 + 3, worker_pubkey=WORKER)
    assert refusal(first, series_worker).code == "wrong_state"


def test_a_waiting_milestone_is_cancelled_without_money() -> None:
    cancel = c.CancelMilestone(actor=SYSTEM, at=T0 + 5, reason="milestone 1 ended REFUNDED")
    task, _ = apply(milestone(2), cancel)
    assert task.state is S.CANCELLED and task.funding_round == 0 and task.refund_ordered is False
    assert refusal(milestone(0), cancel).code == "wrong_state"  # the first never waits
    assert refusal(opened(milestone(2)), cancel).code == "wrong_state"  # funded: a refund
    assert refusal(milestone(2), dataclasses.replace(cancel, actor=EMPLOYER)).code == "wrong_role"
    # the employer may still cancel a waiting milestone of theirs, as any draft
    own, _ = apply(milestone(2), c.Cancel(actor=EMPLOYER, at=T0 + 5, reason=""))
    assert own.state is S.CANCELLED
