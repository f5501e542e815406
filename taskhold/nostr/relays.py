"""Talking to relays: publish signed events and read the log back by sequence number.

Events go in and come out as plain NIP-01 dicts; nostr-sdk's ``Client`` stays inside this module.
Reading the log uses only ``#o`` filters (the indexed copy of ``gseq``), in batches, never
``created_at`` paging: relays cap the events per REQ (nostr-sdk's LocalRelay at 500, silently), and
one second can hold more entries than that. A batch that comes back at the cap is split and asked
again, so two entries for one ``gseq`` (equivocation) cannot push a third out of the answer.

Nothing returned here is verified: callers check signatures and authors themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
from collections.abc import AsyncGenerator, Iterable, Sequence
from typing import Any

import structlog
from nostr_sdk import (
    Client,
    ClientBuilder,
    Event,
    Filter,
    NostrSdkError,
    Relay,
    RelayLimits,
    RelayOptions,
    RelayStatus,
    RelayUrl,
    ReqExitPolicy,
    ReqTarget,
    SendEventTarget,
    uniffi_set_event_loop,
)

from .entries import tag_value

__all__ = ["NOT_CONNECTED", "REQ_EVENT_CAP", "RelayError", "RelayPool"]

log = structlog.get_logger("taskhold.nostr")

REQ_EVENT_CAP = 500
"""The most events one REQ may return that we rely on (nostr-sdk LocalRelay's hard cap)."""

NOT_CONNECTED = "relay not connected"
"""What :meth:`RelayPool.publish` reports for a relay it has no live connection to."""

_DUPLICATE_PREFIX = "duplicate:"
"""NIP-01's machine-readable prefix for "already have it"; some relays send it with ``false``."""


class RelayError(Exception):
    """No configured relay could answer a read."""


class RelayPool:
    """One nostr-sdk client connected to a fixed set of relays.

    A relay that is down is reconnected in the background every ``reconnect_interval_s``;
    publishing to it meanwhile fails at once with :data:`NOT_CONNECTED` instead of waiting for a
    timeout, so one dead relay never slows the others down.
    """

    def __init__(
        self,
        *,
        connect_timeout_s: float = 3.0,
        ok_timeout_s: float = 10.0,
        fetch_timeout_s: float = 10.0,
        reconnect_interval_s: float = 2.0,
        batch_size: int = 250,
    ) -> None:
        if not 1 <= batch_size < REQ_EVENT_CAP:
            raise ValueError(f"batch_size must be from 1 to {REQ_EVENT_CAP - 1}")
        self._connect_timeout = datetime.timedelta(seconds=connect_timeout_s)
        self._ok_timeout = datetime.timedelta(seconds=ok_timeout_s)
        self._fetch_timeout = datetime.timedelta(seconds=fetch_timeout_s)
        self._reconnect_interval = datetime.timedelta(seconds=reconnect_interval_s)
        self._batch_size = batch_size
        self._client: Client | None = None
        self._urls: dict[str, RelayUrl] = {}
        self._relays: dict[str, Relay] = {}

    @property
    def urls(self) -> list[str]:
        """The relays this pool was connected to, as the caller spelled them."""
        return list(self._urls)

    async def connect(self, urls: Iterable[str]) -> None:
        """Add ``urls`` and wait up to the connect timeout; relays still down keep retrying."""
        uniffi_set_event_loop(asyncio.get_running_loop())
        if self._client is None:
            limits = RelayLimits().event_max_size(None).message_max_size(None)
            self._client = (
                ClientBuilder().connect_timeout(self._connect_timeout).relay_limits(limits).build()
            )
        options = (
            RelayOptions()
            .reconnect(True)
            .retry_interval(self._reconnect_interval)
            .adjust_retry_interval(False)
        )
        for url in urls:
            if url in self._urls:
                continue
            try:
                relay_url = RelayUrl.parse(url)
            except NostrSdkError as exc:
                raise ValueError(f"not a relay URL: {url!r} ({exc})") from None
            await self._client.add_relay(relay_url, opts=options)
            relay = await self._client.relay(relay_url)
            if relay is None:
                raise RuntimeError(f"nostr-sdk did not keep the relay {url}")
            self._urls[url] = relay_url
            self._relays[url] = relay
        await self._client.connect(and_wait=self._connect_timeout)

    async def is_connected(self, url: str) -> bool:
        """Whether the pool has a live connection to ``url`` right now."""
        relay = self._relays.get(url)
        return (
            self._client is not None
            and relay is not None
            and relay.status() == RelayStatus.CONNECTED
        )

    async def publish(self, event: dict[str, Any]) -> dict[str, str | None]:
        """Send ``event`` to every relay; per URL, None if it was accepted, else why not."""
        urls = list(self._urls)
        results = await asyncio.gather(*(self.publish_to(url, event) for url in urls))
        return dict(zip(urls, results, strict=True))

    async def publish_to(self, url: str, event: dict[str, Any]) -> str | None:
        """Send ``event`` to one relay of the pool: None if it acked (or had it), else why not."""
        client = self._require_client()
        if url not in self._urls:
            raise ValueError(f"{url} is not one of this pool's relays")
        if not await self.is_connected(url):
            return NOT_CONNECTED
        try:
            output = await client.send_event(
                _to_sdk_event(event),
                target=SendEventTarget.to([self._urls[url]]),
                ok_timeout=self._ok_timeout,
            )
        except NostrSdkError as exc:
            return f"error: {exc}"
        if output.success:
            return None
        message = next(iter(output.failed.values()), "no answer")
        return None if message.startswith(_DUPLICATE_PREFIX) else message

    async def fetch(self, filter_json: dict[str, Any] | str) -> list[dict[str, Any]]:
        """Events matching one NIP-01 filter from every connected relay, unioned by id.

        A relay returns at most its own cap per REQ; callers that need completeness use
        :meth:`fetch_log`, which pages by sequence number.
        """
        raw = filter_json if isinstance(filter_json, str) else json.dumps(filter_json)
        try:
            sdk_filter = Filter.from_json(raw)
        except NostrSdkError as exc:
            raise ValueError(f"not a NIP-01 filter: {exc}") from None
        per_relay = await self._fetch_each(sdk_filter)
        return list(_union(per_relay).values())

    async def fetch_log(
        self, operator_pubkey: str | Sequence[str], kind: int, gseqs: Sequence[int]
    ) -> list[dict[str, Any]]:
        """The operator's log entries with the given ``gseq`` numbers, ordered by ``gseq``.

        Every connected relay is asked and the answers are unioned by event id, so two entries
        signed for one ``gseq`` both come back (the caller decides it is equivocation). A number
        that no relay has is simply absent: that is a gap, also the caller's to report.
        """
        authors = [operator_pubkey] if isinstance(operator_pubkey, str) else list(operator_pubkey)
        wanted = sorted(set(gseqs))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), self._batch_size):
            batch = wanted[start : start + self._batch_size]
            found.update(await self._fetch_batch(authors, kind, batch))
        requested = {str(g) for g in wanted}
        entries = [
            event
            for event in found.values()
            if event.get("pubkey") in authors
            and event.get("kind") == kind
            and tag_value(event, "o") in requested
        ]
        entries.sort(key=lambda event: (int(tag_value(event, "o") or -1), event["id"]))
        return entries

    async def stream(self, filter_json: dict[str, Any]) -> AsyncGenerator[dict[str, Any]]:
        """Events matching one NIP-01 filter as every relay sends them: the stored ones, then
        new ones for as long as the caller iterates; nostr-sdk subscribes again after a
        reconnect. Events come unverified and possibly twice (once per relay).

        Read from the raw relay messages, not nostr-sdk's ``NEW_EVENT`` notifications: those
        skip every event the client saw before, e.g. in a :meth:`fetch` (reference/nostr.md,
        pitfall 4)."""
        client = self._require_client()
        try:
            sdk_filter = Filter.from_json(json.dumps(filter_json))
        except NostrSdkError as exc:
            raise ValueError(f"not a NIP-01 filter: {exc}") from None
        notifications = client.notifications()
        output = await client.subscribe(ReqTarget.auto([sdk_filter]))
        try:
            while (note := await notifications.next()) is not None:
                if note.is_shutdown():
                    return
                if not note.is_message():
                    continue
                message = note.message.as_enum()
                if message.is_event_msg() and message.subscription_id == output.id:
                    yield _from_sdk_event(message.event)
        finally:
            if self._client is not None:
                with contextlib.suppress(NostrSdkError):
                    await self._client.unsubscribe(output.id)

    async def close(self) -> None:
        """Disconnect from every relay; the pool cannot be used afterwards."""
        client, self._client = self._client, None
        self._urls.clear()
        self._relays.clear()
        if client is not None:
            await client.shutdown()
            # nostr-sdk's background tasks may still be unwinding; let them finish before the
            # event loop can close under them (reference/nostr.md, pitfall 6).
            await asyncio.sleep(0.1)

    async def _fetch_batch(
        self, authors: list[str], kind: int, batch: list[int]
    ) -> dict[str, dict[str, Any]]:
        sdk_filter = Filter.from_json(
            json.dumps(
                {
                    "authors": authors,
                    "kinds": [kind],
                    "#o": [str(g) for g in batch],
                    "limit": REQ_EVENT_CAP,
                }
            )
        )
        per_relay = await self._fetch_each(sdk_filter)
        if len(batch) > 1 and any(len(events) >= REQ_EVENT_CAP for events in per_relay):
            middle = len(batch) // 2
            lower = await self._fetch_batch(authors, kind, batch[:middle])
            upper = await self._fetch_batch(authors, kind, batch[middle:])
            return lower | upper
        return _union(per_relay)

    async def _fetch_each(self, sdk_filter: Filter) -> list[list[dict[str, Any]]]:
        client = self._require_client()
        urls = [url for url in self._urls if await self.is_connected(url)]
        if not urls:
            raise RelayError(f"no relay is connected (of {', '.join(self._urls) or 'none'})")

        async def one(url: str) -> list[dict[str, Any]] | None:
            try:
                events = await client.fetch_events(
                    ReqTarget.single(self._urls[url], [sdk_filter]),
                    timeout=self._fetch_timeout,
                    policy=ReqExitPolicy.EXIT_ON_EOSE(),
                )
            except NostrSdkError as exc:
                log.warning("relay_fetch_failed", relay=url, error=str(exc))
                return None
            return [_from_sdk_event(event) for event in events]

        answers = await asyncio.gather(*(one(url) for url in urls))
        answered = [events for events in answers if events is not None]
        if not answered:
            raise RelayError(f"no relay answered (asked {', '.join(urls)})")
        return answered

    def _require_client(self) -> Client:
        if self._client is None:
            raise RuntimeError("RelayPool.connect() has not been called, or the pool is closed")
        return self._client


def _to_sdk_event(event: dict[str, Any]) -> Event:
    try:
        return Event.from_json(json.dumps(event, ensure_ascii=False))
    except NostrSdkError as exc:
        raise ValueError(f"not a NIP-01 event: {exc}") from None


def _from_sdk_event(event: Event) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(event.as_json())
    return parsed


def _union(per_relay: list[list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {event["id"]: event for events in per_relay for event in events}
