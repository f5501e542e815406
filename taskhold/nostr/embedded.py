"""The relay taskhold runs in its own process when no relay is configured.

nostr-sdk's ``LocalRelay`` on loopback, storing events in LMDB under ``<data_dir>/relay`` so the
public log survives restarts. Its defaults would silently drop most of a busy log (60 events a
minute, 20 REQs), so both limits are raised far above anything taskhold produces. It still caps
one REQ at 500 events and one event at 64 KiB; :class:`~taskhold.nostr.relays.RelayPool` pages
around the first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from nostr_sdk import LocalRelay, LocalRelayBuilder, NostrLmdb, RateLimit, uniffi_set_event_loop

__all__ = ["EmbeddedRelay"]


class EmbeddedRelay:
    """Start with :meth:`start`, which returns the ``ws://`` URL; stop with :meth:`stop`.

    A stopped relay can be started again: it comes back on the same port with the same LMDB, so
    clients reconnect to the URL they had.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        notes_per_minute: int = 1_000_000,
        max_reqs: int = 10_000,
    ) -> None:
        self.path = data_dir / "relay"
        self.host = host
        self.port = port
        self._rate_limit = (max_reqs, notes_per_minute)
        # LocalRelay shuts itself down once every reference to it is dropped: keep one.
        self._relay: LocalRelay | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the embedded relay is not running")
        return self._url

    @property
    def running(self) -> bool:
        return self._relay is not None

    async def start(self) -> str:
        if self._relay is not None:
            return self.url
        uniffi_set_event_loop(asyncio.get_running_loop())
        self.path.mkdir(parents=True, exist_ok=True)
        max_reqs, notes_per_minute = self._rate_limit
        builder = (
            LocalRelayBuilder()
            .addr(self.host)
            .database(await NostrLmdb.open(str(self.path)))
            .rate_limit(RateLimit(max_reqs=max_reqs, notes_per_minute=notes_per_minute))
        )
        if self.port is not None:
            builder = builder.port(self.port)
        relay = builder.build()
        await relay.run()
        url = str(await relay.url())
        self._relay, self._url = relay, url
        self.port = int(url.rsplit(":", 1)[1].rstrip("/"))
        return url

    async def stop(self) -> None:
        relay, self._relay, self._url = self._relay, None, None
        if relay is None:
            return
        relay.shutdown()
        del relay
        # Let the relay's tasks and the LMDB environment wind down before anyone reopens the
        # directory or the event loop closes (reference/nostr.md, pitfall 6).
        await asyncio.sleep(0.2)
