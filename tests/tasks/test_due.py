"""The due times the engine's tick selects tasks by agree with the machine's own timer: a tick
one second before a task's ``timer_due_at`` changes nothing, a tick at it does, and a task
without one is never changed by a tick."""

from __future__ import annotations

import pytest
from support.task_builders import ARBITERS, EMPLOYER, SYSTEM, WORKER, task_in

from taskhold.errors import Refusal
from taskhold.tasks import Task, TaskState, decide
from taskhold.tasks import commands as c
from taskhold.tasks.due import hold_margin, timer_due_at

LATER = 10**9


def _tick_changes(task: Task, at: int) -> bool:
    try:
        return bool(decide(task, c.Tick(actor=SYSTEM, at=at), ARBITERS))
    except Refusal:
        return False


REJECTED = [(c.SubmitProof, WORKER), (c.Reject, EMPLOYER)]
DISPUTED = [(c.SubmitProof, WORKER), (c.Reject, EMPLOYER), (c.OpenDispute, WORKER)]
CASES = [(state.value, task_in(state)) for state in TaskState] + [
    ("CLAIMED after a rejection", task_in(TaskState.CLAIMED, extra=REJECTED)),
    ("DISPUTED after a rejection", task_in(TaskState.CLAIMED, extra=DISPUTED)),
]


@pytest.mark.parametrize(("name", "task"), CASES, ids=[name for name, _ in CASES])
def test_a_tick_changes_a_task_exactly_from_its_due_time(name: str, task: Task) -> None:
    due = timer_due_at(task)
    if due is None:
        assert not _tick_changes(task, LATER), name
        return
    assert not _tick_changes(task, due - 1), name
    assert _tick_changes(task, due), name


def test_the_rejected_claim_waits_for_its_dispute_window_not_the_deadline() -> None:
    task = task_in(TaskState.CLAIMED, extra=REJECTED)
    assert task.rejected_at is not None
    assert timer_due_at(task) == max(task.deadline_at + 1, task.rejected_at + task.dispute_window_s)


def test_hold_margins_follow_what_the_guardian_may_do() -> None:
    assert hold_margin(task_in(TaskState.PENDING_FUNDING)) is None
    assert hold_margin(task_in(TaskState.FUNDED)) == "guard"
    assert hold_margin(task_in(TaskState.SUBMITTED)) == "reserve"
    assert hold_margin(task_in(TaskState.CLAIMED, extra=REJECTED)) == "reserve"
    assert hold_margin(task_in(TaskState.PAID)) is None
