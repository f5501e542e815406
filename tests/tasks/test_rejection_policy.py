"""Accountable rejection: a rejection needs a reason, opens the dispute window, and ends as the
task's declared ``rejection_policy`` says; without an arbiter, never in a silent refund."""

from __future__ import annotations

import pytest
from support.task_builders import (
    ARBITER,
    ARBITERS,
    DEADLINE,
    DISPUTE_WINDOW,
    EMPLOYER,
    SYSTEM,
    T0,
    WORKER,
    create_command,
    sample_command,
)

from taskhold.errors import Invalid
from taskhold.tasks import Task, TaskState, decide, evolve
from taskhold.tasks import commands as c
from taskhold.tasks import events as e

S = TaskState
NO_ARBITERS: frozenset[str] = frozenset()
POLICIES = [None, "release_unless_ruled", "arbiter"]


def run(task: Task | None, command: c.Command, arbiters: frozenset[str]) -> Task:
    for event in decide(task, command, arbiters):
        task = evolve(task, event)
    assert task is not None
    return task


def rejected(policy: str | None, arbiters: frozenset[str], *, at: int = T0 + 10) -> Task:
    """Submitted at ``at``, rejected one second later."""
    task = run(None, create_command(rejection_policy=policy), arbiters)
    steps = [(c.RequestFunding, EMPLOYER), (c.ConfirmFunding, SYSTEM), (c.Claim, WORKER)]
    for n, (cls, actor) in enumerate(steps):
        task = run(task, sample_command(cls, actor, T0 + 1 + n), arbiters)
    task = run(task, sample_command(c.SubmitProof, WORKER, at), arbiters)
    task = run(task, sample_command(c.Reject, EMPLOYER, at + 1), arbiters)
    assert task.state is S.CLAIMED and task.rejection_policy == policy
    return task


def lapse_events(task: Task, command: c.Command, arbiters: frozenset[str]) -> list[type[e.Event]]:
    return [type(ev) for ev in decide(task, command, arbiters)]


def test_the_policy_is_stamped_into_the_task_created_event() -> None:
    events = decide(None, create_command(rejection_policy="arbiter"), ARBITERS)
    assert isinstance(events[0], e.TaskCreated) and events[0].rejection_policy == "arbiter"
    with pytest.raises(Invalid):
        decide(None, create_command(rejection_policy="whatever"), ARBITERS)


@pytest.mark.parametrize("policy", POLICIES)
def test_without_an_arbiter_an_undisputed_rejection_is_released_not_refunded(
    policy: str | None,
) -> None:
    """The employer rejects good work and waits: under every policy, with nobody to rule, the
    deadline timer and the guardian release the checked submission."""
    task = rejected(policy, NO_ARBITERS)
    ran_out = DEADLINE + 1  # the rejection's dispute window ended long before the deadline
    assert decide(task, c.Tick(actor=SYSTEM, at=DEADLINE), NO_ARBITERS) == []
    assert lapse_events(task, c.Tick(actor=SYSTEM, at=ran_out), NO_ARBITERS) == [e.RejectionLapsed]
    guard = sample_command(c.HoldExpiring, SYSTEM, T0 + 20)
    assert lapse_events(task, guard, NO_ARBITERS) == [e.RejectionLapsed]
    after = run(task, c.Tick(actor=SYSTEM, at=ran_out), NO_ARBITERS)
    assert after.state is S.VERIFIED and after.release_pending and after.verified_by == SYSTEM


def test_release_unless_ruled_releases_even_where_an_arbiter_could_have_ruled() -> None:
    task = rejected("release_unless_ruled", ARBITERS)
    tick = c.Tick(actor=SYSTEM, at=DEADLINE + DISPUTE_WINDOW)
    assert lapse_events(task, tick, ARBITERS) == [e.RejectionLapsed]


@pytest.mark.parametrize("policy", [None, "arbiter"])
def test_under_the_arbiter_policy_an_undisputed_rejection_stands(policy: str | None) -> None:
    task = rejected(policy, ARBITERS)
    events = decide(task, c.Tick(actor=SYSTEM, at=DEADLINE + DISPUTE_WINDOW), ARBITERS)
    assert [type(ev) for ev in events] == [e.RefundOrdered]
    assert isinstance(events[0], e.RefundOrdered)
    expected = "deadline passed without proof" if policy is None else "the rejection stood"
    assert events[0].reason.startswith(expected)


def test_the_employer_gets_a_refund_only_through_a_ruling() -> None:
    """release_unless_ruled with an arbiter: the employer disputes the rejected work, the
    arbiter rules for the employer, and only then is the task refunded."""
    task = rejected("release_unless_ruled", ARBITERS)
    task = run(task, sample_command(c.OpenDispute, EMPLOYER, T0 + 30), ARBITERS)
    task = run(
        task, c.ResolveDispute(actor=ARBITER, at=T0 + 40, winner="employer", note="no"), ARBITERS
    )
    assert task.refund_ordered


def test_rejecting_again_and_again_only_moves_the_release_later() -> None:
    """An employer who rejects every resubmission to run the clock out: the last rejection
    still lapses to the worker, at the end of its dispute window."""
    task = rejected("release_unless_ruled", NO_ARBITERS, at=DEADLINE - 10)
    task = run(task, sample_command(c.SubmitProof, WORKER, DEADLINE - 5), NO_ARBITERS)
    task = run(task, sample_command(c.Reject, EMPLOYER, DEADLINE - 4), NO_ARBITERS)
    ends = DEADLINE - 4 + DISPUTE_WINDOW
    assert decide(task, c.Tick(actor=SYSTEM, at=ends - 1), NO_ARBITERS) == []
    assert lapse_events(task, c.Tick(actor=SYSTEM, at=ends), NO_ARBITERS) == [e.RejectionLapsed]


def test_a_claim_without_any_proof_is_still_refunded_at_its_deadline() -> None:
    task = run(None, create_command(rejection_policy="release_unless_ruled"), NO_ARBITERS)
    for n, (cls, actor) in enumerate(
        [(c.RequestFunding, EMPLOYER), (c.ConfirmFunding, SYSTEM), (c.Claim, WORKER)]
    ):
        task = run(task, sample_command(cls, actor, T0 + 1 + n), NO_ARBITERS)
    events = decide(task, c.Tick(actor=SYSTEM, at=DEADLINE + 1), NO_ARBITERS)
    assert [type(ev) for ev in events] == [e.RefundOrdered]
