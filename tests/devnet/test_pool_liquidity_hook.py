"""The liquidity hook on the devnet: a node with payouts waiting for outbound liquidity runs
the operator's hook, and the devnet's hook (``taskhold devnet add-liquidity``) opens a channel
that gives the node that much more outbound liquidity on real lnd."""

from __future__ import annotations

import shlex
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from support.devnet_network import get_pool_devnet

from taskhold.escrow.liquidity_hook import LiquidityHook
from taskhold.payments.liquidity import LiquidityWatch
from taskhold.settings import Settings

pytestmark = [pytest.mark.devnet, pytest.mark.pool_devnet]

OPEN_SAT = 1_000_000


async def test_the_devnet_hook_opens_a_channel_for_a_node_short_of_outbound() -> None:
    devnet = get_pool_devnet()
    escrow = devnet.backend("escrow")
    devnet_cli = shlex.join([sys.executable, "-m", "taskhold.devnet.cli"])
    hook = (
        f"sh -c '{devnet_cli} add-liquidity --data-dir {shlex.quote(str(devnet.data_dir))}"
        f' --node "$TASKHOLD_HOOK_NODE" --outbound-sat {OPEN_SAT}\''
    )
    watch = LiquidityWatch()
    watch.short("task/waiting", 5_000_000)
    ctx: Any = SimpleNamespace(
        settings=Settings(liquidity_hook=hook, liquidity_low_slots=0),
        lightning=escrow,
        liquidity=watch,
    )
    try:
        before = await escrow.capacity()
        runner = LiquidityHook()
        started = await runner.check(ctx, now=0.0)
        await runner.wait()
        after = await escrow.capacity()
    finally:
        await escrow.close()
    assert [(s.node, s.direction) for s in started] == [("escrow", "outbound")]
    gained = after.outbound_msat - before.outbound_msat
    assert 0.95 * OPEN_SAT * 1000 <= gained <= OPEN_SAT * 1000
