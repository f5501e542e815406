"""Swap reports over the API (``POST /v1/tasks/{id}/swaps``, op ``swap``): hostile reporters,
rewritten txids, spam, closed tasks, malformed input and replays all end in a clear 4xx, and
nothing is written; a good report shows in the task and its log."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from support.stacks import Stack
from support.task_flows import funded, read_log, submitted, tag

from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.nostr import NostrKeys
from taskhold.store.models import TransitionRow
from taskhold.tasks.swap_reports import MAX_SWAPS_PER_ROLE

API = "https://boltz.example/v2"
LOCKUP, CLAIM, REFUND = "a1" * 32, "c1" * 32, "e1" * 32


async def _transitions(stack: Stack) -> int:
    async with stack.services.store.transaction() as tx:
        count = (await tx.session.execute(select(func.count(TransitionRow.version)))).scalar()
    return int(count or 0)


async def _refused(call: Any) -> TaskholdAPIError:
    with pytest.raises(TaskholdAPIError) as caught:
        await call
    return caught.value


def _signed(keys: NostrKeys, task_id: str, content: dict[str, Any]) -> dict[str, Any]:
    tags = [["op", "swap"], ["task", task_id]]
    return keys.sign_event(3912, json.dumps(content), tags, int(time.time()))


async def _post(stack: Stack, task_id: str, event: dict[str, Any], key: str) -> httpx.Response:
    return await stack.http.post(
        f"/v1/tasks/{task_id}/swaps", json={"request": event}, headers={"Idempotency-Key": key}
    )


async def _paid(stack: Stack) -> tuple[TaskholdClient, TaskholdClient, str]:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    return employer, worker, task["task_id"]


# --- hostile first ------------------------------------------------------------------------


async def test_a_stranger_cannot_report_on_someones_task(stack: Stack) -> None:
    task = await funded(stack, stack.client())
    before = await _transitions(stack)
    for role in ("funding", "payout"):
        problem = await _refused(
            stack.client().report_swap(
                task["task_id"], role=role, swap_id="s1", swap_api=API, lockup_txid=LOCKUP
            )
        )
        assert (problem.status, problem.code) == (403, "wrong_role")
    assert await _transitions(stack) == before


async def test_the_employer_cannot_report_a_payout_swap(stack: Stack) -> None:
    employer, worker, task_id = await _paid(stack)
    problem = await _refused(
        employer.report_swap(task_id, role="payout", swap_id="p1", swap_api=API, claim_txid=CLAIM)
    )
    assert (problem.status, problem.code) == (403, "wrong_role")
    problem = await _refused(
        worker.report_swap(task_id, role="funding", swap_id="f1", swap_api=API, refund_txid=REFUND)
    )
    assert (problem.status, problem.code) == (403, "wrong_role")


async def test_a_recorded_txid_cannot_be_rewritten(stack: Stack) -> None:
    employer = stack.client()
    task = await funded(stack, employer)
    task_id = task["task_id"]
    await employer.report_swap(
        task_id, role="funding", swap_id="f1", swap_api=API, lockup_txid=LOCKUP
    )
    before = await _transitions(stack)
    problem = await _refused(
        employer.report_swap(
            task_id, role="funding", swap_id="f1", swap_api=API, lockup_txid="a2" * 32
        )
    )
    assert (problem.status, problem.code) == (409, "swap_fact_conflict")
    problem = await _refused(
        employer.report_swap(
            task_id, role="funding", swap_id="f1", swap_api="https://elsewhere.example"
        )
    )
    assert (problem.status, problem.code) == (409, "swap_fact_conflict")
    assert await _transitions(stack) == before
    [swap] = (await employer.get_task(task_id))["swaps"]
    assert swap["lockup_txid"] == LOCKUP


async def test_spamming_swap_ids_is_capped(stack: Stack) -> None:
    employer = stack.client()
    task_id = (await funded(stack, employer))["task_id"]
    for n in range(MAX_SWAPS_PER_ROLE):
        await employer.report_swap(task_id, role="funding", swap_id=f"spam{n}", swap_api=API)
    before = await _transitions(stack)
    problem = await _refused(
        employer.report_swap(task_id, role="funding", swap_id="one-more", swap_api=API)
    )
    assert (problem.status, problem.code) == (409, "too_many_swaps")
    assert await _transitions(stack) == before
    assert len((await employer.get_task(task_id))["swaps"]) == MAX_SWAPS_PER_ROLE


async def test_a_closed_task_takes_swap_facts_still_capped(stack: Stack) -> None:
    _, worker, task_id = await _paid(stack)
    answer = await worker.report_swap(
        task_id, role="payout", swap_id="p1", swap_api=API, lockup_txid=LOCKUP
    )
    assert answer["state"] == "PAID"
    answer = await worker.report_swap(
        task_id, role="payout", swap_id="p1", swap_api=API, claim_txid=CLAIM
    )
    [swap] = answer["swaps"]
    assert (swap["role"], swap["reporter"], swap["lockup_txid"], swap["claim_txid"]) == (
        "payout",
        worker.pubkey_hex,
        LOCKUP,
        CLAIM,
    )
    for n in range(2, MAX_SWAPS_PER_ROLE + 1):
        await worker.report_swap(task_id, role="payout", swap_id=f"p{n}", swap_api=API)
    problem = await _refused(
        worker.report_swap(task_id, role="payout", swap_id="p-more", swap_api=API)
    )
    assert (problem.status, problem.code) == (409, "too_many_swaps")
    problem = await _refused(
        worker.report_swap(task_id, role="payout", swap_id="p1", swap_api=API, refund_txid=REFUND)
    )
    assert (problem.status, problem.code) == (409, "swap_fact_conflict")


async def test_a_payout_swap_waits_for_verification(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    problem = await _refused(
        worker.report_swap(task["task_id"], role="payout", swap_id="p1", swap_api=API)
    )
    assert (problem.status, problem.code) == (409, "wrong_state")


@pytest.mark.parametrize(
    "change",
    [
        {"lockup_txid": "A1" * 32},
        {"lockup_txid": "a1" * 33},
        {"claim_txid": 7},
        {"refund_txid": None, "claim_txid": ["c1"]},
        {"swap_id": ""},
        {"swap_id": "../../etc"},
        {"swap_api": "http://boltz.example/v2"},
        {"swap_api": "javascript:alert(1)"},
        {"swap_api": "https://" + "x" * 300},
        {"swap_api": "https://boltz.example:99999"},
        {"swap_api": "https://[::1"},
        {"role": "refund"},
        {"surprise": True},
    ],
)
async def test_malformed_reports_are_4xx_never_5xx(stack: Stack, change: dict[str, Any]) -> None:
    keys = NostrKeys.generate()
    task_id = (await funded(stack, stack.client(keys)))["task_id"]
    before = await _transitions(stack)
    content = {"role": "funding", "swap_id": "f1", "swap_api": API, **change}
    response = await _post(stack, task_id, _signed(keys, task_id, content), "malformed")
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] in ("invalid_content", "bad_swap_report")
    assert await _transitions(stack) == before


async def test_a_replayed_report_gets_the_first_answer_or_is_refused(stack: Stack) -> None:
    keys = NostrKeys.generate()
    task_id = (await funded(stack, stack.client(keys)))["task_id"]
    event = _signed(keys, task_id, {"role": "funding", "swap_id": "f1", "swap_api": API})
    first = await _post(stack, task_id, event, "once")
    assert first.status_code == 200, first.text
    after_first = await _transitions(stack)
    again = await _post(stack, task_id, event, "once")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    replayed = await _post(stack, task_id, event, "another-key")
    assert (replayed.status_code, replayed.json()["code"]) == (409, "replayed_request")
    assert await _transitions(stack) == after_first


async def test_the_same_facts_again_write_nothing(stack: Stack) -> None:
    employer = stack.client()
    task_id = (await funded(stack, employer))["task_id"]
    first = await employer.report_swap(
        task_id, role="funding", swap_id="f1", swap_api=API, lockup_txid=LOCKUP
    )
    entries = len(await read_log(stack))
    again = await employer.report_swap(
        task_id, role="funding", swap_id="f1", swap_api=API, lockup_txid=LOCKUP
    )
    assert again["version"] == first["version"] and again["swaps"] == first["swaps"]
    assert len(await read_log(stack)) == entries


async def test_a_report_is_a_signed_entry_in_the_public_log(stack: Stack) -> None:
    employer = stack.client()
    task_id = (await funded(stack, employer))["task_id"]
    await employer.report_swap(
        task_id, role="funding", swap_id="f1", swap_api=API, lockup_txid=LOCKUP
    )
    entry = (await read_log(stack))[-1]
    assert tag(entry, "op") == "SwapReported"
    assert (tag(entry, "swap_role"), tag(entry, "swap_id"), tag(entry, "lockup_txid")) == (
        "funding",
        "f1",
        LOCKUP,
    )
    assert tag(entry, "claim_txid") is None
    content = json.loads(entry["content"])
    assert content["event"]["swap_api"] == API
    assert content["request"]["pubkey"] == employer.pubkey_hex


async def test_a_report_on_no_task_is_a_404(stack: Stack) -> None:
    problem = await _refused(
        stack.client().report_swap("0" * 64, role="funding", swap_id="f1", swap_api=API)
    )
    assert (problem.status, problem.code) == (404, "not_found")
