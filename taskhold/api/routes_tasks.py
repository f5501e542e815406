"""The task routes. Thin: parse, hand the signed request to the action, render the answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from taskhold.actions import ACTIONS, perform
from taskhold.errors import NotFound
from taskhold.store import Tx
from taskhold.tasks import Task, TaskState
from taskhold.tasks.milestones import milestone_task_id, milestone_view

from .deps import services_of
from .info import capacity_now, info_document
from .ratelimit import client_ip
from .schemas import (
    READ_PROBLEMS,
    TERMS_PROBLEMS,
    WRITE_PROBLEMS,
    DescribedAs,
    Info,
    Series,
    SignedEvent,
    TaskList,
    TaskView,
    Transitions,
    WriteAnswer,
)
from .views import task_view, transition_view

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["tasks"])


class SignedWrite(BaseModel):
    """A write: the participant's signed Nostr event (kind 3912, or 3911 for proofs) whose
    content is the request, with ``["op", …]`` and ``["task", …]`` tags."""

    request: Annotated[dict[str, Any], DescribedAs(SignedEvent)] = Field(
        description="the signed NIP-01 event; checked whole by the envelope check, so that it"
        " is kept exactly as signed"
    )


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", description="unique per request; a retry returns the first answer"
    ),
]


async def _write(
    request: Request, op: str, body: SignedWrite, task_id: str | None, key: str | None
) -> JSONResponse:
    services = services_of(request)
    if services.limits is not None:  # before the signature is checked: the cheapest refusal
        services.limits.check_ip(client_ip(request))
    action = ACTIONS[op]
    swap_api = services.settings.swap_api_url
    status, payload = await perform(
        services.writes,
        op=op,
        handler=action.handler,
        raw_event=body.request,
        task_id=task_id,
        idempotency_key=key,
        render=lambda task, head: task_view(task, head, swap_api=swap_api),
        proof=action.proof,
    )
    media_type = "application/problem+json" if status >= 400 else "application/json"
    return JSONResponse(payload, status_code=status, media_type=media_type)


@router.post(
    "/tasks",
    status_code=201,
    summary="Create a task (op create)",
    response_model=WriteAnswer,
    responses=WRITE_PROBLEMS,
)
async def create_task(
    request: Request, body: Annotated[SignedWrite, Body()], key: IdempotencyKey = None
) -> JSONResponse:
    return await _write(request, "create", body, None, key)


def _task_write(op: str, summary: str) -> None:
    async def endpoint(
        request: Request,
        task_id: str,
        body: Annotated[SignedWrite, Body()],
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        return await _write(request, op, body, task_id, key)

    endpoint.__name__ = f"task_{op.replace('-', '_')}"
    router.add_api_route(
        f"/tasks/{{task_id}}/{op_path(op)}",
        endpoint,
        methods=["POST"],
        summary=summary,
        status_code=201 if op in _ADDS_A_RECORD else 200,
        response_model=WriteAnswer,
        responses=WRITE_PROBLEMS,
    )


_ADDS_A_RECORD = frozenset({"review", "deposit"})
"""Ops whose success answers 201 (a review or a deposit was added), as the actions decide."""


def op_path(op: str) -> str:
    return {"fund": "funding", "swap": "swaps"}.get(op, op)


for _op, _summary in [
    ("fund", "Get the hold invoice that funds the task (employer)"),
    ("claim", "Claim a funded task (worker)"),
    ("proof", "Submit a signed proof and payout invoice (claimed worker, kind 3911)"),
    ("payout-invoice", "Replace the payout invoice (worker)"),
    ("approve", "Approve the submission (employer)"),
    ("reject", "Reject the submission with a reason (employer)"),
    ("dispute", "Open a dispute (employer or worker)"),
    ("resolve", "Resolve a dispute (arbiter)"),
    ("cancel", "Cancel the task; refunds a funded one (employer)"),
    ("review", "Review the other party of a PAID or REFUNDED task, with your receipt"),
    (
        "deposit",
        "Lock a deposit instead of proof of work (employer before funding, or a worker"
        " before claiming)",
    ),
    ("deposit-payout", "Send the invoice that pays you a forfeited deposit (its beneficiary)"),
    ("apply", "Apply to a task in claim mode apply, with a note (worker)"),
    ("assign", "Make one applicant the worker (employer)"),
    ("unclaim", "Give a claimed task back before sending a proof (worker)"),
    ("revoke", "Revoke a claim whose timeout passed without a proof (employer)"),
    ("refund-invoice", "Send the invoice that pays your share of a split (employer)"),
    (
        "propose-agreement",
        "Propose to end the task by agreement: worker_msat 0 cancels, the payout releases,"
        " anything between splits"
        " (employer or worker, after a claim)",
    ),
    ("accept-agreement", "Accept the other party's standing proposal, repeating worker_msat"),
    ("withdraw-agreement", "Withdraw your standing proposal"),
    (
        "swap",
        "Report your Boltz swap's facts: swap id, API, lockup and claim or refund txid"
        " (employer: the funding swap; worker: the payout swap)",
    ),
]:
    _task_write(_op, _summary)


@router.get(
    "/tasks/{task_id}",
    summary="One task",
    response_model=None,
    responses={200: {"model": TaskView}, **READ_PROBLEMS},
)
async def get_task(request: Request, task_id: str) -> dict[str, Any]:
    async with services_of(request).store.transaction() as tx:
        task = await tx.load_task(task_id)
        head = await tx.log_head(task_id)
        siblings = await _milestones_of(tx, task) if task is not None else []
    if task is None:
        raise NotFound(f"no task {task_id}")
    view = task_view(task, head, swap_api=services_of(request).settings.swap_api_url)
    if view["series"] is not None:
        view["series"]["milestones"] = [milestone_view(sibling) for sibling in siblings]
    return view


async def _milestones_of(tx: Tx, task: Task) -> list[Task]:
    """The task's series, in order (empty for a task on its own)."""
    if task.series_id is None or task.milestone_count is None:
        return []
    ids = [milestone_task_id(task.series_id, i) for i in range(task.milestone_count)]
    return [found for found in [await tx.load_task(i) for i in ids] if found is not None]


@router.get(
    "/series/{series_id}",
    summary="A milestone series: its milestones in order",
    response_model=None,
    responses={200: {"model": Series}, **READ_PROBLEMS},
)
async def get_series(request: Request, series_id: str) -> dict[str, Any]:
    async with services_of(request).store.transaction() as tx:
        first = await tx.load_task(series_id)
        milestones = await _milestones_of(tx, first) if first is not None else []
    if first is None or first.series_id != series_id:
        raise NotFound(f"no milestone series {series_id}")
    return {
        "series_id": series_id,
        "count": first.milestone_count,
        "funding_mode": first.funding_mode,
        "milestones": [milestone_view(milestone) for milestone in milestones],
    }


@router.get(
    "/tasks",
    summary="List tasks, newest first",
    response_model=None,
    responses={200: {"model": TaskList}, **READ_PROBLEMS},
)
async def list_tasks(
    request: Request,
    state: TaskState | None = None,
    employer: Annotated[str | None, Query(pattern="^[0-9a-f]{64}$")] = None,
    worker: Annotated[str | None, Query(pattern="^[0-9a-f]{64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="created_at cursor")
    ] = None,
    before_id: Annotated[
        str | None,
        Query(
            pattern="^[0-9a-f]{64}$",
            description="task id cursor, with before: the page goes on after this task",
        ),
    ] = None,
) -> dict[str, Any]:
    async with services_of(request).store.transaction() as tx:
        tasks = await tx.list_tasks(
            state=state,
            employer=employer,
            worker=worker,
            limit=limit,
            before=before,
            before_id=before_id,
            listed_only=employer is None and worker is None,  # the board: no delisted task
        )
    swap_api = services_of(request).settings.swap_api_url
    views = [task_view(task, swap_api=swap_api) for task in tasks]
    last = views[-1] if len(views) == limit else None
    return {
        "tasks": views,
        "next_before": None if last is None else last["created_at"],
        "next_before_id": None if last is None else last["task_id"],
    }


@router.get(
    "/tasks/{task_id}/transitions",
    summary="A task's history, oldest first",
    response_model=None,
    responses={200: {"model": Transitions}, **READ_PROBLEMS},
)
async def list_transitions(request: Request, task_id: str) -> dict[str, Any]:
    async with services_of(request).store.transaction() as tx:
        if await tx.load_task(task_id) is None:
            raise NotFound(f"no task {task_id}")
        rows = await tx.transitions(task_id)
    return {"task_id": task_id, "transitions": [transition_view(row) for row in rows]}


@router.get(
    "/info",
    summary="How this taskhold is configured",
    response_model=None,
    responses={200: {"model": Info}, **TERMS_PROBLEMS},
)
async def info(request: Request) -> dict[str, Any]:
    """The operator's terms; the same document is published as a signed event (``info``).
    ``capacity_now`` adds the escrow node's figures as they stand (not in the signed event)."""
    services = services_of(request)
    return {**info_document(services), "capacity_now": await capacity_now(services)}
