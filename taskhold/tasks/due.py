"""When the escrow engine next has something to do for a task, from the task alone.

The projection keeps these figures in indexed columns (``taskhold.store``), so an engine tick
selects the tasks whose time or block height has come instead of looking at every open task:

- :func:`timer_due_at`: the first second at which the ``Tick`` command changes the task (the
  review window, the deadline, a rejection's or a dispute's window), the same rule as the
  machine's timer;
- :func:`hold_margin`: how far before its hold's expiry height the task must be looked at:
  ``renewal`` (the renewal lead) for one that may still open its next round, ``reserve`` (the
  hold reserve) for one the guardian may release, ``guard`` (the guard margin) for the rest;
- :func:`deposit_expiry_height`: the nearest expiry of a deposit hold the guardian watches.

Each is an early bound: the step it wakes re-checks the task and may do nothing.
"""

from __future__ import annotations

import math

from .machine import dispute_ends_at
from .model import FUNDED_STATES, Deposit, DepositState, Task, TaskState
from .rounds import renewable

__all__ = [
    "HOLD_MARGINS",
    "deposit_expiry_height",
    "deposit_guarded",
    "hold_margin",
    "may_release_at_guard",
    "timer_due_at",
]

S = TaskState

HOLD_MARGINS = ("guard", "reserve", "renewal")


def timer_due_at(task: Task) -> int | None:
    """The first time ``Tick`` has an effect on the task; None while no timer runs on it."""
    if task.is_terminal or task.refund_ordered:
        return None  # the machine takes a tick on these as already done
    if task.state is S.SUBMITTED:
        return None if task.submitted_at is None else task.submitted_at + task.review_window_s
    if task.state is S.FUNDED:
        return task.deadline_at + 1
    if task.state is S.CLAIMED:
        due = task.deadline_at + 1  # a rejection's dispute window may keep it open longer
        if task.rejected_at is not None:
            due = max(due, task.rejected_at + task.dispute_window_s)
        return due
    if task.state is S.DISPUTED:
        ends = dispute_ends_at(task)
        return None if ends == math.inf else math.ceil(ends)
    return None


def may_release_at_guard(task: Task) -> bool:
    """A submission left unanswered, or rejected and not ruled on, and a dispute: the guardian
    may release these, so it decides them early enough for a payout to fit in the hold."""
    return task.state is S.SUBMITTED or (
        task.state in (S.CLAIMED, S.DISPUTED) and task.proof is not None
    )


def hold_margin(task: Task) -> str | None:
    """Which of :data:`HOLD_MARGINS` the engine watches the task's held HTLC at; None when it
    holds none."""
    if task.state not in FUNDED_STATES or task.accepted_htlc_expiry_height is None:
        return None
    if (
        task.renewal_needed
        and renewable(task)
        and task.renewal_round is None
        and task.retiring_payment_hash_hex is None
    ):
        return "renewal"
    return "reserve" if may_release_at_guard(task) else "guard"


def deposit_guarded(deposit: Deposit) -> bool:
    """A deposit whose held HTLC the guardian must decide on before its expiry."""
    return (
        deposit.state in (DepositState.HELD, DepositState.FORFEIT)
        and deposit.expiry_height is not None
        and deposit.hold_settled_at is None
    )


def deposit_expiry_height(task: Task) -> int | None:
    """The nearest expiry height of the task's guarded deposits, if any."""
    heights = [d.expiry_height for d in task.deposits if deposit_guarded(d)]
    return min((h for h in heights if h is not None), default=None)
