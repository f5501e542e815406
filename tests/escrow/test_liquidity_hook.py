"""The liquidity hook runs the operator's command when an escrow node runs low, in the
background, at most once per interval per node and direction, and a failing hook never stops
the engine. (On the devnet the hook opens a channel: tests/devnet/test_pool_liquidity_hook.py.)"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import structlog
from support.stacks import Stack, channel_world, close_stack, open_stack, stack_settings

from taskhold.escrow.liquidity_hook import LiquidityHook
from taskhold.lightning.pool import PoolBackend, PoolMember
from taskhold.lightning.sim import SimNode
from taskhold.lightning.simworld import SimWorld
from taskhold.payments.liquidity import LiquidityWatch
from taskhold.settings import Settings

RECORDER = (
    "import json, os, sys; "
    "open(sys.argv[1], 'a').write(json.dumps({k: v for k, v in os.environ.items()"
    " if k.startswith('TASKHOLD_HOOK_')}) + '\\n')"
)


def recording_hook(path: Path) -> str:
    return shlex.join([sys.executable, "-c", RECORDER, str(path)])


def runs(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def low_stack(tmp_path: Path, database_url: str, **overrides: object) -> Stack:
    world = channel_world(htlc_slots=4)
    settings = stack_settings(tmp_path, database_url, liquidity_low_slots=10, **overrides)
    return await open_stack(settings, world)


async def test_a_node_low_on_slots_runs_the_hook_once_per_interval(
    tmp_path: Path, database_url: str
) -> None:
    record = tmp_path / "hook.jsonl"
    stack = await low_stack(tmp_path, database_url, liquidity_hook=recording_hook(record))
    try:
        hook = stack.services.engine.liquidity_hook
        started = await hook.check(stack.services.engine.ctx, now=1000.0)
        await hook.wait()
        again = await hook.check(stack.services.engine.ctx, now=1000.0 + 60)
        await hook.wait()
        later = stack.settings.liquidity_hook_interval_s + 1001.0
        third = await hook.check(stack.services.engine.ctx, now=later)
        await hook.wait()
    finally:
        await close_stack(stack)
    assert [s.direction for s in started] == ["inbound"]
    assert again == []  # within the interval: not again
    assert len(third) == 1
    assert runs(record)[0] == {
        "TASKHOLD_HOOK_NODE": "escrow",
        "TASKHOLD_HOOK_DIRECTION": "inbound",
        "TASKHOLD_HOOK_SHORT_MSAT": "0",
    }
    assert len(runs(record)) == 2


async def test_no_hook_configured_runs_nothing(tmp_path: Path, database_url: str) -> None:
    stack = await low_stack(tmp_path, database_url)
    try:
        hook = stack.services.engine.liquidity_hook
        assert await hook.check(stack.services.engine.ctx, now=1000.0) == []
        assert await hook.shortages(stack.services.engine.ctx)  # low, but nobody to tell
    finally:
        await close_stack(stack)


async def test_payouts_waiting_for_outbound_liquidity_ask_for_outbound(
    tmp_path: Path, database_url: str
) -> None:
    record = tmp_path / "hook.jsonl"
    stack = await open_stack(
        stack_settings(tmp_path, database_url, liquidity_hook=recording_hook(record))
    )
    try:
        ctx = stack.services.engine.ctx
        ctx.liquidity.short("task/abc", 5_000)
        await stack.services.engine.liquidity_hook.check(ctx, now=1000.0)
        await stack.services.engine.liquidity_hook.wait()
    finally:
        await close_stack(stack)
    assert runs(record) == [
        {
            "TASKHOLD_HOOK_NODE": "escrow",
            "TASKHOLD_HOOK_DIRECTION": "outbound",
            "TASKHOLD_HOOK_SHORT_MSAT": "5000",
        }
    ]


async def test_a_failing_hook_is_logged_and_the_engine_goes_on(
    tmp_path: Path, database_url: str
) -> None:
    failing = shlex.join([sys.executable, "-c", "import sys; print('no LSP'); sys.exit(3)"])
    stack = await low_stack(tmp_path, database_url, liquidity_hook=failing)
    try:
        with structlog.testing.capture_logs() as logs:
            await stack.run_pass()
            await stack.services.engine.liquidity_hook.wait()
            missing = LiquidityHook()
            stack.services.settings.liquidity_hook = "/nonexistent/hook"
            await missing.check(stack.services.engine.ctx, now=0.0)
            await missing.wait()
            await stack.run_pass()  # the engine still runs its passes
    finally:
        await close_stack(stack)
    failures = [line for line in logs if line["event"] == "liquidity_hook_failed"]
    assert failures[0]["status"] == 3 and "no LSP" in failures[0]["output"]
    assert "/nonexistent/hook" in failures[1]["error"]


class _Placed:
    def __init__(self, rows: dict[bytes, str]) -> None:
        self.rows = rows

    async def node_of(self, payment_hash: bytes) -> str | None:
        return self.rows.get(payment_hash)

    async def place(self, payment_hash: bytes, node: str) -> str:
        return self.rows.setdefault(payment_hash, node)

    def close(self) -> None:
        return None


async def test_in_a_pool_the_node_holding_the_waiting_payouts_is_the_one_told() -> None:
    world = SimWorld.create()
    second = SimNode(world.network, "escrow-2", balance_msat=0)
    hold_on_second = bytes(32)
    pool = PoolBackend(
        [PoolMember("escrow", world.escrow), PoolMember("escrow-2", second)],
        _Placed({hold_on_second: "escrow-2"}),
    )
    watch = LiquidityWatch()
    watch.short("task/a", 7_000, behind=hold_on_second)
    watch.short("task/b", 3_000, behind=hold_on_second)
    ctx: Any = SimpleNamespace(
        settings=Settings(liquidity_hook="true", liquidity_low_slots=0),
        lightning=pool,
        liquidity=watch,
    )

    found = await LiquidityHook().shortages(ctx)

    assert [(s.node, s.direction, s.short_msat) for s in found] == [
        ("escrow-2", "outbound", 10_000)
    ]
