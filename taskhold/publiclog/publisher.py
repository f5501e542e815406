"""The outbox publisher: every signed event reaches every configured relay, eventually.

Events are signed and queued in the ``outbox`` table inside the transaction that records the
transition (``taskhold.publiclog.writer``), so nothing is published that did not commit and nothing
that committed is forgotten. This module drains that table. Its only state is the table itself
(``acked_relays``, ``attempts``, ``next_attempt_at``, ``last_error``), so a restarted or a second
publisher simply carries on.

One round (:meth:`OutboxPublisher.run_once`) is three steps, and no database transaction is open
while the network is used:

1. *claim*, one short transaction: take the due rows that are not done, log entries first in
   ``gseq`` order, then the other events (listings…); push their ``next_attempt_at`` forward by
   a lease so another publisher leaves them alone;
2. *send*, no transaction: to each relay, in order, every claimed event it has not acked yet;
3. *record*, one short transaction: merge the acks; a row is done once every configured relay
   has acked it; otherwise it backs off exponentially (1 s, 2 s, 4 s … capped at 60 s) with the
   relays' answers in ``last_error``.

A replaceable event (a listing, kind 30402) that a newer version has replaced is not sent any
more: relays keep only the newest version and refuse an older one that arrives after it, so
sending it would only fail forever. Such a row is marked done with the reason in ``last_error``.
Within a round, replaceable events go out oldest first. One exception: a listing that shows its
task open for claims (``["s", "open"]``) goes out on its first try even when replaced, so a board
subscriber sees every moment a task became claimable (``docs/subscribing.md``).

A relay that is down gets nothing for a while and then everything: when a relay (re)connects,
every row still owed is made due at once and goes out in ``gseq`` order, so the relay has no gap
once the round ends.

Two publishers on one database: on PostgreSQL the claim is ``SELECT … FOR UPDATE SKIP LOCKED``,
so concurrent publishers take disjoint batches; on SQLite claims are serialised by the write lock
(``BEGIN IMMEDIATE``). Duplicate sends remain possible and are accepted: a publisher that dies
after claiming leaves its rows leased until the lease runs out and then they are sent again, and a
reconnecting relay releases other publishers' leases. Relays dedupe by event id and an answer of
``duplicate:`` counts as an ack, so a duplicate costs one round trip and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from taskhold.nostr.entries import LISTING_OPEN, tag_value
from taskhold.nostr.relays import RelayPool
from taskhold.store.models import ListingRow, LogEntryRow, OutboxRow
from taskhold.waits import within, woken

if TYPE_CHECKING:
    from taskhold.store import Store

__all__ = ["OutboxPublisher", "PublishRound", "RelayLag", "backoff_s", "owed_by_relay"]

log = structlog.get_logger("taskhold.nostr")


@dataclass(frozen=True, slots=True)
class PublishRound:
    """What one round did: rows claimed, rows now acked by every relay, rows backing off."""

    claimed: int
    done: int
    retrying: int


@dataclass(slots=True)
class _Claimed:
    event_id: str
    raw: dict[str, Any]
    acked: frozenset[str]
    answers: dict[str, str | None] = field(default_factory=dict)


class OutboxPublisher:
    def __init__(
        self,
        store: Store,
        pool: RelayPool,
        relays: Sequence[str],
        clock: Callable[[], float] = time.time,
        *,
        batch_size: int = 200,
        poll_interval_s: float = 0.5,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        lease_s: float = 120.0,
        relay_round_budget_s: float = 30.0,
        listing_kind: int = 30402,
    ) -> None:
        if not relays:
            raise ValueError("an outbox publisher needs at least one relay")
        self.store = store
        self.pool = pool
        self.relays = tuple(dict.fromkeys(relays))
        self._clock = clock
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.lease_s = lease_s
        self.relay_round_budget_s = relay_round_budget_s
        self.listing_kind = listing_kind
        self._connected: dict[str, bool] = dict.fromkeys(self.relays, False)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    # the loop --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Publish in the background until :meth:`stop`."""
        if self._task is not None:
            return
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="outbox-publisher")

    async def stop(self, timeout_s: float = 15.0) -> None:
        """Let the current round finish (up to ``timeout_s``), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self._wake.set()
        try:
            await within(asyncio.shield(task), timeout_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Start the next round now instead of at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            claimed = 0
            try:
                claimed = (await self.run_once()).claimed
            except Exception:  # the loop must outlive a database or relay hiccup
                log.exception("outbox_round_failed")
            if claimed >= self.batch_size:
                continue
            await woken(self._wake, self.poll_interval_s)
            self._wake.clear()

    # one round -------------------------------------------------------------------------------

    async def run_once(self) -> PublishRound:
        """Claim the due rows, send them, record the answers."""
        await self._release_on_reconnect()
        claimed = await self._claim()
        if not claimed:
            return PublishRound(0, 0, 0)
        await asyncio.gather(*(self._send_to(url, claimed) for url in self.relays))
        done, retrying = await self._record(claimed)
        return PublishRound(len(claimed), done, retrying)

    async def _release_on_reconnect(self) -> None:
        """A relay that just (re)connected is owed every row not done: make them all due."""
        came_back = []
        for url in self.relays:
            connected = await self.pool.is_connected(url)
            if connected and not self._connected[url]:
                came_back.append(url)
            self._connected[url] = connected
        if not came_back:
            return
        now = int(self._clock())
        async with self.store.transaction() as tx:
            await tx.session.execute(
                update(OutboxRow)
                .where(OutboxRow.done.is_(False), OutboxRow.next_attempt_at > now)
                .values(next_attempt_at=now)
            )
        log.info("relay_connected", relays=came_back)

    async def _claim(self) -> list[_Claimed]:
        now = int(self._clock())
        stmt = (
            select(OutboxRow)
            .outerjoin(LogEntryRow, LogEntryRow.event_id == OutboxRow.event_id)
            .where(OutboxRow.done.is_(False), OutboxRow.next_attempt_at <= now)
            .order_by(
                LogEntryRow.gseq.is_(None),
                LogEntryRow.gseq,
                OutboxRow.created_at,
                OutboxRow.event_id,
            )
            .limit(self.batch_size)
        )
        if self.store.dialect == "postgresql":
            stmt = stmt.with_for_update(of=OutboxRow, skip_locked=True)
        async with self.store.transaction() as tx:
            rows = list((await tx.session.execute(stmt)).scalars())
            replaced = _replaced_in_batch([row.raw for row in rows])
            newest_listing = await self._newest_listings(tx.session, rows)
            lease_until = now + math.ceil(self.lease_s)
            claimed = []
            for row in rows:
                replaced_by = replaced.get(row.event_id)
                if row.kind == self.listing_kind:
                    newest = newest_listing.get(_d_tag(row.raw) or "", row.event_id)
                    replaced_by = replaced_by or (newest if newest != row.event_id else None)
                if replaced_by is not None and not _opens_task(row):
                    row.done, row.next_attempt_at = True, now
                    row.last_error = f"not sent: replaced by {replaced_by}"
                    continue
                row.next_attempt_at = lease_until
                claimed.append(_Claimed(row.event_id, row.raw, frozenset(row.acked_relays)))
        return _oldest_first(claimed)

    async def _newest_listings(
        self, session: AsyncSession, rows: list[OutboxRow]
    ) -> dict[str, str]:
        """Task id -> id of its newest listing, for the listings among ``rows``."""
        task_ids = {_d_tag(row.raw) for row in rows if row.kind == self.listing_kind} - {None}
        if not task_ids:
            return {}
        stmt = select(ListingRow.task_id, ListingRow.event_id).where(
            ListingRow.task_id.in_(task_ids)
        )
        return {task_id: event_id for task_id, event_id in await session.execute(stmt)}

    async def _send_to(self, url: str, claimed: list[_Claimed]) -> None:
        """Send in order. A slow relay (answers timing out on a live connection) gets what fits
        in ``relay_round_budget_s``; the rest waits for a later round instead of holding up the
        other relays' acks."""
        started = time.monotonic()
        for item in claimed:
            if url in item.acked:
                continue
            if time.monotonic() - started > self.relay_round_budget_s:
                item.answers[url] = "not sent: the relay was too slow in this round"
                continue
            item.answers[url] = await self.pool.publish_to(url, item.raw)

    async def _record(self, claimed: list[_Claimed]) -> tuple[int, int]:
        now = int(self._clock())
        by_id = {item.event_id: item for item in claimed}
        stmt = select(OutboxRow).where(OutboxRow.event_id.in_(list(by_id)))
        if self.store.dialect == "postgresql":
            stmt = stmt.with_for_update()
        done = retrying = 0
        async with self.store.transaction() as tx:
            for row in (await tx.session.execute(stmt)).scalars():
                item = by_id[row.event_id]
                acked = set(row.acked_relays) | {
                    url for url, answer in item.answers.items() if answer is None
                }
                row.acked_relays = sorted(acked)
                if acked.issuperset(self.relays):
                    row.done, row.last_error, row.next_attempt_at = True, None, now
                    done += 1
                    continue
                row.attempts += 1
                row.next_attempt_at = now + self._backoff(row.attempts)
                row.last_error = "; ".join(
                    f"{url}: {answer}"
                    for url, answer in sorted(item.answers.items())
                    if answer is not None
                )
                retrying += 1
        if retrying:
            log.warning("outbox_retrying", rows=retrying, first_error=_first_error(claimed))
        return done, retrying

    def _backoff(self, attempts: int) -> int:
        return backoff_s(attempts, base_s=self.base_backoff_s, max_s=self.max_backoff_s)

    # waiting ---------------------------------------------------------------------------------

    async def pending(self, event_ids: Collection[str] | None = None) -> int:
        """How many rows (of ``event_ids``, or all) are not yet acked by every relay."""
        stmt = select(func.count()).select_from(OutboxRow).where(OutboxRow.done.is_(False))
        if event_ids is not None:
            stmt = stmt.where(OutboxRow.event_id.in_(list(event_ids)))
        async with self.store.transaction() as tx:
            return int((await tx.session.execute(stmt)).scalar_one())

    async def wait_until_published(
        self, event_ids: Collection[str] | None = None, *, timeout_s: float = 30.0
    ) -> None:
        """Return once every row of ``event_ids`` (or the whole outbox) is done.

        Raises ``TimeoutError`` if that does not happen within ``timeout_s``; the publisher must be
        running (:meth:`start`) for anything to change.
        """
        deadline = time.monotonic() + timeout_s
        while (left := await self.pending(event_ids)) > 0:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{left} outbox event(s) not acked by every relay")
            self.wake()
            await asyncio.sleep(0.05)


@dataclass(frozen=True, slots=True)
class RelayLag:
    """What one relay has not acked yet: how many events, and when the oldest was queued."""

    events: int = 0
    oldest_created_at: int | None = None


async def owed_by_relay(session: AsyncSession, relays: Sequence[str]) -> dict[str, RelayLag]:
    """Per configured relay, the outbox rows not done that it has not acked (the metrics'
    outbox lag). Reads only the rows not done (an indexed column): the outbox's backlog, not
    its history."""
    owed = {url: RelayLag() for url in relays}
    rows = await session.execute(
        select(OutboxRow.created_at, OutboxRow.acked_relays).where(OutboxRow.done.is_(False))
    )
    for created_at, acked in rows:
        for url, lag in owed.items():
            if url in acked:
                continue
            oldest = lag.oldest_created_at
            owed[url] = RelayLag(
                lag.events + 1, created_at if oldest is None else min(oldest, created_at)
            )
    return owed


def _replaceable_key(event: dict[str, Any]) -> tuple[int, str, str] | None:
    """NIP-01: relays keep one event per (kind, pubkey) or, addressable, per (kind, pubkey, d)."""
    kind = int(event["kind"])
    if 30000 <= kind < 40000:
        return kind, str(event["pubkey"]), _d_tag(event) or ""
    if 10000 <= kind < 20000 or kind in (0, 3):
        return kind, str(event["pubkey"]), ""
    return None


def backoff_s(attempts: int, *, base_s: float, max_s: float) -> int:
    """Whole seconds to wait after ``attempts`` failed tries in a row: ``base_s`` doubled per
    try after the first, at most ``max_s``, at least 1 (rows are due by unix second)."""
    return max(1, math.ceil(min(base_s * 2.0 ** min(attempts - 1, 30), max_s)))


def _opens_task(row: OutboxRow) -> bool:
    """A listing that shows its task open for claims, not tried yet: it goes out even once
    replaced (oldest first, so relays still end on the newest), or a board subscriber would
    never see that the task was claimable."""
    return row.attempts == 0 and tag_value(row.raw, "s") == LISTING_OPEN


def _replaced_in_batch(events: list[dict[str, Any]]) -> dict[str, str]:
    """Replaceable events that a newer one in the same batch replaces: id -> the newer id."""
    newest: dict[tuple[int, str, str], str] = {}
    replaced = {}
    # Newest first; on a created_at tie relays keep the lowest id (NIP-01), so that one wins.
    for event in sorted(events, key=lambda event: (-int(event["created_at"]), str(event["id"]))):
        key = _replaceable_key(event)
        if key is None:
            continue
        if key in newest:
            replaced[str(event["id"])] = newest[key]
        else:
            newest[key] = str(event["id"])
    return replaced


def _oldest_first(claimed: list[_Claimed]) -> list[_Claimed]:
    """Log entries keep their gseq order; the other events follow, oldest first, so a relay
    never sees a replaceable event after the version that replaces it."""
    entries = [item for item in claimed if _replaceable_key(item.raw) is None]
    others = [item for item in claimed if _replaceable_key(item.raw) is not None]
    return entries + sorted(others, key=lambda item: int(item.raw["created_at"]))


def _d_tag(event: dict[str, Any]) -> str | None:
    for tag in event.get("tags", []):
        if isinstance(tag, list) and len(tag) >= 2 and tag[0] == "d":
            return str(tag[1])
    return None


def _first_error(claimed: list[_Claimed]) -> str | None:
    for item in claimed:
        for url, answer in sorted(item.answers.items()):
            if answer is not None:
                return f"{url}: {answer}"
    return None
