"""The transport of the Nostr services tests stand up (a NIP-46 bunker, a NIP-47 wallet
service): one nostr-sdk client on a relay, each verified event of one filter handled in a task
of its own, answers sent back.

The subscription is live once :meth:`ServiceLoop.start` returns: requests of both NIPs are
ephemeral kinds (20000 to 29999) a relay does not store, so one sent before would be lost. (The
log's :meth:`taskhold.nostr.relays.RelayPool.stream` subscribes on its first iteration instead,
which is why it is not used here.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from nostr_sdk import Client, Event, Filter, RelayUrl, ReqTarget, Timestamp

__all__ = ["ServiceLoop", "recent"]


def recent(sdk_filter: Filter) -> Filter:
    """``sdk_filter`` from a few seconds ago on (clocks in one test agree)."""
    return sdk_filter.since(Timestamp.from_secs(Timestamp.now().as_secs() - 5))


class ServiceLoop:
    def __init__(self, relay_url: str) -> None:
        self.relay_url = relay_url
        self._client: Client | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self, sdk_filter: Filter, handle: Callable[[Event], Awaitable[None]]) -> None:
        client = Client()
        await client.add_relay(RelayUrl.parse(self.relay_url))
        await client.connect()
        notifications = client.notifications()
        output = await client.subscribe(ReqTarget.auto([sdk_filter]))
        self._client = client

        async def serve() -> None:
            while (note := await notifications.next()) is not None:
                if note.is_shutdown():
                    return
                if not note.is_message():
                    continue
                message = note.message.as_enum()
                if (
                    message.is_event_msg()
                    and message.subscription_id == output.id
                    and message.event.verify()
                ):
                    self._spawn(handle(message.event))

        self._spawn(serve())

    async def send(self, event: Event) -> None:
        assert self._client is not None, "start the service first"
        await self._client.send_event(event)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.shutdown()
            await asyncio.sleep(0.1)  # nostr-sdk's tasks unwind (reference/nostr.md, pitfall 6)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
