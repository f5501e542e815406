"""Admission control on the simulator, with set channel capacities.

A hold invoice is issued only while the escrow node can carry its task: a free incoming HTLC
slot, inbound liquidity for it after the invoices already awaiting payment, outbound liquidity
to pay every open task's worker, and the employer key below its share. A refusal is ``503
insufficient_capacity`` with ``Retry-After``, and nothing is written: the task stays DRAFT and
the node issued no invoice.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import httpx
import pytest
from support.stacks import OpenStack, Stack
from support.task_flows import AMOUNT_MSAT, created, funded

from taskhold.client import TaskholdAPIError, TaskholdClient


async def refused(call: Awaitable[Any]) -> TaskholdAPIError:
    with pytest.raises(TaskholdAPIError) as caught:
        await call
    return caught.value


async def refused_funding(stack: Stack, employer: TaskholdClient) -> TaskholdAPIError:
    """Ask for one more task's hold invoice; it must be refused and leave nothing behind."""
    task = await created(stack, employer)
    invoices_before = stack.world.network.invoice_count(stack.world.escrow.pubkey_hex)
    refusal = await refused(employer.request_funding(task["task_id"]))
    assert (refusal.status, refusal.code) == (503, "insufficient_capacity")
    assert refusal.retry_after_s == stack.settings.capacity_retry_after_s
    assert (await employer.get_task(task["task_id"]))["state"] == "DRAFT"  # nothing written
    assert stack.world.network.invoice_count(stack.world.escrow.pubkey_hex) == invoices_before
    return refusal


async def test_funding_is_refused_at_the_slot_limit(stack_with: OpenStack) -> None:
    stack = await stack_with(htlc_slots=2, max_key_share=1.0)
    employer = stack.client()
    await funded(stack, employer)
    await funded(stack, employer)

    refusal = await refused_funding(stack, employer)

    assert refusal.problem["limit"] == "htlc_slots"
    other = stack.client()
    assert (await refused_funding(stack, other)).problem["limit"] == "htlc_slots"  # for every key


async def test_an_unpaid_invoice_reserves_its_slot(stack_with: OpenStack) -> None:
    """An invoice issued and not yet paid will take a slot when paid: it counts already, or a
    burst of requests would be issued invoices the node cannot hold."""
    stack = await stack_with(htlc_slots=1, max_key_share=1.0)
    employer = stack.client()
    task = await created(stack, employer)
    await employer.request_funding(task["task_id"])

    assert (await refused_funding(stack, employer)).problem["limit"] == "htlc_slots"


async def test_a_released_task_gives_its_slot_back(stack_with: OpenStack) -> None:
    stack = await stack_with(htlc_slots=1, max_key_share=1.0)
    employer = stack.client()
    first = await funded(stack, employer)
    await refused_funding(stack, employer)

    await employer.cancel(first["task_id"])
    await stack.settle_engine()
    assert (await employer.get_task(first["task_id"]))["state"] == "REFUNDED"

    await funded(stack, employer)  # the slot is free again


async def test_funding_is_refused_at_the_inbound_liquidity_limit(stack_with: OpenStack) -> None:
    stack = await stack_with(inbound_msat=2 * AMOUNT_MSAT + AMOUNT_MSAT // 2, max_key_share=1.0)
    employer = stack.client()
    await funded(stack, employer)
    await funded(stack, employer)

    refusal = await refused_funding(stack, employer)

    assert refusal.problem["limit"] == "inbound_liquidity"
    smaller = await created(stack, employer, amount_msat=AMOUNT_MSAT // 2)
    await employer.request_funding(smaller["task_id"])  # what still fits is taken


async def test_funding_is_refused_without_outbound_liquidity_for_the_payouts(
    stack_with: OpenStack,
) -> None:
    """The escrow pays the worker before it settles the hold, from its own channels: it takes
    no task whose worker it could not pay after those already open."""
    stack = await stack_with(escrow_msat=2 * AMOUNT_MSAT + AMOUNT_MSAT // 2, max_key_share=1.0)
    employer = stack.client()
    await funded(stack, employer)
    task = await created(stack, employer)
    await employer.request_funding(task["task_id"])  # awaiting payment: its payout counts too

    assert (await refused_funding(stack, employer)).problem["limit"] == "outbound_liquidity"


async def test_one_key_is_refused_at_its_share_of_the_slots(stack_with: OpenStack) -> None:
    stack = await stack_with(htlc_slots=8, max_key_share=0.25)
    greedy = stack.client()
    await funded(stack, greedy)
    await funded(stack, greedy)

    refusal = await refused_funding(stack, greedy)

    assert refusal.problem["limit"] == "key_share_slots"
    assert "2 of the 2 HTLC slots" in refusal.problem["detail"]
    await funded(stack, stack.client())  # another key still gets in


async def test_one_key_is_refused_at_its_share_of_the_liquidity(stack_with: OpenStack) -> None:
    stack = await stack_with(inbound_msat=10 * AMOUNT_MSAT, max_key_share=0.25)
    greedy = stack.client()
    await funded(stack, greedy)
    await funded(stack, greedy)  # 2 of 10 held: the share is 2.5

    refusal = await refused_funding(stack, greedy)

    assert refusal.problem["limit"] == "key_share_liquidity"
    await funded(stack, stack.client())


async def test_the_refusal_carries_retry_after(stack_with: OpenStack) -> None:
    stack = await stack_with(htlc_slots=0, capacity_retry_after_s=17)
    employer = stack.client()
    task = await created(stack, employer)
    raw: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        raw.append(response)

    stack.http.event_hooks["response"].append(keep)
    await refused(employer.request_funding(task["task_id"]))

    assert raw[-1].status_code == 503
    assert raw[-1].headers["Retry-After"] == "17"
    assert raw[-1].headers["content-type"].startswith("application/problem+json")


async def test_info_publishes_the_share_and_shows_the_figures(stack_with: OpenStack) -> None:
    stack = await stack_with(htlc_slots=40, inbound_msat=100 * AMOUNT_MSAT, max_key_share=0.1)
    employer = stack.client()
    await funded(stack, employer)
    task = await created(stack, employer)
    await employer.request_funding(task["task_id"])

    info = (await stack.http.get("/v1/info")).json()

    assert info["capacity"]["max_key_share"] == 0.1
    now = info["capacity_now"]
    assert now["node"]["htlc_slots_max"] == 40
    assert now["node"]["htlc_slots_free"] == 39
    assert now["held"] == {"tasks": 1, "msat": AMOUNT_MSAT}
    assert now["awaiting_payment"] == {"tasks": 1, "msat": AMOUNT_MSAT}
    assert now["free_slots"] == 38
    assert now["key_slot_limit"] == 4
