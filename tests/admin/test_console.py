"""``taskhold admin`` on a stack's database: pause/resume/status, stuck, reconcile.

The commands run in a thread (each runs its own event loop) against the database the stack
serves, as an operator's shell would beside a running server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select
from support.cli import isolated_logging  # noqa: F401
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import created, funded, submitted
from typer.testing import CliRunner, Result

from taskhold.admin.controls import ask_reconcile, set_intake, wait_reconciled
from taskhold.cli import cli
from taskhold.client import TaskholdAPIError
from taskhold.store.models import AuditRow

pytestmark = pytest.mark.usefixtures("isolated_logging")


async def admin(stack: Stack, *args: str) -> Result:
    url = stack.settings.database_url
    assert url is not None
    argv = ["admin", *args, "--database-url", url]
    return await asyncio.to_thread(CliRunner().invoke, cli, argv)


async def journal(stack: Stack) -> list[tuple[str, str, dict[str, Any]]]:
    async with stack.services.store.transaction() as tx:
        rows = await tx.session.execute(
            select(AuditRow).where(AuditRow.action.like("admin.%")).order_by(AuditRow.seq)
        )
        return [(row.actor, row.action, row.details) for row in rows.scalars()]


async def test_pause_status_resume_from_the_command_line(stack: Stack) -> None:
    employer = stack.client()

    paused = await admin(stack, "pause", "--reason", "node upgrade", "--actor", "ops")
    assert paused.exit_code == 0, paused.output
    assert paused.output.strip() == "intake paused"
    with pytest.raises(TaskholdAPIError) as refused:
        await created(stack, employer)
    assert refused.value.code == "intake_paused"
    assert (await admin(stack, "pause", "--actor", "ops")).output.strip() == (
        "intake was already paused"
    )
    assert "intake paused by admin:ops" in (await admin(stack, "status")).output

    resumed = await admin(stack, "resume", "--actor", "ops")
    assert resumed.output.strip() == "intake resumed"
    assert (await created(stack, employer))["state"] == "DRAFT"
    assert "intake open" in (await admin(stack, "status")).output
    assert await journal(stack) == [
        (
            "admin:ops",
            "admin.pause_intake",
            {"before": False, "after": True, "changed": True, "reason": "node upgrade"},
        ),
        ("admin:ops", "admin.pause_intake", {"before": True, "after": True, "changed": False}),
        ("admin:ops", "admin.resume_intake", {"before": True, "after": False, "changed": True}),
    ]


# -- stuck ----------------------------------------------------------------------------------------


async def test_stuck_lists_failing_payouts_and_holds_near_their_margin(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    failing = await submitted(stack, employer, worker)
    stack.world.network.fail_payments_to(stack.world.worker)
    await employer.approve(failing["task_id"])
    await stack.run_pass()
    near = await funded(stack, employer)
    guard = stack.settings.guard_blocks
    expiry = near["funding"]["accepted_htlc_expiry_height"]
    await stack.world.network.mine(expiry - guard - 5 - stack.world.network.height)
    far = await funded(stack, employer)
    await stack.run_pass()  # the engine notes the height

    report = await admin(stack, "stuck", "--json", "--within", "10")

    assert report.exit_code == 0, report.output
    found = json.loads(report.output)
    assert (found["height"], found["within_blocks"]) == (stack.world.network.height, 10)
    reasons = {(item["task_id"], item["reason"]) for item in found["escrows"]}
    assert (near["task_id"], "near_margin") in reasons
    assert (failing["task_id"], "payout_failing") in reasons
    assert far["task_id"] not in {task_id for task_id, _ in reasons}
    by_reason = {(i["task_id"], i["reason"]): i for i in found["escrows"]}
    close = by_reason[(near["task_id"], "near_margin")]
    assert (close["blocks_left"], close["margin_blocks"], close["state"]) == (
        guard + 5,
        guard,
        "FUNDED",
    )
    payout = by_reason[(failing["task_id"], "payout_failing")]
    assert payout["payout_failures"] == 1 and payout["state"] == "VERIFIED"

    table = await admin(stack, "stuck", "--within", "10")
    assert table.exit_code == 0
    assert near["task_id"] in table.output and "payout_failing" in table.output


async def test_stuck_outside_the_window_and_before_any_height(stack: Stack) -> None:
    before = json.loads((await admin(stack, "stuck", "--json")).output)
    assert before == {"height": None, "height_seen_at": None, "within_blocks": 36, "escrows": []}

    await funded(stack, stack.client())  # its engine passes note the height
    quiet = json.loads((await admin(stack, "stuck", "--json", "--within", "0")).output)
    assert quiet["height"] == stack.world.network.height and quiet["escrows"] == []
    assert "nothing stuck" in (await admin(stack, "stuck", "--within", "0")).output


# -- reconcile ------------------------------------------------------------------------------------


async def test_an_asked_pass_is_run_by_the_engine_once(stack: Stack) -> None:
    employer = stack.client()
    task = await created(stack, employer)
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    await stack.world.employer.send_payment(funding["payment_request"])  # nobody looked yet

    asked = await admin(stack, "reconcile", "--wait", "0", "--actor", "ops")

    assert asked.output.strip() == "engine pass 1 asked for"
    assert (await employer.get_task(task["task_id"]))["state"] == "PENDING_FUNDING"
    engine = stack.services.engine
    assert await engine.reconcile_if_asked() is True
    assert (await employer.get_task(task["task_id"]))["state"] == "FUNDED"
    assert await engine.reconcile_if_asked() is False  # one pass per ask
    assert await wait_reconciled(stack.services.store, 1, timeout_s=0)
    assert await journal(stack) == [("admin:ops", "admin.reconcile", {"ask": 1})]


async def test_reconcile_without_a_running_engine_fails_after_its_wait(stack: Stack) -> None:
    result = await admin(stack, "reconcile", "--wait", "0.3")
    assert result.exit_code == 1
    assert "no engine finished pass 1" in result.output


async def test_a_running_engine_answers_reconcile(tmp_path: Any, database_url: str) -> None:
    stack = await open_stack(stack_settings(tmp_path, database_url), hand_driven=False)
    try:
        await stack.services.engine.start()
        result = await admin(stack, "reconcile", "--wait", "20")
        assert result.exit_code == 0, result.output
        # the engine runs in this process: its log lines share the runner's output
        assert result.output.strip().splitlines()[-1] == "engine pass 1 done"
    finally:
        await stack.services.engine.stop()
        await close_stack(stack)


async def test_concurrent_asks_count_each_once(stack: Stack) -> None:
    """Five operators at once, the first row not written yet: five distinct asks, five
    journal entries, nobody refused."""
    store = stack.services.store
    asks = await asyncio.gather(*(ask_reconcile(store, actor=f"admin:{i}") for i in range(5)))
    assert sorted(asks) == [1, 2, 3, 4, 5]
    assert sorted(details["ask"] for _, _, details in await journal(stack)) == [1, 2, 3, 4, 5]


async def test_concurrent_pauses_are_one_pause(stack: Stack) -> None:
    store = stack.services.store
    changes = await asyncio.gather(
        *(set_intake(store, paused=True, actor=f"admin:{i}") for i in range(4))
    )
    assert sorted(change.changed for change in changes) == [False, False, False, True]
