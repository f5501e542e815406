"""The cap on unpaid invoices per key: tasks awaiting funding and open deposits count together,
a request beyond the cap is a 429 problem+json with ``too_many_open_invoices``, and paying or
cancelling one makes room again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.deposit_flows import give_worker_wallet_money
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import created

from taskhold.client import TaskholdAPIError, TaskholdClient

CAP = 2


@pytest.fixture
async def capped(tmp_path: Path, database_url: str) -> AsyncIterator[Stack]:
    settings = stack_settings(tmp_path, database_url, max_open_invoices_per_key=CAP, pow_max_bits=8)
    opened = await open_stack(settings)
    await give_worker_wallet_money(opened)
    try:
        yield opened
    finally:
        await close_stack(opened)


async def refused(call: Any) -> TaskholdAPIError:
    with pytest.raises(TaskholdAPIError) as caught:
        await call
    return caught.value


async def funding_requested(stack: Stack, employer: TaskholdClient) -> dict[str, Any]:
    task = await created(stack, employer)
    return await employer.request_funding(task["task_id"])


async def test_a_key_at_the_cap_is_refused_a_further_funding_invoice(capped: Stack) -> None:
    employer = capped.client()
    for _ in range(CAP):
        await funding_requested(capped, employer)
    over = await created(capped, employer)

    refusal = await refused(employer.request_funding(over["task_id"]))

    assert (refusal.status, refusal.code) == (429, "too_many_open_invoices")
    assert f"limit is {CAP}" in refusal.problem["detail"]
    assert (await employer.get_task(over["task_id"]))["state"] == "DRAFT"  # nothing written
    other = capped.client()
    await funding_requested(capped, other)  # the cap is per key


async def test_the_refusal_is_problem_json(capped: Stack) -> None:
    employer = capped.client()
    for _ in range(CAP):
        await funding_requested(capped, employer)
    over = await created(capped, employer)
    raw: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        raw.append(response)

    capped.http.event_hooks["response"].append(keep)
    await refused(employer.request_funding(over["task_id"]))

    assert raw[-1].status_code == 429
    assert raw[-1].headers["content-type"].startswith("application/problem+json")


async def test_paying_or_cancelling_an_invoice_makes_room(capped: Stack) -> None:
    employer = capped.client()
    first = await funding_requested(capped, employer)
    second = await funding_requested(capped, employer)
    over = await created(capped, employer)
    assert (await refused(employer.request_funding(over["task_id"]))).status == 429

    await capped.world.employer.send_payment(first["funding"]["payment_request"])
    await capped.settle_engine(1)
    await employer.request_funding(over["task_id"])  # one was paid: room for one

    again = await created(capped, employer)
    assert (await refused(employer.request_funding(again["task_id"]))).status == 429
    await employer.cancel(second["task_id"], reason="not needed")
    await capped.settle_engine(1)
    await employer.request_funding(again["task_id"])


async def test_open_deposits_count_toward_the_cap(capped: Stack) -> None:
    employer = capped.client()
    worker = capped.client()
    tasks = []
    for _ in range(CAP + 1):
        task = await funding_requested(capped, employer)
        await capped.world.employer.send_payment(task["funding"]["payment_request"])
        await capped.settle_engine(1)  # the engine sees it paid: no longer an open invoice
        tasks.append(task)

    await funding_requested(capped, worker)  # an unpaid funding invoice of the worker's own
    worker._auto_pow = False  # from now on a stranger, who must lock deposits
    await worker.lock_deposit(tasks[0]["task_id"])  # and an open deposit: two
    refusal = await refused(worker.lock_deposit(tasks[1]["task_id"]))

    assert (refusal.status, refusal.code) == (429, "too_many_open_invoices")
