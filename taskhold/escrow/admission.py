"""Admission control: a hold invoice is issued only if the escrow node can carry its task.

Every funded task holds one incoming HTLC slot and its amount of inbound liquidity on the
escrow node until the hold is settled or cancelled, and its release first pays the worker from
the node's outbound liquidity. A node short of any of them issues invoices nobody can pay, or
verifies work it cannot pay for. So before a hold invoice is issued, :func:`admit` compares the
node's own figures (:meth:`~taskhold.lightning.base.LightningBackend.capacity`) with what open
tasks already claim (:meth:`~taskhold.store.Tx.hold_commitments`: invoices awaiting payment
will take their slot and inbound amount; every open task will need its payout) and refuses
with ``503 insufficient_capacity`` and ``Retry-After``.

The per-key share bounds griefing: the open tasks of one employer key may hold at most
``max_key_share`` of the node's slots and of its inbound liquidity. A stranger who wants to lock
the escrow needs many keys, and funds every hold it locks with its own money. The share is in
the published terms, so the bound is public.

The check reads figures without a lock: two requests at once may both pass, and the node then
refuses the HTLC that does not fit (the payer's payment fails, nothing is held). The figures
over-reserve outbound liquidity for a payout already in flight (the node has deducted it and
the task still counts), never under-reserve it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NoReturn

from taskhold.errors import Refusal, RefusalCode
from taskhold.lightning.base import NodeCapacity
from taskhold.lightning.pool import NoMemberFits
from taskhold.settings import Settings
from taskhold.store import HoldCommitments, Tx

from .context import EscrowContext, log

__all__ = [
    "ADMISSION_RULE",
    "LIMITS",
    "Capacity",
    "InsufficientCapacity",
    "admit",
    "capacity_now",
    "placing",
]

ADMISSION_RULE = (
    "a hold invoice is issued only while the escrow node has a free incoming HTLC slot and the"
    " inbound liquidity for it after the invoices already awaiting payment, the outbound"
    " liquidity to pay every open task's worker, and while the employer key's open tasks hold"
    " less than max_key_share of the node's slots and of its inbound liquidity; otherwise 503"
    " insufficient_capacity with Retry-After"
)

LIMITS = (
    "htlc_slots",
    "inbound_liquidity",
    "outbound_liquidity",
    "key_share_slots",
    "key_share_liquidity",
    "no_node_fits",
)
"""Every limit a refusal names: :meth:`Capacity.shortage`'s, in the order it checks them, then
a pool whose nodes have the room in sum but none alone (:func:`placing`)."""


class InsufficientCapacity(Refusal):
    """The escrow node cannot take this hold now, or the key reached its share; retry later."""

    status = 503
    code = RefusalCode.INSUFFICIENT_CAPACITY

    def __init__(self, detail: str, *, limit: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.limit = limit
        self.headers = MappingProxyType({"Retry-After": str(retry_after_s)})
        self.extra = MappingProxyType({"limit": limit, "retry_after_s": retry_after_s})


@dataclass(frozen=True, slots=True)
class Capacity:
    """The node's figures beside what open tasks claim of them."""

    node: NodeCapacity
    promised: HoldCommitments

    @property
    def free_slots(self) -> int:
        """Slots left once every invoice awaiting payment is paid."""
        return self.node.htlc_slots_free - self.promised.awaiting_count

    @property
    def free_inbound_msat(self) -> int:
        """Inbound liquidity left once every invoice awaiting payment is paid."""
        return self.node.inbound_msat - self.promised.awaiting_msat

    @property
    def free_outbound_msat(self) -> int:
        """Outbound liquidity left once every open task's worker is paid."""
        return self.node.outbound_msat - self.promised.awaiting_msat - self.promised.held_msat

    @property
    def inbound_total_msat(self) -> int:
        """Inbound liquidity with what is held now: the whole the key share is taken of."""
        return self.node.inbound_msat + self.promised.held_msat

    def key_slot_limit(self, share: float) -> int:
        return max(1, math.floor(share * self.node.htlc_slots_max))

    def key_liquidity_limit_msat(self, share: float) -> int:
        return math.floor(share * self.inbound_total_msat)

    def shortage(
        self, amount_msat: int, share: float, *, task: bool = True
    ) -> tuple[str, str] | None:
        """The first limit a new hold of ``amount_msat`` by the key would break, and why. A
        deposit (``task=False``) needs only its slot and inbound room: it is returned by
        cancelling its hold, and the key share counts tasks."""
        key_slots, key_msat = self.key_slot_limit(share), self.key_liquidity_limit_msat(share)
        if self.free_slots < 1:
            return "htlc_slots", "the escrow node has no free HTLC slot for another hold"
        if self.free_inbound_msat < amount_msat:
            return "inbound_liquidity", (
                f"the escrow node cannot receive another {amount_msat} msat now"
            )
        if not task:
            return None
        if self.free_outbound_msat < amount_msat:
            return "outbound_liquidity", (
                "the escrow node lacks the outbound liquidity to pay this task's worker after"
                " the tasks already open"
            )
        if self.promised.key_count + 1 > key_slots:
            return "key_share_slots", (
                f"this key's open tasks hold {self.promised.key_count} of the {key_slots} HTLC"
                f" slots one key may hold ({share:.0%} of the escrow node's)"
            )
        if self.promised.key_msat + amount_msat > key_msat:
            return "key_share_liquidity", (
                f"this key's open tasks hold {self.promised.key_msat} msat; one key may hold"
                f" {key_msat} msat ({share:.0%} of the escrow node's inbound liquidity)"
            )
        return None

    def figures(self, settings: Settings) -> dict[str, Any]:
        """The figures ``/v1/info`` and the metrics show."""
        share = settings.max_key_share
        return {
            "node": {
                "inbound_msat": self.node.inbound_msat,
                "outbound_msat": self.node.outbound_msat,
                "htlc_slots_free": self.node.htlc_slots_free,
                "htlc_slots_max": self.node.htlc_slots_max,
            },
            "awaiting_payment": {
                "tasks": self.promised.awaiting_count,
                "msat": self.promised.awaiting_msat,
            },
            "held": {"tasks": self.promised.held_count, "msat": self.promised.held_msat},
            "free_slots": self.free_slots,
            "free_inbound_msat": self.free_inbound_msat,
            "free_outbound_msat": self.free_outbound_msat,
            "key_slot_limit": self.key_slot_limit(share),
            "key_liquidity_limit_msat": self.key_liquidity_limit_msat(share),
        }


async def capacity_now(ctx: EscrowContext, tx: Tx, pubkey: str = "") -> Capacity:
    """The node's figures and the open tasks' claims (``pubkey``'s share among them)."""
    node = await ctx.lightning.capacity()
    return Capacity(node=node, promised=await tx.hold_commitments(pubkey))


async def admit(
    ctx: EscrowContext, tx: Tx, pubkey: str, amount_msat: int, *, task: bool = True
) -> None:
    """Refuse a new hold of ``amount_msat`` for ``pubkey`` the node cannot carry now."""
    capacity = await capacity_now(ctx, tx, pubkey)
    found = capacity.shortage(amount_msat, ctx.settings.max_key_share, task=task)
    if found is None:
        return
    _refuse(ctx, *found, amount_msat)


@contextlib.asynccontextmanager
async def placing(ctx: EscrowContext, amount_msat: int) -> AsyncIterator[None]:
    """Around the node call that issues a hold: a pool with the room in sum but no member
    that can take the invoice alone refuses it like admission control does."""
    try:
        yield
    except NoMemberFits as exc:
        _refuse(ctx, "no_node_fits", str(exc), amount_msat)


def _refuse(ctx: EscrowContext, limit: str, detail: str, amount_msat: int) -> NoReturn:
    ctx.capacity_refusals[limit] += 1
    log.warning("capacity_refused", limit=limit, amount_msat=amount_msat)
    raise InsufficientCapacity(
        detail, limit=limit, retry_after_s=ctx.settings.capacity_retry_after_s
    )
