"""taskhold on a pool of two real lnd escrow nodes (``lnd_pool=["escrow", "escrow-2"]`` on the
run's pool devnet): tasks spread over both nodes, each worker paid once from its task's node,
and a node stopped mid-run delays only its own tasks, which finish once it is back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.audit_logs import audit_stored_log
from support.devnet_network import DevnetHandle, get_pool_devnet

from taskhold.client import TaskholdClient
from taskhold.lightning.pool import PoolBackend

from .test_escrow_e2e import (
    ACCEPTANCE,
    EscrowStack,
    lnd_settings,
    open_escrow_stack,
    settled_balance,
)

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.pool_devnet]

AMOUNT_MSAT = 20_000_000
TASKS = 4
NODES = ("escrow", "escrow-2")


@pytest.fixture(scope="module")
def pool_devnet() -> DevnetHandle:
    return get_pool_devnet()


@pytest.fixture
async def pool_stack(
    pool_devnet: DevnetHandle, tmp_path: Path, database_url: str
) -> AsyncIterator[EscrowStack]:
    """taskhold on both escrow nodes of the pool devnet, its engine driven by hand; on SQLite
    (placements in their side file) and on PostgreSQL (the placements table)."""
    settings = lnd_settings(pool_devnet, tmp_path / "data", database_url, lnd_pool=list(NODES))
    async with open_escrow_stack(pool_devnet, settings) as stack:
        assert isinstance(stack.services.lightning, PoolBackend)
        yield stack


async def _even_out(stack: EscrowStack, devnet: DevnetHandle) -> None:
    """Bring the two nodes' inbound room within half a task of each other, so tasks alternate
    over them: the pool places each on the node with the most room, and the devnet gives the
    first node a channel more. The employer pays the roomier node ordinary invoices (exact to
    the msat, unlike a new channel, whose reserve and fees are not)."""
    pool = stack.services.lightning
    assert isinstance(pool, PoolBackend)
    for _ in range(10):
        rooms = {m.name: (await m.backend.capacity()).inbound_msat for m in pool.members}
        roomier = max(rooms, key=lambda name: rooms[name])
        gap = rooms[roomier] - min(rooms.values())
        if gap <= AMOUNT_MSAT:
            return
        amount = min(gap - AMOUNT_MSAT // 2, 4_000_000_000)  # one HTLC's most
        wallet = devnet.wallet(roomier)
        try:
            invoice = await wallet.create_invoice(amount)
        finally:
            await wallet.close()
        paid = await stack.employer_wallet.send_payment(invoice.payment_request)
        assert paid.status.value in ("IN_FLIGHT", "SUCCEEDED"), paid
        member = next(m.backend for m in pool.members if m.name == roomier)
        for _ in range(100):  # until the node counts it
            if (await member.capacity()).inbound_msat <= rooms[roomier] - amount:
                break
            await asyncio.sleep(0.2)
    raise AssertionError(f"the pool's nodes' inbound room did not even out: {rooms}")


async def _fund(stack: EscrowStack, employer: TaskholdClient) -> dict[str, Any]:
    task = await employer.create_task(
        "Pool task", "", AMOUNT_MSAT, int(time.time()) + 1800, acceptance=ACCEPTANCE
    )
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    paid = await stack.employer_wallet.send_payment(funding["payment_request"])
    assert paid.status.value in ("IN_FLIGHT", "SUCCEEDED"), paid
    return task


async def _states(employer: TaskholdClient, ids: list[str]) -> dict[str, str]:
    return {i: (await employer.get_task(i))["state"] for i in ids}


async def _verified_tasks(
    stack: EscrowStack, devnet: DevnetHandle, employer: TaskholdClient, worker: TaskholdClient
) -> dict[str, str]:
    """``TASKS`` tasks funded from the employer's node, claimed, proven and approved by hand
    later; task id → the pool member holding its hold invoice."""
    await _even_out(stack, devnet)
    ids = [(await _fund(stack, employer))["task_id"] for _ in range(TASKS)]

    async def all_funded() -> bool:
        return set((await _states(employer, ids)).values()) == {"FUNDED"}

    await stack.drive(all_funded)
    placed = {}
    for task_id in ids:
        task = await employer.get_task(task_id)
        payment_hash = bytes.fromhex(task["funding"]["payment_hash"])
        placed[task_id] = await stack.services.lightning.member_of(payment_hash)  # type: ignore[attr-defined]
        await worker.claim(task_id)
        invoice = await stack.worker_wallet.create_invoice(
            task["payout_msat"], expiry_seconds=86_400
        )
        await worker.submit_proof(
            task_id, {"url": "https://example.org/r"}, invoice.payment_request
        )
    assert set(placed.values()) == set(NODES), placed  # both nodes hold tasks
    return placed


async def _payouts(employer: TaskholdClient, ids: list[str]) -> int:
    return sum([(await employer.get_task(i))["payout_msat"] for i in ids])


async def _assert_paid_once(stack: EscrowStack, worker_before: int, expected: int) -> None:
    assert await settled_balance(stack.worker_wallet) - worker_before == expected
    audited = await audit_stored_log(stack.services)
    assert audited.clean, [finding.to_json() for finding in audited.findings]
    assert audited.summary.payouts == TASKS and audited.summary.payout_proven


async def test_tasks_spread_over_both_nodes_and_each_worker_is_paid_once(
    pool_stack: EscrowStack, pool_devnet: DevnetHandle
) -> None:
    # The pool devnet keeps its escrow keys in the nodes (no `--remote-signer`): with the
    # shared devnet on a remote signer, this is the suite's devnet without one.
    assert json.loads(pool_devnet.connection_file.read_text())["remote_signer"] is None
    employer, worker = pool_stack.client(), pool_stack.client()
    worker_before = await settled_balance(pool_stack.worker_wallet)
    placed = await _verified_tasks(pool_stack, pool_devnet, employer, worker)
    ids = list(placed)
    for task_id in ids:
        await employer.approve(task_id)

    async def all_paid() -> bool:
        return set((await _states(employer, ids)).values()) == {"PAID"}

    await pool_stack.drive(all_paid)
    await _assert_paid_once(pool_stack, worker_before, await _payouts(employer, ids))


async def test_a_stopped_node_delays_only_its_own_tasks(
    pool_stack: EscrowStack, pool_devnet: DevnetHandle
) -> None:
    employer, worker = pool_stack.client(), pool_stack.client()
    worker_before = await settled_balance(pool_stack.worker_wallet)
    placed = await _verified_tasks(pool_stack, pool_devnet, employer, worker)
    on_first = [t for t, node in placed.items() if node == "escrow"]
    on_second = [t for t, node in placed.items() if node == "escrow-2"]
    await pool_devnet.stop_node("escrow-2")
    try:
        for task_id in placed:
            await employer.approve(task_id)

        async def first_paid() -> bool:
            return set((await _states(employer, on_first)).values()) == {"PAID"}

        await pool_stack.drive(first_paid)
        # A few more passes: escrow-2's tasks stay verified, their holds untouched.
        for _ in range(3):
            await pool_stack.services.engine.reconcile()
        assert set((await _states(employer, on_second)).values()) == {"VERIFIED"}
    finally:
        await pool_devnet.start_node("escrow-2")

    async def all_paid() -> bool:
        return set((await _states(employer, list(placed))).values()) == {"PAID"}

    await pool_stack.drive(all_paid, timeout_s=120)
    await _assert_paid_once(pool_stack, worker_before, await _payouts(employer, list(placed)))
