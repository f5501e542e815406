"""Who may do what, written out by hand and checked over the HTTP API (both databases).

The table below is deliberately NOT derived from ``taskhold.tasks.machine.TRANSITIONS``: a test that
reads the rules it checks passes whatever the rules say, so a worker allowed to approve their own
submission would go unnoticed. Each row puts a task in the state the operation acts on and lets
the employer, the claimed worker, a stranger and a configured arbiter try it; every refused
attempt must leave the task exactly as it was, and the allowed one must change it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.deposit_flows import abandoned_claim, give_worker_wallet_money, share_clock
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import funded, submitted

from taskhold.client import TaskholdAPIError, TaskholdClient

OK = (200, "ok")
WRONG_ROLE = (403, "wrong_role")
WRONG_STATE = (409, "wrong_state")
OWN_PROPOSAL = (403, "own_proposal")
NOT_YOUR_PROPOSAL = (403, "not_your_proposal")
NO_SUCH_PARTY = None
"""The role does not exist yet in that state (a FUNDED task has no worker)."""

ROLES = ("employer", "worker", "stranger", "arbiter")

# op, the task's state, then the answer to the employer, worker, stranger, arbiter, and the state
# the allowed write leaves the task in.
RULES: list[tuple[str, str, Any, Any, Any, Any, str]] = [
    ("approve", "SUBMITTED", OK, WRONG_ROLE, WRONG_ROLE, WRONG_ROLE, "VERIFIED"),
    ("reject", "SUBMITTED", OK, WRONG_ROLE, WRONG_ROLE, WRONG_ROLE, "CLAIMED"),
    ("resolve", "DISPUTED", WRONG_ROLE, WRONG_ROLE, WRONG_ROLE, OK, "VERIFIED"),
    ("cancel", "FUNDED", OK, NO_SUCH_PARTY, WRONG_ROLE, WRONG_ROLE, "FUNDED"),
    ("cancel", "CLAIMED", WRONG_STATE, WRONG_ROLE, WRONG_ROLE, WRONG_ROLE, "CLAIMED"),
    ("payout-invoice", "SUBMITTED", WRONG_ROLE, OK, WRONG_ROLE, WRONG_ROLE, "SUBMITTED"),
    # The worker abandoned the claim: their deposit is forfeit to the employer.
    ("deposit-payout", "REFUNDED", OK, WRONG_ROLE, WRONG_ROLE, WRONG_ROLE, "REFUNDED"),
    # Agreements: the two parties only; the employer's proposal of 0 (a cancel) stands for
    # accept and withdraw, so the employer may not accept it and the worker may not withdraw it.
    ("propose-agreement", "SUBMITTED", OK, OK, WRONG_ROLE, WRONG_ROLE, "SUBMITTED"),
    ("accept-agreement", "SUBMITTED", OWN_PROPOSAL, OK, WRONG_ROLE, WRONG_ROLE, "SUBMITTED"),
    (
        "withdraw-agreement", "SUBMITTED", OK, NOT_YOUR_PROPOSAL, WRONG_ROLE, WRONG_ROLE,
        "SUBMITTED",
    ),
]  # fmt: skip


@dataclass
class Scene:
    stack: Stack
    task_id: str
    parties: dict[str, TaskholdClient]
    statuses: list[int]
    write: Callable[[TaskholdClient], Awaitable[dict[str, Any]]]


@pytest.fixture
async def pow_stack(tmp_path: Path, database_url: str) -> Any:
    """Proof of work on, so a worker may lock a deposit instead (the deposit-payout row)."""
    settings = stack_settings(tmp_path, database_url, pow_max_bits=8, reputation_max_staleness_s=0)
    stack = await open_stack(settings)
    await give_worker_wallet_money(stack)
    try:
        yield stack
    finally:
        await close_stack(stack)


async def _scene(stack: Stack, op: str, state: str) -> Scene:
    statuses: list[int] = []

    async def keep(response: httpx.Response) -> None:
        statuses.append(response.status_code)

    stack.http.event_hooks["response"].append(keep)
    arbiter = stack.client()
    stack.services.settings.arbiters = [arbiter.pubkey_hex]
    stranger = stack.client()
    if op == "deposit-payout":
        gone = await abandoned_claim(stack)
        employer, worker, task_id = gone.employer, gone.worker, gone.task_id
        share_clock(stack, gone.now, employer, worker, stranger, arbiter)
        worker._auto_pow = True  # its forfeited deposit no longer stands in for proof of work
        deposit = (await employer.get_task(task_id))["deposits"][0]
        invoice = await stack.world.employer.create_invoice(
            deposit["amount_msat"], expiry_seconds=86_400
        )

        async def claim_deposit(client: TaskholdClient) -> dict[str, Any]:
            return await client.claim_deposit(task_id, worker.pubkey_hex, invoice)

        parties = {"employer": employer, "worker": worker, "stranger": stranger}
        return Scene(stack, task_id, {**parties, "arbiter": arbiter}, statuses, claim_deposit)

    employer, worker = stack.client(), stack.client()
    payout_msat = 1
    if state == "FUNDED":
        task_id = (await funded(stack, employer))["task_id"]
    elif state == "CLAIMED":
        task_id = (await funded(stack, employer))["task_id"]
        await worker.claim(task_id)
    else:
        task = await submitted(stack, employer, worker)
        task_id, payout_msat = task["task_id"], task["payout_msat"]
        if state == "DISPUTED":
            await employer.open_dispute(task_id, "not five-seven-five")
        if op in ("accept-agreement", "withdraw-agreement"):
            await employer.propose_agreement(task_id, 0, "let us part")
    parties = {"employer": employer, "worker": worker, "stranger": stranger, "arbiter": arbiter}
    new_invoice = await stack.world.worker.create_invoice(payout_msat, expiry_seconds=86_400)
    writes: dict[str, Callable[[TaskholdClient], Awaitable[dict[str, Any]]]] = {
        "approve": lambda c: c.approve(task_id),
        "reject": lambda c: c.reject(task_id, "the third line has six syllables"),
        "resolve": lambda c: c.resolve_dispute(task_id, "worker", "the haiku scans"),
        "cancel": lambda c: c.cancel(task_id, "changed my mind"),
        "payout-invoice": lambda c: c.update_payout_invoice(task_id, new_invoice),
        "propose-agreement": lambda c: c.propose_agreement(task_id, 0, "let us part"),
        "accept-agreement": lambda c: c.accept_agreement(task_id, 0),
        "withdraw-agreement": lambda c: c.withdraw_agreement(task_id),
    }
    return Scene(stack, task_id, parties, statuses, writes[op])


async def _attempt(scene: Scene, role: str) -> tuple[int, str]:
    try:
        await scene.write(scene.parties[role])
    except TaskholdAPIError as refused:
        return refused.status, refused.code
    return scene.statuses[-1], "ok"


@pytest.mark.parametrize(
    ("op", "state", "employer", "worker", "stranger", "arbiter", "after"),
    RULES,
    ids=[f"{row[0]}@{row[1]}" for row in RULES],
)
async def test_who_may_do_what(
    pow_stack: Stack,
    op: str,
    state: str,
    employer: Any,
    worker: Any,
    stranger: Any,
    arbiter: Any,
    after: str,
) -> None:
    expected = dict(zip(ROLES, (employer, worker, stranger, arbiter), strict=True))
    scene = await _scene(pow_stack, op, state)
    reader = scene.parties["employer"]
    before = await reader.get_task(scene.task_id)
    assert before["state"] == state

    allowed = [role for role in ROLES if expected[role] == OK]
    refused_first = [r for r in ROLES if expected[r] not in (OK, NO_SUCH_PARTY)]
    got: dict[str, Any] = {role: NO_SUCH_PARTY for role in ROLES}
    for role in refused_first:
        got[role] = await _attempt(scene, role)
        unchanged = await reader.get_task(scene.task_id)
        assert (unchanged["version"], unchanged["state"]) == (before["version"], state), role
    for role in allowed:
        got[role] = await _attempt(scene, role)

    assert got == expected
    changed = await reader.get_task(scene.task_id)
    if allowed:
        assert changed["version"] > before["version"]
    assert changed["state"] == after


async def test_an_arbiter_who_is_not_configured_is_a_stranger(stack: Stack) -> None:
    employer, worker, would_be_arbiter = stack.client(), stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await employer.reject(task["task_id"], "the third line has six syllables")
    await worker.open_dispute(task["task_id"], "the haiku scans")

    with pytest.raises(TaskholdAPIError) as refused:
        await would_be_arbiter.resolve_dispute(task["task_id"], "worker", "looks fine")

    assert (refused.value.status, refused.value.code) == WRONG_ROLE
    assert (await employer.get_task(task["task_id"]))["state"] == "DISPUTED"


async def test_no_cancel_by_agreement_once_a_payout_may_be_in_flight(stack: Stack) -> None:
    """Approved: the engine is paying the worker. Neither party can then agree on a cancel,
    whose refund would cancel the hold under the live payout; a proposal made before lapses."""
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await worker.propose_agreement(task["task_id"], 0, "let us part")
    await employer.approve(task["task_id"])
    verified = await employer.get_task(task["task_id"])
    assert verified["state"] == "VERIFIED" and verified["agreement"] is None
    for attempt in (
        employer.accept_agreement(task["task_id"], 0),
        employer.propose_agreement(task["task_id"], 0),
        worker.propose_agreement(task["task_id"], 0),
    ):
        with pytest.raises(TaskholdAPIError) as refused:
            await attempt
        assert (refused.value.status, refused.value.code) == WRONG_STATE
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
