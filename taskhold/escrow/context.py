"""What every escrow step needs, built once in the composition root and passed in."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from taskhold.journal.chain import AuditLog
from taskhold.keys import KeyStore
from taskhold.lightning.base import LightningBackend
from taskhold.nostr import NostrKeys
from taskhold.payments.liquidity import LiquidityWatch
from taskhold.settings import Settings
from taskhold.store import Store
from taskhold.tasks import Task
from taskhold.tasks.commands import Command

from .grouped import CommitGroup, log_transitions, record_system
from .stats import Durations

__all__ = ["EscrowContext", "FaultHook", "apply_system"]

FaultHook = Callable[[str], Awaitable[None]]
"""Called at the named points of ``crashpoints.CRASH_POINTS``; tests raise there, and the crash
harness kills the process there, to simulate a crash between two steps."""

log = structlog.get_logger("taskhold.escrow")


async def _no_fault(point: str) -> None:
    return None


@dataclass
class EscrowContext:
    store: Store
    lightning: LightningBackend
    keys: KeyStore
    settings: Settings
    clock: Callable[[], float] = time.time
    fault_hook: FaultHook = field(default=_no_fault)
    audit: AuditLog = field(default_factory=AuditLog)
    """Settles, cancels and payouts are recorded here: the operator's security journal."""
    operator_keys: NostrKeys | None = None
    """Opens a payout invoice its payee sealed to the operator, in memory, to pay it."""
    previous_operator_keys: tuple[NostrKeys, ...] = ()
    """The key the last rotation replaced: an invoice sealed to it before still opens."""
    liquidity: LiquidityWatch = field(default_factory=LiquidityWatch)
    """Payouts waiting for the node's outbound liquidity (the operator's alert)."""
    capacity_refusals: Counter[str] = field(default_factory=Counter)
    """Hold invoices refused by admission control since the process started, by the limit that
    refused them (``admission.LIMITS``): the metrics count them."""
    payout_failures: Counter[str] = field(default_factory=Counter)
    """Failed payout attempts since the process started, by kind (``PayoutKind`` values)."""
    tick_durations: Durations = field(default_factory=Durations)
    """How long each engine pass took (``EscrowEngine.run_once``): the metrics' histogram."""
    commits: CommitGroup = field(default_factory=CommitGroup)
    """Completed releases recorded together (:mod:`.grouped`)."""

    def now(self) -> int:
        return int(self.clock())


async def apply_system(
    ctx: EscrowContext, task_id: str, make: Callable[[Task, int], Command | None]
) -> Task | None:
    """Decide and record one system command on the freshest task, in one transaction.

    ``make`` sees the locked task and returns the command, or None to do nothing. Replays are
    harmless: the machine decides a repeated system command to no events.
    """
    async with ctx.store.transaction() as tx:
        updated, events = await record_system(ctx, tx, task_id, make)
    log_transitions(task_id, updated, events)
    return updated
