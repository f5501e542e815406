"""Waiting with a time limit, where a cancel is never lost.

On Python 3.11, ``asyncio.wait_for`` returns the awaited result when a cancel of the waiting
task comes in the same turn of the event loop as that result, and the cancel is gone (CPython
bpo-42130, gh-86296; 3.12 rebuilt ``wait_for`` on ``asyncio.timeout``). A loop that waits for
its wake-up that way and is stopped just as something wakes it runs on, and whoever awaits its
end waits forever: the escrow engine's ``stop()`` hung so, with a payment job's wake-up beside
the cancel. ``asyncio.timeout`` counts the cancels it makes itself and lets any other through,
so every wait with a limit in taskhold goes through here (tests/test_waits.py holds the
package to it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["within", "woken"]

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """``await awaitable``, or :class:`TimeoutError` once ``seconds`` pass (``None``: no
    limit). Awaited in the caller's task, not a task of its own: a cancel of the caller
    reaches it, and is raised even when the result is ready at the same moment."""
    async with asyncio.timeout(seconds):
        return await awaitable


async def woken(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True if it was set."""
    try:
        await within(event.wait(), seconds)
    except TimeoutError:
        return False
    return True
