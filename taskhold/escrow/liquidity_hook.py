"""The liquidity hook: the operator's command, run when an escrow node runs low.

Admission control refuses new holds once a node is short, and a payout short of outbound
liquidity waits; neither adds liquidity. The hook is where the operator does: an LSP order, a
channel open, a rebalance. taskhold looks at each node's figures at most every
``liquidity_check_s`` and runs ``liquidity_hook`` (a command line, no shell) for a node whose
inbound room or free HTLC slots fall below ``liquidity_low_inbound_msat`` /
``liquidity_low_slots``, or that has payouts waiting for outbound liquidity. It is told what
and how much in its environment:

- ``TASKHOLD_HOOK_NODE``: the node's name (a pool member, or ``escrow``);
- ``TASKHOLD_HOOK_DIRECTION``: ``inbound`` or ``outbound``;
- ``TASKHOLD_HOOK_SHORT_MSAT``: how far below the threshold (inbound), or the payouts waiting
  (outbound).

The command runs in the background with a time limit and never holds up the engine; it runs
again for the same node and direction only after ``liquidity_hook_interval_s``, since a channel
takes blocks to confirm. Its exit status and the tail of its output are logged. On the devnet
the hook is ``taskhold devnet add-liquidity --node "$TASKHOLD_HOOK_NODE" …`` (see the README).
"""

from __future__ import annotations

import asyncio
import os
import shlex
from dataclasses import dataclass, field

from taskhold.lightning.base import LightningBackend, LightningError
from taskhold.lightning.pool import PoolBackend
from taskhold.waits import within

from .context import EscrowContext, log

__all__ = ["HOOK_TIMEOUT_S", "LiquidityHook", "Shortage", "nodes_of"]

HOOK_TIMEOUT_S = 600.0
"""The most one run of the hook may take before it is killed."""


@dataclass(frozen=True, slots=True)
class Shortage:
    node: str
    direction: str
    short_msat: int


def nodes_of(lightning: LightningBackend) -> list[tuple[str, LightningBackend]]:
    """Each escrow node by name: a pool's members, or the one node as ``escrow``."""
    if isinstance(lightning, PoolBackend):
        return [(m.name, m.backend) for m in lightning.members]
    return [("escrow", lightning)]


async def _waiting_by_node(ctx: EscrowContext) -> dict[str, int]:
    """The payouts waiting for outbound liquidity, summed by the node that must send them
    (in a pool, the node holding the hold each stands behind)."""
    watch, lightning = ctx.liquidity, ctx.lightning
    by_node: dict[str, int] = {}
    for owner, amount_msat in watch.waiting.items():
        node = nodes_of(lightning)[0][0]
        hold = watch.behind.get(owner)
        if isinstance(lightning, PoolBackend) and hold is not None:
            node = await lightning.member_of(hold)
        by_node[node] = by_node.get(node, 0) + amount_msat
    return by_node


@dataclass
class LiquidityHook:
    """Decides when the hook runs, and runs it; one per engine."""

    last_check: float = float("-inf")
    last_run: dict[tuple[str, str], float] = field(default_factory=dict)
    running: set[asyncio.Task[None]] = field(default_factory=set)

    async def check(self, ctx: EscrowContext, now: float) -> list[Shortage]:
        """Look at the nodes if a check is due; start the hook for every new shortage."""
        settings = ctx.settings
        if settings.liquidity_hook is None or now - self.last_check < settings.liquidity_check_s:
            return []
        self.last_check = now
        started = []
        for shortage in await self.shortages(ctx):
            key = (shortage.node, shortage.direction)
            if now - self.last_run.get(key, float("-inf")) < settings.liquidity_hook_interval_s:
                continue
            self.last_run[key] = now
            job = asyncio.create_task(self._run(settings.liquidity_hook, shortage))
            self.running.add(job)
            job.add_done_callback(self.running.discard)
            started.append(shortage)
        return started

    async def shortages(self, ctx: EscrowContext) -> list[Shortage]:
        settings = ctx.settings
        found = []
        for name, backend in nodes_of(ctx.lightning):
            try:
                figures = await backend.capacity()
            except LightningError:
                continue  # a node that is down is not short of liquidity
            inbound_short = settings.liquidity_low_inbound_msat - figures.inbound_msat
            if inbound_short > 0 or figures.htlc_slots_free < settings.liquidity_low_slots:
                found.append(Shortage(name, "inbound", max(inbound_short, 0)))
        for node, waiting_msat in (await _waiting_by_node(ctx)).items():
            found.append(Shortage(node, "outbound", waiting_msat))
        return found

    async def _run(self, command: str, shortage: Shortage) -> None:
        env = {
            **os.environ,
            "TASKHOLD_HOOK_NODE": shortage.node,
            "TASKHOLD_HOOK_DIRECTION": shortage.direction,
            "TASKHOLD_HOOK_SHORT_MSAT": str(shortage.short_msat),
        }
        log.warning(
            "liquidity_hook_started",
            node=shortage.node,
            direction=shortage.direction,
            short_msat=shortage.short_msat,
        )
        try:
            process = await asyncio.create_subprocess_exec(
                *shlex.split(command),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            log.error("liquidity_hook_failed", node=shortage.node, error=str(exc))
            return
        try:
            output, _ = await within(process.communicate(), HOOK_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()
            log.error("liquidity_hook_timed_out", node=shortage.node)
            return
        tail = output.decode(errors="replace").strip()[-500:]
        if process.returncode == 0:
            log.info("liquidity_hook_done", node=shortage.node, output=tail)
        else:
            log.error(
                "liquidity_hook_failed", node=shortage.node, status=process.returncode, output=tail
            )

    async def wait(self) -> None:
        """Wait for the runs started so far (tests, shutdown)."""
        if self.running:
            await asyncio.gather(*self.running, return_exceptions=True)

    def cancel(self) -> None:
        for job in self.running:
            job.cancel()
