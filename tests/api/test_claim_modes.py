"""Claim modes and claim discipline over the HTTP API, on both databases and the simulator:
a squatter revoked after the claim timeout while the hold stays, a race of applicants and
assignments, a direct task, an unclaim, and who may send the new ops (written out by hand)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from support.deposit_flows import (
    deposit_of,
    give_worker_wallet_money,
    locked_deposit,
    share_clock,
    stranger,
)
from support.stacks import Stack
from support.task_flows import created, funded

from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.lightning.base import InvoiceState
from taskhold.settings import Settings

TIMEOUT = 600


async def refused(write: Awaitable[Any]) -> tuple[int, str]:
    with pytest.raises(TaskholdAPIError) as caught:
        await write
    return caught.value.status, caught.value.code


async def proof_and_approval(
    stack: Stack, employer: TaskholdClient, worker: TaskholdClient, task: dict[str, Any]
) -> dict[str, Any]:
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task["task_id"], {"url": "https://example.org/haiku"}, invoice)
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    return await employer.get_task(task["task_id"])


async def test_a_squatter_is_revoked_after_the_timeout_and_a_second_worker_is_paid(
    stack: Stack,
) -> None:
    now = [1_900_000_000.0]
    employer, squatter, worker = stack.client(), stack.client(), stack.client()
    share_clock(stack, now, employer, squatter, worker)
    world = stack.world
    employer_start, worker_start, escrow_start = (
        world.employer.balance_msat,
        world.worker.balance_msat,
        world.escrow.balance_msat,
    )
    task = await funded(stack, employer, deadline_at=int(now[0]) + 3600, claim_timeout_s=TIMEOUT)
    task_id = task["task_id"]
    assert task["claim_mode"] == "open" and task["claim_timeout_s"] == TIMEOUT
    await squatter.claim(task_id)

    assert await refused(employer.revoke(task_id)) == (409, "claim_timeout_running")
    now[0] += TIMEOUT
    assert await refused(squatter.revoke(task_id)) == (403, "wrong_role")
    revoked = await employer.revoke(task_id, "no word for ten minutes")
    assert revoked["state"] == "FUNDED" and revoked["worker_pubkey"] is None
    assert revoked["barred_workers"] == [squatter.pubkey_hex]
    assert await refused(squatter.claim(task_id)) == (403, "barred_worker")

    await stack.settle_engine()  # nothing is refunded: the hold stays accepted
    escrow_hash = bytes.fromhex(task["funding"]["payment_hash"])
    assert (await world.escrow.lookup_invoice(escrow_hash)).state is InvoiceState.ACCEPTED
    assert (await employer.get_task(task_id))["state"] == "FUNDED"

    await worker.claim(task_id)
    final = await proof_and_approval(stack, employer, worker, task)
    assert final["state"] == "PAID" and final["worker_pubkey"] == worker.pubkey_hex
    assert world.worker.balance_msat == worker_start + task["payout_msat"]
    assert world.employer.balance_msat == employer_start - task["amount_msat"]
    fee_kept = task["amount_msat"] - task["payout_msat"] - final["payout_fee_msat"]
    assert world.escrow.balance_msat == escrow_start + fee_kept
    history = [t["event_type"] for t in (await employer.transitions(task_id))["transitions"]]
    assert history.count("ClaimRevoked") == 1 and "RefundOrdered" not in history


async def test_fifty_applicants_race_and_one_assignment_wins(stack: Stack) -> None:
    employer = stack.client()
    task = await funded(stack, employer, claim_mode="apply")
    task_id = task["task_id"]
    applicants = [stack.client() for _ in range(50)]

    filed = await asyncio.gather(
        *(a.apply(task_id, f"applicant {i}") for i, a in enumerate(applicants)),
        return_exceptions=True,
    )
    assert [r for r in filed if not isinstance(r, dict)] == []
    listed = await employer.get_task(task_id)
    assert listed["applicants_count"] == 50
    assert set(listed["applicants"]) == {a.pubkey_hex for a in applicants}

    assert await refused(applicants[-1].claim(task_id)) == (409, "apply_only")
    picks = applicants[:10]
    results = await asyncio.gather(
        *(employer.assign(task_id, p.pubkey_hex) for p in picks), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, dict)]
    losers = [r for r in results if isinstance(r, TaskholdAPIError)]
    assert len(winners) == 1 and len(losers) == 9
    assert {(e.status, e.code) for e in losers} == {(409, "wrong_state")}
    final = await employer.get_task(task_id)
    assert final["state"] == "CLAIMED"
    assert final["worker_pubkey"] == winners[0]["worker_pubkey"]
    history = [t["event_type"] for t in (await employer.transitions(task_id))["transitions"]]
    assert history.count("ApplicationFiled") == 50 and history.count("WorkerAssigned") == 1


async def test_applications_are_capped(stack: Stack) -> None:
    stack.services.settings.applications_max_per_task = 2
    employer = stack.client()
    task_id = (await funded(stack, employer, claim_mode="apply"))["task_id"]
    for _ in range(2):
        await stack.client().apply(task_id, "me")
    assert await refused(stack.client().apply(task_id, "me")) == (409, "too_many_applications")


async def test_an_assigned_worker_is_paid(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer, claim_mode="apply")
    await worker.apply(task["task_id"], "I write haiku")
    assigned = await employer.assign(task["task_id"], worker.pubkey_hex)
    assert assigned["state"] == "CLAIMED" and assigned["worker_pubkey"] == worker.pubkey_hex
    final = await proof_and_approval(stack, employer, worker, task)
    assert final["state"] == "PAID"
    assert stack.world.worker.balance_msat == task["payout_msat"]


async def test_a_direct_task_refuses_every_other_key(stack: Stack) -> None:
    employer, chosen, others = stack.client(), stack.client(), [stack.client() for _ in range(3)]
    task = await funded(stack, employer, claim_mode="direct", direct_worker=chosen.pubkey_hex)
    task_id = task["task_id"]
    for other in others:
        assert await refused(other.claim(task_id)) == (403, "direct_worker_only")
        assert await refused(other.apply(task_id, "me?")) == (409, "not_apply_mode")
        assert await refused(employer.assign(task_id, other.pubkey_hex)) == (
            409,
            "not_apply_mode",
        )
    assert (await employer.get_task(task_id))["state"] == "FUNDED"
    claimed = await chosen.claim(task_id)
    assert claimed["worker_pubkey"] == chosen.pubkey_hex
    final = await proof_and_approval(stack, employer, chosen, task)
    assert final["state"] == "PAID"
    assert stack.world.worker.balance_msat == task["payout_msat"]


@pytest.mark.parametrize(
    ("terms", "code"),
    [
        ({"claim_mode": "direct"}, "bad_claim_mode"),
        ({"claim_mode": "apply", "direct_worker": "ab" * 32}, "bad_claim_mode"),
        ({"claim_mode": "first"}, "invalid_content"),
        ({"direct_worker": "not hex", "claim_mode": "direct"}, "invalid_content"),
        ({"claim_timeout_s": 0}, "invalid_content"),
        ({"claim_timeout_s": 10 * 3600}, "bad_claim_timeout"),
    ],
)
async def test_create_refuses_bad_claim_terms(
    stack: Stack, terms: dict[str, Any], code: str
) -> None:
    status, found = await refused(created(stack, stack.client(), **terms))
    assert (status in (400, 409, 422), found) == (True, code)


async def test_the_default_claim_timeout_is_published_and_capped_by_the_deadline(
    stack: Stack,
) -> None:
    employer = stack.client()
    info = await employer.info()
    assert info["default_claim_timeout_s"] == stack.settings.default_claim_timeout_s
    assert info["limits"]["applications_max_per_task"] == 100
    near = await created(stack, employer)  # deadline in an hour: half of it
    assert 0 < near["claim_timeout_s"] <= 1800
    far = await created(stack, employer, deadline_at=int(time.time()) + 86_400)
    assert far["claim_timeout_s"] == stack.settings.default_claim_timeout_s


async def test_a_worker_unclaims_and_cannot_come_back(stack: Stack) -> None:
    employer, worker, other = stack.client(), stack.client(), stack.client()
    task_id = (await funded(stack, employer, claim_timeout_s=TIMEOUT))["task_id"]
    await worker.claim(task_id)
    released = await worker.unclaim(task_id)
    assert released["state"] == "FUNDED" and released["barred_workers"] == [worker.pubkey_hex]
    assert await refused(worker.claim(task_id)) == (403, "barred_worker")
    assert (await other.claim(task_id))["worker_pubkey"] == other.pubkey_hex
    assert await refused(worker.unclaim(task_id)) == (403, "wrong_role")


# --- who may send the new ops, written out by hand ------------------------------------------

OK = (200, "ok")
WRONG_ROLE = (403, "wrong_role")
NO_SUCH_PARTY = None

# op, then the answer to the employer, the worker (an applicant for apply/assign), a stranger.
RULES: list[tuple[str, Any, Any, Any]] = [
    ("apply", WRONG_ROLE, OK, OK),
    ("assign", OK, WRONG_ROLE, WRONG_ROLE),
    ("unclaim", WRONG_ROLE, OK, WRONG_ROLE),
    ("revoke", OK, WRONG_ROLE, WRONG_ROLE),
]


async def _scene(
    stack: Stack, op: str
) -> tuple[str, dict[str, TaskholdClient], Callable[[TaskholdClient], Awaitable[Any]]]:
    now = [1_900_000_000.0]
    employer, worker, stranger = stack.client(), stack.client(), stack.client()
    share_clock(stack, now, employer, worker, stranger)
    mode = "apply" if op in ("apply", "assign") else "open"
    task_id = (
        await funded(
            stack,
            employer,
            claim_mode=mode,
            claim_timeout_s=TIMEOUT,
            deadline_at=int(now[0]) + 3600,
        )
    )["task_id"]
    if op == "assign":
        await worker.apply(task_id, "me")
    elif op in ("unclaim", "revoke"):
        await worker.claim(task_id)
        now[0] += TIMEOUT
    writes: dict[str, Callable[[TaskholdClient], Awaitable[Any]]] = {
        "apply": lambda c: c.apply(task_id, "let me"),
        "assign": lambda c: c.assign(task_id, worker.pubkey_hex),
        "unclaim": lambda c: c.unclaim(task_id),
        "revoke": lambda c: c.revoke(task_id, "gone quiet"),
    }
    return task_id, {"employer": employer, "worker": worker, "stranger": stranger}, writes[op]


@pytest.mark.parametrize(
    ("op", *("employer", "worker", "stranger")), RULES, ids=[r[0] for r in RULES]
)
async def test_who_may_send_the_claim_ops(
    stack: Stack, op: str, employer: Any, worker: Any, stranger: Any
) -> None:
    expected = {"employer": employer, "worker": worker, "stranger": stranger}
    for role in ("stranger", "worker", "employer"):  # refused ones first, the allowed one last
        task_id, parties, write = await _scene(stack, op)
        before = await parties["employer"].get_task(task_id)
        try:
            await write(parties[role])
            answer = OK
        except TaskholdAPIError as refusal:
            answer = (refusal.status, refusal.code)
        assert answer == expected[role], (op, role)
        after = await parties["employer"].get_task(task_id)
        assert (after == before) == (answer != OK), (op, role)


async def test_an_applicant_passes_the_same_gate_as_a_claimant(open_custom: Any) -> None:
    """Proof of work (or a held deposit) is asked of the applicant's own signed request, so an
    assignment needs no more; the assignee's deposit then stands and the others' come back."""
    stack = await open_custom(pow_max_bits=8, reputation_max_staleness_s=0)
    await give_worker_wallet_money(stack)
    employer, lazy, staked = stack.client(), stranger(stack), stranger(stack)
    task_id = (await funded(stack, employer, claim_mode="apply"))["task_id"]
    assert (await refused(lazy.apply(task_id, "me")))[1] == "pow_required"
    await locked_deposit(stack, staked, task_id, stack.world.worker)
    await staked.apply(task_id, "my deposit is held")
    miner = stack.client()  # mines its proof of work
    await miner.apply(task_id, "I mined")
    await locked_deposit(stack, lazy, task_id, stack.world.worker)
    await lazy.apply(task_id, "now with a deposit")
    assigned = await employer.assign(task_id, staked.pubkey_hex)
    assert deposit_of(assigned, staked.pubkey_hex)["state"] == "HELD"
    assert deposit_of(assigned, lazy.pubkey_hex)["state"] == "RETURNING"


@pytest.mark.parametrize("how", ["unclaim early", "unclaim late", "revoke"])
async def test_a_deposit_comes_back_on_an_early_unclaim_only(open_custom: Any, how: str) -> None:
    stack = await open_custom(pow_max_bits=8, reputation_max_staleness_s=0)
    await give_worker_wallet_money(stack)
    now = [1_900_000_000.0]
    employer, worker = stack.client(), stranger(stack)
    share_clock(stack, now, employer, worker)
    terms = {"claim_timeout_s": TIMEOUT, "deadline_at": int(now[0]) + 3600}
    task_id = (await funded(stack, employer, **terms))["task_id"]
    await locked_deposit(stack, worker, task_id, stack.world.worker)
    await worker.claim(task_id)
    if how != "unclaim early":
        now[0] += TIMEOUT
    task = await (employer.revoke(task_id) if how == "revoke" else worker.unclaim(task_id))
    deposit = deposit_of(task, worker.pubkey_hex)
    if how == "unclaim early":
        assert (deposit["state"], deposit["beneficiary"]) == ("RETURNING", None)
    else:
        assert (deposit["state"], deposit["beneficiary"]) == ("FORFEIT", employer.pubkey_hex)


@pytest.mark.parametrize("name", ["default_claim_timeout_s", "applications_max_per_task"])
def test_claim_settings_must_be_positive(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, **{name: 0})
