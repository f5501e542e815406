"""Keeping the reputation indexer live over the database's copy of the public log.

The indexer lives in memory and is always a fold of ``log_entries`` (in ``gseq`` order) and
``reviews`` (in ``rseq`` order), so there is nothing to keep in step on a rebuild or a restart:
a new process reads the log from ``gseq`` 0, and each :meth:`ReputationService.sync` reads only
what was committed since (``gseq > head``), feeds it, rescores the pubkeys it touched and queues
an assertion for each whose score changed, in one transaction. ``sync`` runs from a small loop
while the server runs, on demand before a read of ``GET /v1/reputation``, and before a policy
decision when the indexer is older than ``reputation_max_staleness_s``.

The indexer starts the operator's key chain with the author of entry 0
(``Indexer(operator_pubkey=None)``), not with the key this process signs with: after a key
rotation the database's entries and records are signed by every key of the chain, and the
indexer follows the ``KeyRotated`` entries from the first one, as an auditor does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select

from taskhold.store import Store
from taskhold.store.models import LogEntryRow, ReputationAssertionRow, ReviewRow

from .metrics import Indexer, IndexerKinds
from .publish import AssertionPublisher, assertion_view
from .score import ScoreCard, score_card

__all__ = ["ReputationService", "SyncResult"]

log = structlog.get_logger("taskhold.reputation")


@dataclass(frozen=True, slots=True)
class SyncResult:
    entries: int
    reviews: int
    published: int


class ReputationService:
    def __init__(
        self,
        store: Store,
        publisher: AssertionPublisher | None,
        *,
        operator_pubkey: str,
        kinds: IndexerKinds,
        interval_s: float = 1.0,
        max_staleness_s: float = 1.0,
        batch_size: int = 2000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.operator_pubkey = operator_pubkey
        self.kinds = kinds
        self.indexer = Indexer(operator_pubkey=None, kinds=kinds)
        self.interval_s = interval_s
        self.max_staleness_s = max_staleness_s
        self.batch_size = batch_size
        self._monotonic = monotonic
        self._synced_at: float | None = None
        self._lock = asyncio.Lock()
        self._runner: asyncio.Task[None] | None = None

    # the loop --------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.sync()
        self._runner = asyncio.create_task(self._loop(), name="taskhold-reputation")

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sync()
            except Exception as exc:  # the loop must outlive a bad pass; the next one retries
                log.error("reputation_sync_failed", error=type(exc).__name__, detail=str(exc))

    # syncing ---------------------------------------------------------------------------------

    async def sync(self) -> SyncResult:
        """Index everything committed since the last pass and publish changed scores."""
        async with self._lock:
            return await self._sync_locked()

    async def _sync_locked(self) -> SyncResult:
        entries = await self._read(LogEntryRow.raw, LogEntryRow.gseq, self.indexer.head_gseq)
        reviews = await self._read(ReviewRow.record, ReviewRow.rseq, self.indexer.head_rseq)
        published = 0
        touched = self.indexer.take_touched()
        if self.publisher is not None and touched:
            cards = [score_card(self.indexer, subject) for subject in sorted(touched)]
            async with self.store.transaction() as tx:
                published = len(await self.publisher.publish_changed(tx.session, cards))
        self._synced_at = self._monotonic()
        return SyncResult(entries, reviews, published)

    async def _read(self, column: Any, order: Any, after: int) -> int:
        count = 0
        while True:
            stmt = select(order, column).where(order > after).order_by(order).limit(self.batch_size)
            async with self.store.transaction() as tx:
                rows = list((await tx.session.execute(stmt)).tuples())
            self.indexer.add_many(raw for _number, raw in rows)
            count += len(rows)
            if len(rows) < self.batch_size:
                return count
            after = int(rows[-1][0])

    async def fresh(self) -> None:
        """Sync unless the last pass is younger than ``max_staleness_s``; concurrent callers
        share one pass instead of queueing one each."""
        if not self._stale():
            return
        async with self._lock:
            if self._stale():
                await self._sync_locked()

    def _stale(self) -> bool:
        synced_at = self._synced_at
        return synced_at is None or self._monotonic() - synced_at >= self.max_staleness_s

    # reading ---------------------------------------------------------------------------------

    async def card(self, pubkey: str) -> ScoreCard:
        """The pubkey's score and metrics, at most ``max_staleness_s`` old."""
        await self.fresh()
        return self.card_now(pubkey)

    def card_now(self, pubkey: str) -> ScoreCard:
        """The pubkey's score and metrics as indexed so far (no I/O: safe inside a
        transaction, where a sync would wait for the transaction's own lock on SQLite)."""
        return score_card(self.indexer, pubkey)

    async def published(self, pubkey: str) -> dict[str, Any] | None:
        async with self.store.transaction() as tx:
            row = await tx.session.get(ReputationAssertionRow, pubkey)
            return None if row is None else assertion_view(row)
