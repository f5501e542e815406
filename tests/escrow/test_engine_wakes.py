"""A request wakes the escrow engine only when it changed what the engine owes the task.

A pass after a write that owes nothing new (a create, a claim) would find what the last pass
found, and costs the event loop a pass's queries; a write that makes a payment or a timer due
(an approval owes a release) must still get its pass at once, not at the next tick. (A running
engine starts an approval's release job itself instead: ``test_approval_starts_release.py``.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import created, funded, submitted

from taskhold.escrow import EscrowEngine
from taskhold.tasks import Task

HOUR_S = 3600


class _Unwatching(EscrowEngine):
    """An engine that runs its loop but follows no invoice: only requests and its own payment
    jobs wake it."""

    def watch(self, task_id: str, payment_hash_hex: str) -> None:
        return None

    def watch_deposits(self, task: Task) -> None:
        return None


def _record_wakes(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> list[None]:
    wakes: list[None] = []
    monkeypatch.setattr(stack.services.engine, "notify", lambda: wakes.append(None))
    return wakes


async def test_a_create_and_a_claim_owe_the_engine_nothing_new_and_do_not_wake_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    employer = stack.client()
    task = await funded(stack, employer)
    wakes = _record_wakes(stack, monkeypatch)

    await created(stack, employer)
    await stack.client().claim(task["task_id"])

    assert wakes == []


async def test_an_approval_owes_a_release_and_wakes_the_engine(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    employer = stack.client()
    task = await submitted(stack, employer, stack.client())
    wakes = _record_wakes(stack, monkeypatch)

    await employer.approve(task["task_id"])

    assert len(wakes) == 1


async def test_a_retried_approval_does_not_wake_the_engine_again(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    employer = stack.client()
    task = await submitted(stack, employer, stack.client())
    await employer.approve(task["task_id"], idempotency_key="approve-once")
    wakes = _record_wakes(stack, monkeypatch)

    await employer.approve(task["task_id"], idempotency_key="approve-once")

    assert wakes == []


async def test_a_running_engine_pays_an_approval_long_before_its_tick(
    tmp_path: Path, database_url: str
) -> None:
    """The engine's tick and reconcile are an hour apart here: only the approval's wake can
    start the pass that pays the worker. The engine follows no invoice: a report of the
    task's funding would wake it too."""
    settings = stack_settings(
        tmp_path, database_url, engine_tick_s=HOUR_S, reconcile_interval_s=HOUR_S
    )
    stack = await open_stack(settings)
    engine = _Unwatching(stack.services.engine.ctx)
    try:
        employer = stack.client()
        task = await submitted(stack, employer, stack.client())
        stack.services.engine = stack.services.writes.engine = engine
        await engine.start()  # its first pass finds nothing due; then it waits for the tick

        await employer.approve(task["task_id"])
        state = ""
        for _ in range(600):  # a bound for the failure only; a woken pass pays within a second
            state = (await employer.get_task(task["task_id"]))["state"]
            if state == "PAID":
                break
            await asyncio.sleep(0.05)

        assert state == "PAID"
    finally:
        await engine.stop()
        await close_stack(stack)
