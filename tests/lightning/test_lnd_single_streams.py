"""lnd's all-invoices stream never reports ACCEPTED; the newest OPEN invoices are followed one
by one so a payment is reported as lnd accepts it, not at the next poll of pending invoices,
and the single streams stay bounded."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from taskhold.lightning.base import InvoiceState
from taskhold.lightning.lnd_invoices import follow_invoices

HASHES = [bytes([n]) * 32 for n in range(1, 4)]


def _invoice(payment_hash: bytes, state: str, add_index: int) -> dict[str, Any]:
    return {
        "r_hash": base64.b64encode(payment_hash).decode(),
        "state": state,
        "value_msat": "1000",
        "add_index": str(add_index),
        "htlcs": [],
    }


class FakeRest:
    """lnd's REST as ``follow_invoices`` uses it: the add stream reports each invoice OPEN,
    the poll lists none (it never sees a payment), and a single stream reports OPEN, then
    ACCEPTED once the invoices are paid."""

    def __init__(self) -> None:
        self.paid = asyncio.Event()
        self.open_singles: set[bytes] = set()
        self.released: set[bytes] = set()
        """Single streams whose connection went back to the pool: closing one takes a moment."""
        self.most_singles = 0
        self.added: asyncio.Queue[bytes] = asyncio.Queue()

    async def call(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        assert path == "/v1/invoices"
        return {"invoices": [], "last_index_offset": "0"}

    async def stream(self, method: str, path: str, **_: Any) -> AsyncGenerator[dict[str, Any]]:
        if path == "/v1/invoices/subscribe":
            while True:
                payment_hash = await self.added.get()
                yield _invoice(payment_hash, "OPEN", HASHES.index(payment_hash) + 1)
        payment_hash = base64.urlsafe_b64decode(path.rsplit("/", 1)[1])
        self.open_singles.add(payment_hash)
        self.most_singles = max(self.most_singles, len(self.open_singles))
        try:
            yield _invoice(payment_hash, "OPEN", 1)
            await self.paid.wait()
            yield _invoice(payment_hash, "ACCEPTED", 1)
        finally:
            self.open_singles.discard(payment_hash)
            await asyncio.sleep(0.05)  # a cancel landing here loses the pool's connection
            self.released.add(payment_hash)


async def _next_state(updates: AsyncGenerator[Any], payment_hash: bytes) -> InvoiceState:
    async with asyncio.timeout(5):
        async for status in updates:
            if status.payment_hash == payment_hash and status.state is not InvoiceState.OPEN:
                return status.state
    raise AssertionError("the updates ended")


async def _add_and_pay(rest: FakeRest, updates: AsyncGenerator[Any]) -> None:
    """One invoice added, then paid: its ACCEPTED must come through the updates."""
    rest.added.put_nowait(HASHES[0])
    waiting = asyncio.create_task(_next_state(updates, HASHES[0]))
    await asyncio.sleep(0.1)
    rest.paid.set()
    assert await waiting is InvoiceState.ACCEPTED


async def test_a_payment_is_reported_before_the_next_poll() -> None:
    rest = FakeRest()
    updates = follow_invoices(rest, poll_seconds=3600, single_streams=2)  # type: ignore[arg-type]
    async with contextlib.aclosing(updates):
        await _add_and_pay(rest, updates)


async def test_the_newest_open_invoices_take_the_single_streams() -> None:
    rest = FakeRest()
    updates = follow_invoices(rest, poll_seconds=3600, single_streams=2)  # type: ignore[arg-type]
    async with contextlib.aclosing(updates):
        for payment_hash in HASHES:
            rest.added.put_nowait(payment_hash)
        waiting = asyncio.create_task(_next_state(updates, HASHES[2]))
        await asyncio.sleep(0.2)
        assert rest.open_singles == {HASHES[1], HASHES[2]}
        rest.paid.set()
        assert await waiting is InvoiceState.ACCEPTED
    assert rest.most_singles == 2
    assert rest.open_singles == set()


async def test_a_stream_that_reported_its_payment_closes_uncut() -> None:
    """The single stream that reports ACCEPTED is left to close by itself: cancelled during its
    close, its connection never went back to the subscriptions' pool, and after eight invoices
    every new single stream waited while payments were seen only by the 1 s poll."""
    rest = FakeRest()
    updates = follow_invoices(rest, poll_seconds=3600, single_streams=2)  # type: ignore[arg-type]
    async with contextlib.aclosing(updates):
        await _add_and_pay(rest, updates)
        await asyncio.sleep(0.2)
        assert rest.released == {HASHES[0]}


async def test_closing_the_follower_ends_a_stream_still_closing() -> None:
    rest = FakeRest()
    updates = follow_invoices(rest, poll_seconds=3600, single_streams=2)  # type: ignore[arg-type]
    async with contextlib.aclosing(updates):
        await _add_and_pay(rest, updates)
    assert [t for t in asyncio.all_tasks() if t.get_name() == "lnd-invoice-single"] == []
