"""Stopping the escrow engine ends its loop, even when something wakes it at that moment.

A request's write or a payment job's end wakes the engine at any time, and a server's shutdown
stops it at any time. On Python 3.11 a wake-up that came in the same turn of the event loop as
the stop's cancel used to win (``asyncio.wait_for``, see taskhold/waits.py): the cancel was
lost, the loop ran on, and ``stop()`` never returned. ``HANG_GUARD_S`` only turns such a hang
into a failure; nothing here measures time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support.stacks import close_stack, open_stack, stack_settings

from taskhold.escrow import EscrowEngine

HOUR_S = 3600
HANG_GUARD_S = 10.0


@pytest.mark.parametrize("turns_between", [0, 1, 2, 5])
async def test_a_stop_that_meets_a_wake_ends_the_loop(
    tmp_path: Path, database_url: str, turns_between: int
) -> None:
    settings = stack_settings(
        tmp_path, database_url, engine_tick_s=HOUR_S, reconcile_interval_s=HOUR_S
    )
    stack = await open_stack(settings)
    engine = EscrowEngine(stack.services.engine.ctx)
    try:
        await engine.start()
        runner = engine._runner
        assert runner is not None
        for _ in range(3):
            await asyncio.sleep(0)  # the loop now waits for a wake (its tick is an hour)
        assert not runner.done()

        engine.notify()
        for _ in range(turns_between):
            await asyncio.sleep(0)
        # Not under asyncio.timeout: its cancel would reach the loop through stop() and end it.
        stopping = asyncio.create_task(engine.stop())
        await asyncio.wait({stopping}, timeout=HANG_GUARD_S)

        assert stopping.done(), "stop() did not return: the loop took the wake, not the cancel"
        assert runner.cancelled()
    finally:
        if engine._runner is not None:
            engine._runner.cancel()
        await close_stack(stack)
