"""Waits with a time limit never lose a cancel (taskhold/waits.py), and taskhold has no other.

On Python 3.11 ``asyncio.wait_for`` returns the result when the waiting task's cancel and the
result come in the same turn of the event loop, and the cancel is gone: a loop stopped just as
it is woken runs on. The first tests show the helpers keep the cancel where ``wait_for`` loses
it; the last holds the package to the helpers.
"""

from __future__ import annotations

import ast
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from taskhold.waits import within, woken

PACKAGE = Path(__file__).resolve().parents[1] / "taskhold"


async def _wait_with_wait_for(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), 3600)


async def _wait_within(event: asyncio.Event) -> None:
    await within(event.wait(), 3600)


async def _wait_woken(event: asyncio.Event) -> None:
    await woken(event, 3600)


async def _loop_until_cancelled(
    wait: Callable[[asyncio.Event], Awaitable[None]], event: asyncio.Event, rounds: list[None]
) -> None:
    """The shape of taskhold's engine, publisher and delivery loops: wait for a wake, work."""
    while True:
        await wait(event)
        event.clear()
        rounds.append(None)


async def _cancel_as_woken(wait: Callable[[asyncio.Event], Awaitable[None]]) -> bool:
    """Wake the loop and cancel it in the same turn; True if the loop ended."""
    event = asyncio.Event()
    rounds: list[None] = []
    loop = asyncio.create_task(_loop_until_cancelled(wait, event, rounds))
    await asyncio.sleep(0)
    event.set()
    loop.cancel()
    await asyncio.wait({loop}, timeout=0.5)  # a loop that took the wake waits an hour more
    ended = loop.done()
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
    return ended


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12's wait_for keeps the cancel")
async def test_wait_for_loses_a_cancel_that_comes_with_the_wake() -> None:
    """The fault the helpers exist for; if this stops failing, 3.11 fixed it."""
    assert not await _cancel_as_woken(_wait_with_wait_for)


@pytest.mark.parametrize("wait", [_wait_within, _wait_woken], ids=["within", "woken"])
async def test_a_cancel_that_comes_with_the_wake_ends_the_loop(
    wait: Callable[[asyncio.Event], Awaitable[None]],
) -> None:
    assert await _cancel_as_woken(wait)


async def test_within_gives_the_result_or_a_timeout() -> None:
    assert await within(asyncio.sleep(0, result="done"), 5) == "done"
    with pytest.raises(TimeoutError):
        await within(asyncio.Event().wait(), 0.01)


async def test_woken_says_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await woken(event, 0.01) is False
    event.set()
    assert await woken(event, 5) is True


def _wait_for_uses(path: Path) -> list[int]:
    """Lines of ``asyncio.wait_for(...)`` and of ``from asyncio import wait_for``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        called = (
            isinstance(node, ast.Attribute)
            and node.attr == "wait_for"
            and isinstance(node.value, ast.Name)
            and node.value.id == "asyncio"
        )
        imported = (
            isinstance(node, ast.ImportFrom)
            and node.module == "asyncio"
            and any(alias.name == "wait_for" for alias in node.names)
        )
        if called or imported:
            lines.append(node.lineno)
    return lines


def test_taskhold_waits_with_a_limit_only_through_the_helpers() -> None:
    uses = {
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in PACKAGE.rglob("*.py")
        for line in _wait_for_uses(path)
    }
    assert uses == set(), "use taskhold.waits.within / woken instead of asyncio.wait_for"
