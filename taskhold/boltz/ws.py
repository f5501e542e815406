"""Swap status as Boltz pushes it over its WebSocket, and a polling fallback.

A client waiting for a lockup to appear or a payment to fail should hear it at once, not on
its next poll. :func:`status_updates` subscribes to ``swap.update`` for some swap ids and yields
each update; a silent connection gets Boltz's application ping (``{"op":"ping"}``) and is taken
for dead if even that goes unanswered. A dropped connection is reopened and resubscribed once
(the subscribe answer carries the current status, so nothing is lost between); a second drop
with no message in between raises ``BoltzUnavailable``, and the caller may fall back to
:func:`wait_for_status`, which polls ``GET /swap/{id}``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from taskhold.waits import within

from .api import BoltzApi
from .errors import BoltzProtocolError, BoltzRefused, BoltzUnavailable, StatusTimeout, SwapEnded
from .fields import is_swap_id
from .models import SwapStatus
from .statuses import FINAL

__all__ = ["SwapUpdate", "parse_message", "status_updates", "wait_for_status", "ws_url_for"]


def ws_url_for(api_base_url: str) -> str:
    """Boltz's WebSocket beside its REST base: ``https://host/v2`` -> ``wss://host/v2/ws``.

    Boltz's own regtest serves the WebSocket on another port; pass that URL instead."""
    base = api_base_url.rstrip("/")
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(http):
            return ws + base.removeprefix(http) + "/ws"
    raise ValueError(f"not an http(s) URL: {api_base_url!r}")


@dataclass(frozen=True, slots=True)
class SwapUpdate:
    """One status of one swap."""

    swap_id: str
    status: SwapStatus


def parse_message(raw: str | bytes) -> list[SwapUpdate]:
    """The updates in one WebSocket message (none for a subscribe answer or a pong)."""
    try:
        message = json.loads(raw, parse_float=Decimal)
    except ValueError:
        raise BoltzProtocolError("Boltz's WebSocket sent something not JSON") from None
    if not isinstance(message, dict):
        raise BoltzProtocolError("Boltz's WebSocket sent a message that is not an object")
    event = message.get("event")
    if event == "error":
        raise BoltzRefused(str(message.get("error") or message.get("reason") or "error"))
    if event != "update" or message.get("channel") != "swap.update":
        return []
    args = message.get("args")
    if not isinstance(args, list):
        raise BoltzProtocolError("a swap.update message has no list of args")
    updates = []
    for index, arg in enumerate(args):
        where = f"swap.update args[{index}]"
        swap_id = arg.get("id") if isinstance(arg, dict) else None
        if not isinstance(swap_id, str) or not is_swap_id(swap_id):
            raise BoltzProtocolError(f"{where} has no swap id")
        updates.append(SwapUpdate(swap_id, SwapStatus.from_json(arg, where)))
    return updates


async def status_updates(
    ws_url: str,
    swap_ids: Sequence[str],
    *,
    ping_interval: float = 20.0,
    open_timeout: float = 10.0,
    reconnects: int = 1,
) -> AsyncGenerator[SwapUpdate, None]:
    """Yield each update of ``swap_ids`` (``ws_url`` like ``wss://api.boltz.exchange/v2/ws``).

    ``reconnects``: drops survived in a row; the count starts again after any message.
    Close the iterator (``contextlib.aclosing``) to drop the connection as soon as the caller
    is done, rather than when the generator is collected."""
    if not swap_ids or not all(is_swap_id(i) for i in swap_ids):
        raise ValueError("subscribe to at least one swap id, and only swap ids")
    subscribe = json.dumps({"op": "subscribe", "channel": "swap.update", "args": list(swap_ids)})
    ping = json.dumps({"op": "ping"})
    subscribed = frozenset(swap_ids)  # an update for any other swap is not ours to act on
    left = reconnects
    while True:
        try:
            async with connect(
                ws_url, open_timeout=open_timeout, ping_interval=None, max_size=2**20
            ) as ws:
                await ws.send(subscribe)
                unanswered = False
                while True:
                    try:
                        raw = await within(ws.recv(), ping_interval)
                    except TimeoutError:
                        if unanswered:
                            raise ConnectionError("no answer to a ping") from None
                        await ws.send(ping)
                        unanswered = True
                        continue
                    unanswered, left = False, reconnects
                    for update in parse_message(raw):
                        if update.swap_id in subscribed:
                            yield update
        except (OSError, TimeoutError, WebSocketException) as exc:
            if left <= 0:
                raise BoltzUnavailable(
                    f"Boltz's WebSocket at {ws_url} dropped: {type(exc).__name__}"
                ) from None
            left -= 1


async def wait_for_status(
    api: BoltzApi,
    swap_id: str,
    wanted: Collection[str],
    *,
    timeout_s: float,
    interval: float = 5.0,
) -> SwapStatus:
    """Poll until the swap reaches one of ``wanted``; a final status not wanted raises
    ``SwapEnded``, running out of time ``StatusTimeout``. Unreachable polls are retried."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    status = await api.swap_status(swap_id)
                except BoltzUnavailable:
                    status = None
                if status is not None:
                    if status.status in wanted:
                        return status
                    if status.status in FINAL:
                        raise SwapEnded(swap_id, status.status)
                await asyncio.sleep(interval)
    except TimeoutError:
        raise StatusTimeout(
            f"swap {swap_id} did not reach {sorted(wanted)} within {timeout_s} s"
        ) from None
