"""A pool of escrow nodes working as one :class:`~taskhold.lightning.base.LightningBackend`.

At scale one node runs out of HTLC slots (483 per channel direction) and inbound liquidity.
The pool places each new hold invoice on the member with a free slot and the most inbound room
for it, and the task stays there for its life: its lookups, settle, cancel and the payout behind
it (``behind=``) all go to that member, since only the node that holds an HTLC can settle it,
and the payout is paid from that node's own liquidity.

Where each hash lives is written to a :class:`Placements` directory (the database, through
the composition root) *before* the node call: a retry after a crash, or another replica, reads
it and goes to the same member, so one hash is never issued on two nodes (an employer paying
both would pay twice). A hash with no placement is the first member's (``primary``): invoices
issued before the pool was configured stay where they were.

A member that is down stops new placements; calls for its own invoices raise
:class:`~taskhold.lightning.base.NodeUnreachable`, so its tasks wait, and resume when it
returns; the other members carry on. The merged invoice stream follows every member on its
own and re-reads a member that comes back, so one member's outage never ends the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import bolt11

from .base import (
    HoldInvoice,
    InvoiceState,
    InvoiceStatus,
    LightningBackend,
    LightningError,
    NodeCapacity,
    NodeUnreachable,
    PaymentResult,
)

__all__ = ["NoMemberFits", "Placements", "PoolBackend", "PoolMember"]

RESUBSCRIBE_S = 2.0
"""Wait before following a member's invoices again after its stream ended."""


class Placements(Protocol):
    """Where each payment hash lives in the pool; durable, shared by every replica."""

    async def node_of(self, payment_hash: bytes) -> str | None: ...

    async def place(self, payment_hash: bytes, node: str) -> str:
        """Record ``node`` for the hash unless one is recorded; return the recorded one."""
        ...

    def close(self) -> None: ...


class NoMemberFits(NodeUnreachable):
    """No reachable member has a free slot and the inbound room for the invoice."""


@dataclass(frozen=True, slots=True)
class PoolMember:
    name: str
    backend: LightningBackend


class PoolBackend:
    """Several escrow nodes behind the one protocol; see the module docstring."""

    def __init__(self, members: Sequence[PoolMember], placements: Placements) -> None:
        if not members:
            raise ValueError("a pool needs at least one member")
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise ValueError(f"pool member names repeat: {names}")
        networks = {m.backend.network for m in members}
        if len(networks) != 1:
            raise ValueError(f"pool members are on different networks: {sorted(networks)}")
        self.members = tuple(members)
        self.network = networks.pop()
        self._by_name = {m.name: m.backend for m in members}
        self._placements = placements
        self._pubkeys: dict[str, str] = {}
        self._unpaid: dict[bytes, tuple[str, int]] = {}
        """Invoices this process placed that no member has reported paid yet: hash → (member,
        amount). Their inbound room is spoken for before the node's figures show it."""

    @property
    def primary(self) -> PoolMember:
        return self.members[0]

    def __repr__(self) -> str:
        return f"PoolBackend({[m.name for m in self.members]})"

    # -- placement ----------------------------------------------------------------------------

    async def member_of(self, payment_hash: bytes) -> str:
        """The member a hash was placed on (the primary when it never was)."""
        return await self._placements.node_of(payment_hash) or self.primary.name

    async def _backend_of(self, payment_hash: bytes) -> LightningBackend:
        return self._by_name[await self.member_of(payment_hash)]

    async def _choose(self, amount_msat: int) -> str:
        """The reachable member with a free slot and the most inbound room beyond the
        invoices placed on it and not paid yet; :class:`NoMemberFits` if none."""
        best: tuple[int, int, str] | None = None
        for member in self.members:
            try:
                figures = await member.backend.capacity()
            except LightningError:
                continue  # down: no new placements on it
            unpaid = [a for (name, a) in self._unpaid.values() if name == member.name]
            room = figures.inbound_msat - sum(unpaid)
            slots = figures.htlc_slots_free - len(unpaid)
            if slots < 1 or room < amount_msat:
                continue
            candidate = (room, slots, member.name)
            if best is None or candidate[:2] > best[:2]:
                best = candidate
        if best is None:
            raise NoMemberFits(f"no escrow node of the pool can take {amount_msat} msat now")
        return best[2]

    def _seen(self, status: InvoiceStatus) -> InvoiceStatus:
        if status.state is not InvoiceState.OPEN:
            self._unpaid.pop(status.payment_hash, None)
        return status

    # -- LightningBackend ---------------------------------------------------------------------

    async def create_hold_invoice(
        self,
        payment_hash: bytes,
        amount_msat: int,
        *,
        memo: str,
        expiry_seconds: int,
        cltv_expiry_delta: int,
    ) -> HoldInvoice:
        placed = await self._placements.node_of(payment_hash)
        if placed is None:
            placed = await self._placements.place(payment_hash, await self._choose(amount_msat))
        invoice = await self._by_name[placed].create_hold_invoice(
            payment_hash,
            amount_msat,
            memo=memo,
            expiry_seconds=expiry_seconds,
            cltv_expiry_delta=cltv_expiry_delta,
        )
        self._unpaid[payment_hash] = (placed, amount_msat)
        return invoice

    async def lookup_invoice(self, payment_hash: bytes) -> InvoiceStatus:
        backend = await self._backend_of(payment_hash)
        return self._seen(await backend.lookup_invoice(payment_hash))

    async def subscribe_invoice(self, payment_hash: bytes) -> AsyncIterator[InvoiceStatus]:
        backend = await self._backend_of(payment_hash)
        async for status in backend.subscribe_invoice(payment_hash):
            yield self._seen(status)

    async def subscribe_invoices(self) -> AsyncGenerator[InvoiceStatus, None]:
        """Every member's invoices, merged; a member whose stream ends is followed again after
        ``RESUBSCRIBE_S`` (its pending invoices are reported anew), the others meanwhile."""
        queue: asyncio.Queue[InvoiceStatus] = asyncio.Queue()

        async def follow(member: PoolMember) -> None:
            while True:
                try:
                    async for status in member.backend.subscribe_invoices():
                        queue.put_nowait(status)
                except LightningError:
                    pass
                await asyncio.sleep(RESUBSCRIBE_S)

        followers = [
            asyncio.create_task(follow(m), name=f"taskhold-pool-{m.name}") for m in self.members
        ]
        try:
            while True:
                yield self._seen(await queue.get())
        finally:
            for follower in followers:
                follower.cancel()
            for follower in followers:
                with contextlib.suppress(asyncio.CancelledError):
                    await follower

    async def settle_invoice(self, preimage: bytes) -> None:
        backend = await self._backend_of(hashlib.sha256(preimage).digest())
        await backend.settle_invoice(preimage)

    async def cancel_invoice(self, payment_hash: bytes) -> None:
        await (await self._backend_of(payment_hash)).cancel_invoice(payment_hash)
        self._unpaid.pop(payment_hash, None)

    async def pay_invoice(
        self,
        payment_request: str,
        *,
        max_fee_msat: int,
        timeout_seconds: int,
        cltv_limit: int,
        behind: bytes | None = None,
    ) -> PaymentResult:
        """Pay from the member holding ``behind`` (else the primary), after placing the
        payment's hash there, so :meth:`lookup_payment` asks the node that paid."""
        payer = self.primary.name if behind is None else await self.member_of(behind)
        payment_hash = bytes.fromhex(bolt11.decode(payment_request).payment_hash)
        placed = await self._placements.place(payment_hash, payer)
        return await self._by_name[placed].pay_invoice(
            payment_request,
            max_fee_msat=max_fee_msat,
            timeout_seconds=timeout_seconds,
            cltv_limit=cltv_limit,
        )

    async def lookup_payment(self, payment_hash: bytes) -> PaymentResult:
        """Asked of the member that paid (the primary when the pool never paid it)."""
        return await (await self._backend_of(payment_hash)).lookup_payment(payment_hash)

    async def block_height(self) -> int:
        """The first reachable member's height: they all follow one chain."""
        error: LightningError | None = None
        for member in self.members:
            try:
                return await member.backend.block_height()
            except LightningError as exc:
                error = exc
        assert error is not None
        raise error

    async def node_pubkey(self) -> str:
        """The primary's identity key."""
        return await self.primary.backend.node_pubkey()

    async def member_pubkeys(self) -> frozenset[str]:
        """Every member's identity key (learned once each: a member down now was asked
        before, or is asked again next time)."""
        for member in self.members:
            if member.name not in self._pubkeys:
                with contextlib.suppress(LightningError):
                    self._pubkeys[member.name] = await member.backend.node_pubkey()
        return frozenset(self._pubkeys.values())

    async def capacity(self, *, behind: bytes | None = None) -> NodeCapacity:
        """The reachable members' figures summed (their best channel for the largest); with
        ``behind``, the figures of the member holding that invoice."""
        if behind is not None:
            return await (await self._backend_of(behind)).capacity()
        figures: list[NodeCapacity] = []
        error: LightningError | None = None
        for member in self.members:
            try:
                figures.append(await member.backend.capacity())
            except LightningError as exc:
                error = exc
        if not figures:
            assert error is not None
            raise error
        return NodeCapacity(
            inbound_msat=sum(f.inbound_msat for f in figures),
            outbound_msat=sum(f.outbound_msat for f in figures),
            htlc_slots_free=sum(f.htlc_slots_free for f in figures),
            htlc_slots_max=sum(f.htlc_slots_max for f in figures),
            largest_inbound_msat=max(f.largest_inbound_msat for f in figures),
        )

    async def close(self) -> None:
        for member in self.members:
            with contextlib.suppress(Exception):
                await member.backend.close()
        self._placements.close()
