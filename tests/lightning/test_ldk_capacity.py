"""The LDK backend's capacity() over a stand-in node: which channels count, the in-flight cap,
the held HTLCs from the backend's own records, and a stopped node. No LDK module needed."""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from taskhold.lightning.base import InvoiceState, LightningError, NodeUnreachable
from taskhold.lightning.ldk import OUR_MAX_ACCEPTED_HTLCS, LdkBackend
from taskhold.lightning.ldk_holds import HoldRecord, HoldRecords
from taskhold.lightning.ldk_module import PATCHED_RECEIVE

HELD_MSAT = 150_000_000
MODULE: Any = types.SimpleNamespace(
    Bolt11Payment=type("Bolt11Payment", (), {PATCHED_RECEIVE: None})
)


def channel(*, usable: bool, inbound: int, outbound: int, cap: int | None) -> Any:
    """The ``ChannelDetails`` fields capacity() reads."""
    return types.SimpleNamespace(
        is_usable=usable,
        inbound_capacity_msat=inbound,
        outbound_capacity_msat=outbound,
        inbound_htlc_maximum_msat=cap,
    )


class StandInNode:
    def __init__(self, channels: list[Any]) -> None:
        self.channels = channels
        self.error: Exception | None = None

    def bolt11_payment(self) -> Any:
        return types.SimpleNamespace(**{PATCHED_RECEIVE: None})

    def list_channels(self) -> list[Any]:
        if self.error is not None:
            raise self.error
        return self.channels


@pytest.fixture
async def records(tmp_path: Path) -> AsyncIterator[HoldRecords]:
    held = HoldRecords(tmp_path)
    yield held
    held.close()


def hold(records: HoldRecords, index: int, state: InvoiceState) -> None:
    record = HoldRecord(
        payment_hash=bytes([index]) * 32,
        payment_request=f"lnbcrt{index}",
        amount_msat=HELD_MSAT,
        cltv_expiry_delta=42,
        expiry_seconds=3600,
        created_at=index,
    )
    assert records.add(record)
    if state is not InvoiceState.OPEN:
        paid = replace(
            record, state=state, amount_paid_msat=HELD_MSAT, accept_height=100, expiry_height=142
        )
        assert records.save(paid, if_state=(InvoiceState.OPEN,))


async def test_usable_channels_count_within_their_in_flight_cap_less_what_is_held(
    records: HoldRecords,
) -> None:
    node = StandInNode(
        [
            # Opened by the peer: 10% in-flight cap, far below its room.
            channel(usable=True, inbound=8_000_000_000, outbound=900_000_000, cap=1_000_000_000),
            # Opened by us: the cap is above the room.
            channel(usable=True, inbound=500_000_000, outbound=9_000_000_000, cap=9_800_000_000),
            # Not usable (peer offline): counts for nothing.
            channel(usable=False, inbound=7_000_000_000, outbound=7_000_000_000, cap=None),
        ]
    )
    hold(records, 1, InvoiceState.ACCEPTED)
    hold(records, 2, InvoiceState.ACCEPTED)
    hold(records, 3, InvoiceState.OPEN)  # not paid: holds nothing
    hold(records, 4, InvoiceState.SETTLED)  # the HTLC is gone
    backend = LdkBackend(node, MODULE, records)

    capacity = await backend.capacity()

    room_first = 1_000_000_000 - 2 * HELD_MSAT
    assert capacity.inbound_msat == room_first + 500_000_000
    assert capacity.largest_inbound_msat == room_first
    assert capacity.outbound_msat == 9_900_000_000
    assert capacity.htlc_slots_max == 2 * OUR_MAX_ACCEPTED_HTLCS
    assert capacity.htlc_slots_free == 2 * OUR_MAX_ACCEPTED_HTLCS - 2


async def test_a_cap_used_up_is_no_room_not_negative_room(records: HoldRecords) -> None:
    node = StandInNode([channel(usable=True, inbound=10**10, outbound=0, cap=HELD_MSAT)])
    hold(records, 1, InvoiceState.ACCEPTED)
    hold(records, 2, InvoiceState.ACCEPTED)

    capacity = await LdkBackend(node, MODULE, records).capacity()

    assert (capacity.inbound_msat, capacity.largest_inbound_msat) == (0, 0)


async def test_a_stopped_node_is_unreachable(records: HoldRecords) -> None:
    node = StandInNode([])
    backend = LdkBackend(node, MODULE, records)
    NotRunning = type("NotRunning", (Exception,), {})  # ldk_node's NodeError variant
    node.error = NotRunning("the node is not running")

    with pytest.raises(NodeUnreachable):
        await backend.capacity()

    node.error = type("ChannelConfigUpdateFailed", (Exception,), {})("no")
    with pytest.raises(LightningError) as refused:
        await backend.capacity()
    assert not isinstance(refused.value, NodeUnreachable)
