"""A proof checked against a pathological pattern answers at once, and the check runs off the
event loop so the server keeps answering meanwhile."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

import pytest
from support.stacks import Stack
from support.task_flows import funded

from taskhold.actions import proof as proof_action
from taskhold.client import TaskholdAPIError

EVIL = "(a+)+"


async def _claimed_with(stack: Stack, acceptance: dict[str, Any]) -> tuple[Any, Any, str]:
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer, acceptance=acceptance)
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    return task, worker, invoice


def _no_backtracking(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a proof was matched with Python's backtracking re engine")


async def test_a_pathological_pattern_is_refused_at_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    task, worker, invoice = await _claimed_with(stack, {"regex": {"code": EVIL}})
    monkeypatch.setattr(re, "fullmatch", _no_backtracking)

    with pytest.raises(TaskholdAPIError) as refused:
        await worker.submit_proof(task["task_id"], {"code": "a" * 30 + "!"}, invoice)

    assert refused.value.status == 422
    assert refused.value.code == "proof_rejected"
    assert (await worker.get_task(task["task_id"]))["state"] == "CLAIMED"


async def test_a_backreference_is_refused_when_the_task_is_created(stack: Stack) -> None:
    with pytest.raises(TaskholdAPIError) as refused:
        await stack.client().create_task(
            "Echo", "", 150_000_000, 2_000_000_000, acceptance={"regex": {"code": r"(a+)\1"}}
        )
    assert refused.value.status == 422
    assert refused.value.code == "unsupported_pattern"
    assert "acceptance.regex" in refused.value.detail


async def test_other_requests_are_served_while_a_proof_is_checked(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    task, worker, invoice = await _claimed_with(stack, {"regex": {"code": "a+"}})
    task_id = task["task_id"]
    loop = asyncio.get_running_loop()
    checking = asyncio.Event()
    release, checked = threading.Event(), threading.Event()
    real_check = proof_action.check_proof

    def slow_check(*args: Any) -> list[str]:
        loop.call_soon_threadsafe(checking.set)
        # Bounded so a check run on the event loop fails the test instead of hanging it.
        release.wait(timeout=10)
        checked.set()
        return real_check(*args)

    monkeypatch.setattr(proof_action, "check_proof", slow_check)

    submission = asyncio.create_task(worker.submit_proof(task_id, {"code": "aaa"}, invoice))
    await asyncio.wait_for(checking.wait(), timeout=30)
    health = await stack.http.get("/healthz")
    # SQLite runs one transaction at a time, so only PostgreSQL reads the task meanwhile.
    seen = None if stack.services.store.dialect == "sqlite" else await worker.get_task(task_id)
    served_during_check = not checked.is_set()
    release.set()
    submitted = await submission

    assert served_during_check
    assert health.status_code == 200
    assert seen is None or seen["state"] == "CLAIMED"
    assert submitted["state"] == "SUBMITTED"
