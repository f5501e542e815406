"""An escrow node whose only channel takes at most 5 incoming HTLCs (``remote_max_htlcs=5``,
lnd's least), on real lnd: taskhold accepts five tasks, every one is held over that channel and
paid out, and the sixth funding request is refused ``503 insufficient_capacity`` (``htlc_slots``)
with no invoice issued and nothing written.

The node is escrow-2 of a private devnet (``up --escrow-nodes 2``; this module brings it down):
its two 483-slot channels are force-closed and it opens one to the employer with
``remote_max_htlcs=5``, pushing the employer the balance to fund tasks over it. Payouts leave
over that channel too (escrow-2 -> employer -> escrow -> worker)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.devnet_network import DevnetHandle, devnet_cli, private_devnet_up

from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.devnet import control
from taskhold.devnet.layout import Layout
from taskhold.devnet.lnd_node import LndAdmin

from .live_stack import one_database_url
from .test_escrow_e2e import (
    ACCEPTANCE,
    EscrowStack,
    lnd_settings,
    open_escrow_stack,
    settled_balance,
)

__all__ = ["one_database_url"]

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

AMOUNT_MSAT = 20_000_000
SLOTS = 5
NODE = "escrow-2"


def _admin(data_dir: Path, node: str) -> LndAdmin:
    state = Layout(data_dir).load_state()
    assert state is not None
    return LndAdmin(Layout(data_dir, state.base_port, state.escrow_nodes).node(node))


async def _leave_one_five_slot_channel(data_dir: Path) -> None:
    """Force-close every channel of escrow-2, then open one to the employer with
    ``remote_max_htlcs=5`` and half of it pushed to the employer; return once it is active."""
    escrow, employer = _admin(data_dir, NODE), _admin(data_dir, "employer")
    try:
        for channel in await escrow.channels():
            txid, index = str(channel["channel_point"]).split(":")
            closing = escrow.rest.stream(
                "DELETE", f"/v1/channels/{txid}/{index}", params={"force": "true"}
            )
            async with contextlib.aclosing(closing):
                async for _ in closing:
                    break  # close_pending: the channel is off the active list
        employer_pubkey = str((await employer.getinfo())["identity_pubkey"])
        await escrow.connect(employer_pubkey, employer.node.p2p_address)
        point = await escrow.open_channel(
            employer_pubkey, 4_000_000, 2_000_000, remote_max_htlcs=SLOTS
        )
        await control.mine(data_dir, 6)
        for _ in range(300):
            channels = await escrow.channels()
            if (
                [c["channel_point"] for c in channels if c.get("active")]
                == [point]
                == [c["channel_point"] for c in channels]
            ):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"escrow-2's channels are not just {point}: {channels}")
    finally:
        await escrow.aclose()
        await employer.aclose()


@pytest.fixture(scope="module")
def slot_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetHandle]:
    data_dir = tmp_path_factory.mktemp("slots")
    try:
        up = private_devnet_up(data_dir, "--escrow-nodes", "2")
        assert up.returncode == 0, up.stderr[-3000:]
        asyncio.run(_leave_one_five_slot_channel(data_dir))
        yield DevnetHandle(data_dir, data_dir / "devnet.json", 0.0)
    finally:
        devnet_cli("down", "--data-dir", str(data_dir))


@pytest.fixture
async def slot_stack(
    slot_devnet: DevnetHandle, tmp_path: Path, one_database_url: str
) -> AsyncIterator[EscrowStack]:
    settings = lnd_settings(
        slot_devnet,
        tmp_path / "data",
        one_database_url,
        lnd_node=NODE,
        max_key_share=1.0,
        # A payout crosses two hops (lnd's time lock delta is 80 each) before the worker's 80.
        payout_cltv_reserve_blocks=260,
        renewal_lead_blocks=300,
    )
    async with open_escrow_stack(slot_devnet, settings) as stack:
        yield stack


async def _new_task(employer: TaskholdClient) -> dict[str, Any]:
    return await employer.create_task(
        "Slot task", "", AMOUNT_MSAT, int(time.time()) + 1800, acceptance=ACCEPTANCE
    )


async def _states(employer: TaskholdClient, ids: list[str]) -> set[str]:
    return {(await employer.get_task(i))["state"] for i in ids}


async def _invoices_on(data_dir: Path) -> int:
    admin = _admin(data_dir, NODE)
    try:
        answer = await admin.rest.call("GET", "/v1/invoices", params={"num_max_invoices": "100"})
        return len(answer.get("invoices") or ())
    finally:
        await admin.aclose()


async def test_five_slots_take_five_tasks_refuse_the_sixth_and_pay_all_five(
    slot_stack: EscrowStack, slot_devnet: DevnetHandle
) -> None:
    capacity = await slot_stack.services.lightning.capacity()
    assert (capacity.htlc_slots_max, capacity.htlc_slots_free) == (SLOTS, SLOTS)
    employer, worker = slot_stack.client(), slot_stack.client()
    worker_before = await settled_balance(slot_stack.worker_wallet)

    ids = []
    for _ in range(SLOTS):
        task = await _new_task(employer)
        funding = (await employer.request_funding(task["task_id"]))["funding"]
        paid = await slot_stack.employer_wallet.send_payment(funding["payment_request"])
        assert paid.status.value in ("IN_FLIGHT", "SUCCEEDED"), paid
        ids.append(task["task_id"])

        # Until the engine records the hold, admission counts the task both as an invoice
        # awaiting payment and in the node's used slot: the running engine records it at once.
        async def all_funded() -> bool:
            return await _states(employer, ids) == {"FUNDED"}

        await slot_stack.drive(all_funded)
    held = await slot_stack.services.lightning.capacity()
    assert held.htlc_slots_free == 0  # five HTLCs held on the one channel
    invoices_before = await _invoices_on(slot_devnet.data_dir)

    sixth = await _new_task(employer)
    with pytest.raises(TaskholdAPIError) as refused:
        await employer.request_funding(sixth["task_id"])
    assert refused.value.status == 503
    assert refused.value.code == "insufficient_capacity"
    assert refused.value.problem.get("limit") == "htlc_slots"
    after = await employer.get_task(sixth["task_id"])
    assert after["state"] == sixth["state"] and not after.get("funding")
    assert await _invoices_on(slot_devnet.data_dir) == invoices_before  # no invoice issued

    for task_id in ids:
        task = await employer.get_task(task_id)
        await worker.claim(task_id)
        invoice = await slot_stack.worker_wallet.create_invoice(
            task["payout_msat"], expiry_seconds=86_400
        )
        await worker.submit_proof(
            task_id, {"url": "https://example.org/r"}, invoice.payment_request
        )
        await employer.approve(task_id)

    async def all_paid() -> bool:
        return await _states(employer, ids) == {"PAID"}

    await slot_stack.drive(all_paid, timeout_s=120)
    payouts = sum([(await employer.get_task(i))["payout_msat"] for i in ids])
    assert await settled_balance(slot_stack.worker_wallet) - worker_before == payouts
    freed = await slot_stack.services.lightning.capacity()
    assert freed.htlc_slots_free == SLOTS
