"""The escrow pool on the simulator: placement by free slots and inbound room, one node per
hash for life, a member down stops only its own work, payouts go out from the holding node.

The hostile cases first: a hash must never be issued on two members (an employer paying both
would pay twice), even when the first attempt failed after its placement was written.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from taskhold.lightning.base import InvoiceState, NodeUnreachable, PaymentStatus
from taskhold.lightning.pool import NoMemberFits, PoolBackend, PoolMember
from taskhold.lightning.sim import SimNode
from taskhold.lightning.sim_network import SimNetwork

AMOUNT = 100_000_000


class MemoryPlacements:
    """The placement directory in memory (the database one is tested with the engine)."""

    def __init__(self) -> None:
        self.rows: dict[bytes, str] = {}

    async def node_of(self, payment_hash: bytes) -> str | None:
        return self.rows.get(payment_hash)

    async def place(self, payment_hash: bytes, node: str) -> str:
        return self.rows.setdefault(payment_hash, node)

    def close(self) -> None:
        return None


class Pool:
    def __init__(self, *, inbound: tuple[int, int] = (10 * AMOUNT, 10 * AMOUNT)) -> None:
        self.network = SimNetwork()
        self.one = SimNode(self.network, "escrow", balance_msat=50 * AMOUNT)
        self.two = SimNode(self.network, "escrow-2", balance_msat=50 * AMOUNT)
        self.employer = SimNode(self.network, "employer", balance_msat=500 * AMOUNT)
        self.worker = SimNode(self.network, "worker", balance_msat=0)
        self.network.set_channels(self.one, inbound_msat=inbound[0])
        self.network.set_channels(self.two, inbound_msat=inbound[1])
        self.placements = MemoryPlacements()
        self.backend = PoolBackend(
            [PoolMember("escrow", self.one), PoolMember("escrow-2", self.two)], self.placements
        )

    async def invoice(self, amount: int = AMOUNT) -> tuple[bytes, str]:
        preimage = os.urandom(32)
        payment_hash = hashlib.sha256(preimage).digest()
        invoice = await self.backend.create_hold_invoice(
            payment_hash, amount, memo="t", expiry_seconds=3600, cltv_expiry_delta=80
        )
        return preimage, invoice.payment_request


def placed_on(pool: Pool, preimage: bytes) -> str:
    return pool.placements.rows[hashlib.sha256(preimage).digest()]


async def test_unpaid_invoices_spread_over_the_members() -> None:
    pool = Pool()
    preimages = [(await pool.invoice())[0] for _ in range(4)]
    assert sorted(placed_on(pool, p) for p in preimages) == [
        "escrow",
        "escrow",
        "escrow-2",
        "escrow-2",
    ]


async def test_the_member_with_more_inbound_room_is_chosen() -> None:
    pool = Pool(inbound=(2 * AMOUNT, 10 * AMOUNT))
    preimage, request = await pool.invoice()
    assert placed_on(pool, preimage) == "escrow-2"
    assert (await pool.employer.send_payment(request)).status is PaymentStatus.IN_FLIGHT
    status = await pool.backend.lookup_invoice(hashlib.sha256(preimage).digest())
    assert status.state is InvoiceState.ACCEPTED


async def test_a_member_without_a_free_slot_takes_no_placement() -> None:
    pool = Pool()
    pool.network.set_channels(pool.two, htlc_slots=0)
    for _ in range(3):
        preimage, _ = await pool.invoice()
        assert placed_on(pool, preimage) == "escrow"


async def test_no_member_fits_is_refused() -> None:
    pool = Pool(inbound=(AMOUNT, AMOUNT))
    with pytest.raises(NoMemberFits):
        await pool.invoice(2 * AMOUNT)
    assert pool.placements.rows == {}  # nothing placed for a refusal


async def test_a_retry_goes_to_the_member_first_placed_on_never_a_second() -> None:
    """The placement is written before the node call: when the call fails (the member went
    down), the retry goes to that member again, even though the other has more room now."""
    pool = Pool(inbound=(10 * AMOUNT, 5 * AMOUNT))
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).digest()
    pool.one.unreachable = True
    pool.network.set_channels(pool.two, inbound_msat=20 * AMOUNT)

    async def create() -> None:
        await pool.backend.create_hold_invoice(
            payment_hash, AMOUNT, memo="t", expiry_seconds=3600, cltv_expiry_delta=80
        )

    pool.one.unreachable = False
    placed = await pool.placements.place(payment_hash, "escrow")  # as a crashed attempt left it
    assert placed == "escrow"
    pool.one.unreachable = True
    with pytest.raises(NodeUnreachable):
        await create()
    assert pool.network.invoice_count(pool.two.pubkey_hex) == 0

    pool.one.unreachable = False
    await create()
    assert pool.network.invoice_count(pool.one.pubkey_hex) == 1
    assert pool.network.invoice_count(pool.two.pubkey_hex) == 0


async def test_a_member_down_stops_only_its_own_work() -> None:
    pool = Pool()
    on_one, request_one = await pool.invoice()
    on_two, request_two = await pool.invoice()
    assert {placed_on(pool, on_one), placed_on(pool, on_two)} == {"escrow", "escrow-2"}
    if placed_on(pool, on_one) != "escrow":
        on_one, on_two, request_one, request_two = on_two, on_one, request_two, request_one
    for request in (request_one, request_two):
        await pool.employer.send_payment(request)

    pool.two.unreachable = True
    with pytest.raises(NodeUnreachable):
        await pool.backend.settle_invoice(on_two)
    await pool.backend.settle_invoice(on_one)  # the other member carries on
    fresh, _ = await pool.invoice()
    assert placed_on(pool, fresh) == "escrow"  # no new placement on the member that is down
    capacity = await pool.backend.capacity()
    assert capacity.htlc_slots_max == (await pool.one.capacity()).htlc_slots_max

    pool.two.unreachable = False
    await pool.backend.settle_invoice(on_two)  # it resumes when the member returns
    status = await pool.backend.lookup_invoice(hashlib.sha256(on_two).digest())
    assert status.state is InvoiceState.SETTLED


async def test_a_payout_goes_out_from_the_member_holding_its_hold() -> None:
    pool = Pool(inbound=(AMOUNT, 10 * AMOUNT))
    preimage, request = await pool.invoice()
    hold = hashlib.sha256(preimage).digest()
    assert placed_on(pool, preimage) == "escrow-2"
    await pool.employer.send_payment(request)
    payout = await pool.worker.create_invoice(AMOUNT // 2)
    before = (pool.one.balance_msat, pool.two.balance_msat)

    paid = await pool.backend.pay_invoice(
        payout, max_fee_msat=0, timeout_seconds=5, cltv_limit=200, behind=hold
    )

    assert paid.status is PaymentStatus.SUCCEEDED
    assert (pool.one.balance_msat, pool.two.balance_msat) == (before[0], before[1] - AMOUNT // 2)
    looked_up = await pool.backend.lookup_payment(paid.payment_hash)
    assert looked_up.status is PaymentStatus.SUCCEEDED  # asked of the member that paid
    assert (await pool.backend.capacity(behind=hold)).outbound_msat == pool.two.balance_msat


async def test_the_merged_stream_outlives_a_member_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("taskhold.lightning.pool.RESUBSCRIBE_S", 0.05)
    pool = Pool()
    seen: list[tuple[bytes, InvoiceState]] = []

    async def follow() -> None:
        async for status in pool.backend.subscribe_invoices():
            seen.append((status.payment_hash, status.state))

    follower = asyncio.create_task(follow())
    try:
        on_a, request_a = await pool.invoice()
        on_b, request_b = await pool.invoice()
        down = pool.one if placed_on(pool, on_a) == "escrow-2" else pool.two
        down.unreachable = True  # the member holding invoice b goes down
        await pool.employer.send_payment(request_a)
        hash_a = hashlib.sha256(on_a).digest()
        for _ in range(100):
            if (hash_a, InvoiceState.ACCEPTED) in seen:
                break
            await asyncio.sleep(0.01)
        assert (hash_a, InvoiceState.ACCEPTED) in seen  # the other member is still followed
        assert not follower.done()
        down.unreachable = False
        await pool.employer.send_payment(request_b)
        hash_b = hashlib.sha256(on_b).digest()
        for _ in range(500):
            if (hash_b, InvoiceState.ACCEPTED) in seen:
                break
            await asyncio.sleep(0.01)
        assert (hash_b, InvoiceState.ACCEPTED) in seen  # followed again once it is back
    finally:
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower
