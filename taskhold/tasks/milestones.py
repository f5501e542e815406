"""Milestones: a task created as an ordered series, each milestone a task of its own.

Every milestone has its own task id, state machine, hold invoice, preimage, payout, refund,
guardian and log chain, so everything the engine guarantees per task holds per milestone; a
refund of one never touches another. What links them is stamped in each milestone's
``TaskCreated``: ``series_id`` (the first milestone's task id, which is the create request's id),
``milestone_index`` (0-based), ``milestone_count`` and ``funding_mode``.

The series' rules, as data and one sentence each:

- funding is opened by taskhold (``OpenMilestone``), never by the employer's ``fund``: under
  ``upfront`` every milestone's invoice is issued at creation; under ``sequential`` the first
  one's is, and milestone k+1's only once milestone k is PAID;
- a sequential milestone waits in DRAFT; once the one before it ends REFUNDED, CANCELLED or
  EXPIRED, taskhold cancels it (``CancelMilestone``; nothing was funded, nothing moves);
- later milestones take claim mode ``series``: nobody claims them; once funded, taskhold assigns
  them to the worker of the first milestone (``AssignSeriesWorker``). An employer who names a
  ``direct`` worker, or declares ``same_worker: false``, gives every milestone that claim mode.
"""

from __future__ import annotations

import hashlib
from typing import Any

from taskhold.errors import Conflict, Forbidden, Invalid, RefusalCode

from . import commands as c
from . import events as e
from .model import SYSTEM_ACTOR, Task

__all__ = [
    "FUNDING_MODES",
    "SERIES_CLAIM_MODE",
    "assign_series_worker",
    "cancel_milestone",
    "check_series_terms",
    "milestone_task_id",
    "milestone_view",
    "open_milestone",
    "refuse_employer_funding",
    "refuse_series_claim",
    "series_view",
]

FUNDING_MODES = frozenset({"upfront", "sequential"})
SERIES_CLAIM_MODE = "series"
"""The claim mode of a later milestone that follows the first milestone's worker."""


def milestone_task_id(series_id: str, index: int) -> str:
    """The task id of milestone ``index`` of the series: the series id itself for the first,
    a hash of both for the others (anyone can recompute it from the log)."""
    if index == 0:
        return series_id
    return hashlib.sha256(f"taskhold/milestone/v1|{series_id}|{index}".encode()).hexdigest()


def check_series_terms(cmd: c.CreateTask) -> None:
    """A milestone's series fields fit together; a task on its own has none of them."""
    fields = (cmd.series_id, cmd.milestone_index, cmd.milestone_count, cmd.funding_mode)
    if all(value is None for value in fields):
        if cmd.claim_mode == SERIES_CLAIM_MODE:
            raise Invalid(
                "claim mode series is for later milestones only", code=RefusalCode.BAD_CLAIM_MODE
            )
        return
    index, count = cmd.milestone_index, cmd.milestone_count
    if (
        cmd.series_id is None
        or index is None
        or count is None
        or not 0 <= index < count
        or cmd.funding_mode not in FUNDING_MODES
        or cmd.task_id != milestone_task_id(cmd.series_id, index)
    ):
        raise Invalid(
            "a milestone names its series, its index below the count, a funding mode"
            f" ({', '.join(sorted(FUNDING_MODES))}) and the task id derived from both",
            code=RefusalCode.BAD_MILESTONES,
        )
    if cmd.claim_mode == SERIES_CLAIM_MODE and index == 0:
        raise Invalid(
            "the first milestone cannot follow its own worker", code=RefusalCode.BAD_CLAIM_MODE
        )


def refuse_employer_funding(task: Task) -> None:
    """A milestone's funding opens by its series' funding mode; the employer cannot open a
    sequential one before the one before it is PAID."""
    if task.series_id is not None:
        raise Conflict(
            f"this is milestone {(task.milestone_index or 0) + 1} of {task.milestone_count}"
            f" ({task.funding_mode}); taskhold issues its hold invoice when its turn comes",
            code=RefusalCode.MILESTONE_FUNDED_BY_SERIES,
        )


def refuse_series_claim(task: Task) -> None:
    if task.claim_mode == SERIES_CLAIM_MODE:
        raise Forbidden(
            "this milestone goes to the worker of the series' first milestone; taskhold"
            " assigns it to them once it is funded",
            code=RefusalCode.SERIES_WORKER_ONLY,
        )


def _need_milestone(task: Task, later: bool) -> None:
    if task.series_id is None or (later and not task.milestone_index):
        which = "a later milestone" if later else "a milestone"
        raise Conflict(f"this task is not {which}", code=RefusalCode.WRONG_STATE)


def open_milestone(task: Task, cmd: c.Command) -> list[e.Event]:
    assert isinstance(cmd, c.OpenMilestone)
    _need_milestone(task, later=False)
    return [
        e.FundingRequested(
            at=cmd.at,
            actor=SYSTEM_ACTOR,
            **c.invoice_fields(cmd),
        )
    ]


def cancel_milestone(task: Task, cmd: c.Command) -> list[e.Event]:
    assert isinstance(cmd, c.CancelMilestone)
    _need_milestone(task, later=True)
    return [e.TaskCancelled(at=cmd.at, actor=SYSTEM_ACTOR)]


def assign_series_worker(task: Task, cmd: c.Command) -> list[e.Event]:
    assert isinstance(cmd, c.AssignSeriesWorker)
    if task.claim_mode != SERIES_CLAIM_MODE:
        raise Conflict(
            "only a milestone in claim mode series takes the series' worker",
            code=RefusalCode.WRONG_STATE,
        )
    return [e.WorkerAssigned(at=cmd.at, actor=SYSTEM_ACTOR, worker_pubkey=cmd.worker_pubkey)]


def series_view(task: Task) -> dict[str, Any] | None:
    """Where a task stands in its series, from the task alone (None for a task on its own)."""
    if task.series_id is None or task.milestone_index is None or task.milestone_count is None:
        return None
    return {
        "series_id": task.series_id,
        "index": task.milestone_index,
        "count": task.milestone_count,
        "funding_mode": task.funding_mode,
        "task_ids": [milestone_task_id(task.series_id, i) for i in range(task.milestone_count)],
    }


def milestone_view(task: Task) -> dict[str, Any]:
    """One milestone as a series listing shows it: enough to pay its invoice and follow it."""
    return {
        "task_id": task.task_id,
        "index": task.milestone_index,
        "title": task.title,
        "state": task.state.value,
        "amount_msat": task.amount_msat,
        "deadline_at": task.deadline_at,
        "worker_pubkey": task.worker_pubkey,
        "payment_request": task.payment_request,
        "payment_hash": task.payment_hash_hex,
        "preimage": task.preimage_hex,
    }
