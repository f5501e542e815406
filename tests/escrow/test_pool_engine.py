"""taskhold on a pool of two escrow nodes (simulator), placements in the database.

Tasks spread over both nodes; when one node is down mid-run its tasks wait and finish after it
comes back, and the other node's tasks are not held up; every worker is paid exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import created, funded, submitted

from taskhold.client import TaskholdAPIError
from taskhold.lightning.pool import PoolBackend, PoolMember
from taskhold.lightning.sim import SimNode
from taskhold.lightning.simworld import SimWorld
from taskhold.store.placements import StorePlacements

TASKS = 4


@pytest.fixture
async def pooled(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Stack, SimNode]]:
    world = SimWorld.create()
    second = SimNode(world.network, "escrow-2", balance_msat=50_000_000_000)
    placements = StorePlacements()
    pool = PoolBackend(
        [PoolMember("escrow", world.escrow), PoolMember("escrow-2", second)], placements
    )
    stack = await open_stack(
        stack_settings(tmp_path, database_url, max_key_share=1.0), world, lightning=pool
    )
    placements.bind(stack.services.store, stack.settings.data_dir)
    try:
        yield stack, second
    finally:
        await close_stack(stack)


async def placements_by_node(stack: Stack, payment_hashes: list[str]) -> dict[str, str]:
    pool = stack.services.lightning
    assert isinstance(pool, PoolBackend)
    return {h: await pool.member_of(bytes.fromhex(h)) for h in payment_hashes}


async def test_tasks_spread_and_a_node_down_delays_only_its_own(
    pooled: tuple[Stack, SimNode],
) -> None:
    stack, second = pooled
    employer = stack.client()
    tasks = [await submitted(stack, employer, stack.client()) for _ in range(TASKS)]
    placed = await placements_by_node(stack, [t["funding"]["payment_hash"] for t in tasks])
    node_of = {t["task_id"]: placed[t["funding"]["payment_hash"]] for t in tasks}
    assert sorted(node_of.values()) == ["escrow"] * (TASKS // 2) + ["escrow-2"] * (TASKS // 2)

    second.unreachable = True  # escrow-2 stops mid-run
    for task in tasks:
        await employer.approve(task["task_id"])
    await stack.settle_engine()
    states = {t["task_id"]: (await employer.get_task(t["task_id"]))["state"] for t in tasks}
    for task_id, node in node_of.items():
        assert states[task_id] == ("PAID" if node == "escrow" else "VERIFIED"), (node, states)

    second.unreachable = False
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()
    for task in tasks:
        assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    worker = stack.world.worker.pubkey_hex
    received = [p for p in stack.world.network.settled_payments if p.payee_pubkey_hex == worker]
    assert len(received) == TASKS  # each worker paid exactly once
    by_payer = {p.payer_pubkey_hex for p in received}
    assert by_payer == {stack.world.escrow.pubkey_hex, second.pubkey_hex}  # each from its node


async def test_one_hash_placed_twice_at_once_has_one_winner(
    pooled: tuple[Stack, SimNode],
) -> None:
    """Two replicas placing one hash at once: both go where the first commit put it."""
    stack, _ = pooled
    directory = StorePlacements()
    directory.bind(stack.services.store, stack.settings.data_dir)
    payment_hash = bytes(range(32))
    try:
        first, second = await asyncio.gather(
            directory.place(payment_hash, "escrow"), directory.place(payment_hash, "escrow-2")
        )
        assert first == second == await directory.node_of(payment_hash)
    finally:
        directory.close()


async def test_a_payout_invoice_of_any_pool_node_is_refused(
    pooled: tuple[Stack, SimNode],
) -> None:
    """A payout to one of the escrow's own nodes would pay the operator: refused for every
    member, not only the first."""
    stack, second = pooled
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    own = await second.create_invoice(task["payout_msat"], expiry_seconds=86_400)

    with pytest.raises(TaskholdAPIError) as refused:
        await worker.submit_proof(task["task_id"], {"url": "https://example.org/x"}, own)

    assert (refused.value.status, refused.value.code) == (422, "payout_to_escrow_node")


async def test_room_in_sum_but_on_no_one_node_is_refused_like_admission(
    pooled: tuple[Stack, SimNode],
) -> None:
    """Two nodes with 100k sat of inbound room each take no 150k sat task: the pool's sum
    passes admission, the placement finds no node, and the answer is the same 503."""
    stack, second = pooled
    stack.world.network.set_channels(stack.world.escrow, inbound_msat=100_000_000)
    stack.world.network.set_channels(second, inbound_msat=100_000_000)
    employer = stack.client()
    task = await created(stack, employer)

    with pytest.raises(TaskholdAPIError) as refused:
        await employer.request_funding(task["task_id"])

    assert (refused.value.status, refused.value.code) == (503, "insufficient_capacity")
    assert refused.value.problem["limit"] == "no_node_fits"
    assert (await employer.get_task(task["task_id"]))["state"] == "DRAFT"
