"""Claims on one task's money across ``serve`` replicas sharing a PostgreSQL database.

In one process the engine's ``_busy`` set keeps a guard or refund step away from a payment
that may still land; across processes that set is blind, so the same keys are also leased in
the ``engine_leases`` table: a payment job holds its key for as long as it pays and settles,
and a guard, refund or deposit step takes the key before it may cancel a hold. A key another
replica holds is skipped, and the next pass tries again. The holder renews its lease every
third of ``engine_lease_s``; a replica that dies (SIGKILL) stops renewing, its lease expires,
and another replica takes the key over and finishes the work from the payout row (which says
what was sent, so nothing is paid twice).

On SQLite (one process by design) nothing is leased: the in-memory set is the whole truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

from taskhold.store import Store

from .context import log

__all__ = ["Leases", "replica_name"]


def replica_name() -> str:
    """This engine's name as a lease owner: host, process and a random part (two engines in
    one process are two owners)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Leases:
    """One engine's leases. ``enabled`` is False on SQLite, where every claim succeeds."""

    def __init__(
        self,
        store: Store,
        ttl_s: float,
        clock: Callable[[], float],
        *,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock
        self.owner = owner or replica_name()
        self.enabled = store.dialect == "postgresql"

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def claim(self, keys: Sequence[str]) -> bool:
        """Take every key (all of them, or none: those taken are given back)."""
        if not self.enabled:
            return True
        now = self._now_ms()
        until = now + int(self.ttl_s * 1000)
        taken: list[str] = []
        for key in keys:
            async with self.store.transaction() as tx:
                won = await tx.claim_lease(key, self.owner, now_ms=now, until_ms=until)
            if not won:
                await self.release(taken)
                return False
            taken.append(key)
        return True

    async def release(self, keys: Sequence[str]) -> None:
        if not self.enabled or not keys:
            return
        async with self.store.transaction() as tx:
            for key in keys:
                await tx.release_lease(key, self.owner)

    @contextlib.asynccontextmanager
    async def holding(self, keys: Sequence[str]) -> AsyncIterator[bool]:
        """Yield whether ``keys`` were claimed; while held, renew them; give them back after."""
        if not await self.claim(keys):
            yield False
            return
        renewer = asyncio.create_task(self._renew(keys)) if self.enabled and keys else None
        try:
            yield True
        finally:
            if renewer is not None:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await renewer
            with contextlib.suppress(Exception):  # an unreleased lease just expires
                await asyncio.shield(self.release(keys))

    async def _renew(self, keys: Sequence[str]) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            for key in keys:
                try:
                    kept = await self.claim([key])
                except Exception as exc:  # the database is away: keep trying while we work
                    log.warning("lease_renewal_failed", key=key, error=type(exc).__name__)
                    continue
                if not kept:
                    log.error("lease_lost", key=key, owner=self.owner)
