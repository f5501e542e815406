"""The webhook worker: every public log entry reaches every registered webhook, in order.

Each webhook is a tracked consumer of the log: its row holds ``delivered_gseq``, the last entry
its receiver acknowledged with a 2xx. A round takes the entries after it, in ``gseq`` order,
and POSTs them one by one, each in an operator-signed envelope
(:mod:`taskhold.nostr.webhook_delivery`); the cursor moves on each success. The first failure
(no answer within ``timeout_s``, a refused connection, a non-2xx) ends the webhook's round and
it backs off 1 s, 2 s, 4 s … up to ``max_backoff_s``; it never gives up or skips an entry, so a
receiver down for a day gets everything, in order, once it is back. A delivery whose answer
was lost is sent again: receivers dedupe on its ``delivery`` tag (the entry's id).

The worker is apart from everything else, so a slow or hostile receiver costs only its own
deliveries: no database transaction is open during a POST, the engine and the relay publisher
never wait for a webhook, each webhook runs as its own task with a per-request timeout and a
time budget per round, answers are not read beyond their status, and redirects are not
followed (only the URL the operator registered is ever called).

Two workers on one database take disjoint webhooks (a lease in ``next_attempt_at``, claimed with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL); a worker that dies mid-round leaves its webhooks
leased until the lease ends, and the receiver may then see a delivery again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from sqlalchemy import select

from taskhold.keys.signer import EventSigner
from taskhold.nostr.webhook_delivery import delivery_content, delivery_tags
from taskhold.publiclog.publisher import backoff_s
from taskhold.store import Store
from taskhold.store.models import LogEntryRow, WebhookRow
from taskhold.waits import woken

__all__ = ["WebhookDeliverer", "WebhookRound"]

log = structlog.get_logger("taskhold.notify")


@dataclass(frozen=True, slots=True)
class WebhookRound:
    """What one webhook's round did."""

    webhook_id: int
    delivered: int
    error: str | None


@dataclass(frozen=True, slots=True)
class _Claimed:
    webhook_id: int
    url: str
    delivered_gseq: int
    attempts: int


class WebhookDeliverer:
    def __init__(
        self,
        store: Store,
        signer: EventSigner,
        *,
        kind: int,
        timeout_s: float = 5.0,
        interval_s: float = 1.0,
        max_backoff_s: float = 300.0,
        batch_size: int = 100,
        round_budget_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.kind = kind
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self.batch_size = batch_size
        self.round_budget_s = round_budget_s
        self.lease_s = round_budget_s + 2 * timeout_s + 60
        self._clock = clock
        self._own_http = http is None
        self._http = http
        self._inflight: dict[int, asyncio.Task[WebhookRound]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # the loop --------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="webhook-deliverer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._stopping.set()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for inflight in list(self._inflight.values()):
            inflight.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        self._inflight.clear()
        if self._own_http and self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def _run(self) -> None:
        """Each due webhook gets its own task, so one slow receiver never delays another."""
        while not self._stopping.is_set():
            try:
                for claimed in await self._claim(exclude=set(self._inflight)):
                    task = asyncio.create_task(self._deliver_in_background(claimed))
                    self._inflight[claimed.webhook_id] = task
                    task.add_done_callback(self._forget(claimed.webhook_id))
            except Exception:  # the loop must outlive a database hiccup
                log.exception("webhook_round_failed")
            await woken(self._stopping, self.interval_s)

    def _forget(self, webhook_id: int) -> Callable[[asyncio.Task[WebhookRound]], None]:
        def forget(_: asyncio.Task[WebhookRound]) -> None:
            self._inflight.pop(webhook_id, None)

        return forget

    async def run_once(self) -> list[WebhookRound]:
        """One round for every due webhook, waited for (tests, and a one-shot drain)."""
        claimed = await self._claim(exclude=set())
        return list(await asyncio.gather(*(self._deliver(hook) for hook in claimed)))

    # one webhook -----------------------------------------------------------------------------

    async def _deliver_in_background(self, hook: _Claimed) -> WebhookRound:
        """A failure here (the database, say) leaves the webhook leased: it is tried again
        once the lease ends, from its cursor, so nothing is skipped."""
        try:
            return await self._deliver(hook)
        except Exception as exc:
            log.exception("webhook_round_failed", webhook_id=hook.webhook_id)
            return WebhookRound(hook.webhook_id, 0, f"{type(exc).__name__}: {exc}"[:500])

    async def _claim(self, *, exclude: set[int]) -> list[_Claimed]:
        now = int(self._clock())
        stmt = select(WebhookRow).where(
            WebhookRow.enabled.is_(True), WebhookRow.next_attempt_at <= now
        )
        if exclude:
            stmt = stmt.where(WebhookRow.webhook_id.not_in(exclude))
        if self.store.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        claimed = []
        async with self.store.transaction() as tx:
            for row in (await tx.session.execute(stmt)).scalars():
                row.next_attempt_at = now + math.ceil(self.lease_s)
                claimed.append(_Claimed(row.webhook_id, row.url, row.delivered_gseq, row.attempts))
        return claimed

    async def _deliver(self, hook: _Claimed) -> WebhookRound:
        entries = await self._entries_after(hook.delivered_gseq)
        delivered_gseq, error = hook.delivered_gseq, None
        started = time.monotonic()
        for gseq, entry in entries:
            if time.monotonic() - started > self.round_budget_s:
                break
            error = await self._post(hook.url, entry, gseq)
            if error is not None:
                break
            delivered_gseq = gseq
        more = error is None and len(entries) == self.batch_size
        await self._record(hook, delivered_gseq, error, more=more)
        if error is not None:
            log.warning("webhook_failed", webhook_id=hook.webhook_id, error=error)
        return WebhookRound(hook.webhook_id, delivered_gseq - hook.delivered_gseq, error)

    async def _entries_after(self, gseq: int) -> list[tuple[int, dict[str, Any]]]:
        stmt = (
            select(LogEntryRow.gseq, LogEntryRow.raw)
            .where(LogEntryRow.gseq > gseq)
            .order_by(LogEntryRow.gseq)
            .limit(self.batch_size)
        )
        async with self.store.transaction() as tx:
            return [(int(g), dict(raw)) for g, raw in await tx.session.execute(stmt)]

    async def _post(self, url: str, entry: dict[str, Any], gseq: int) -> str | None:
        """POST one delivery; None on a 2xx, else what went wrong (never the body sent)."""
        signed = self.signer.sign_event(
            self.kind, delivery_content(entry), delivery_tags(url, entry, gseq), int(self._clock())
        )
        headers = {
            "Content-Type": "application/json",
            "X-Taskhold-Delivery": str(entry["id"]),
            "X-Taskhold-Gseq": str(gseq),
        }
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False)
        http = self._http
        try:
            async with asyncio.timeout(self.timeout_s):
                request = http.build_request(
                    "POST", url, json=signed, headers=headers, timeout=self.timeout_s
                )
                response = await http.send(request, stream=True)
                await response.aclose()
        except TimeoutError:
            return f"no answer within {self.timeout_s} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        if not 200 <= response.status_code < 300:
            return f"HTTP {response.status_code}"
        return None

    async def _record(
        self, hook: _Claimed, delivered_gseq: int, error: str | None, *, more: bool
    ) -> None:
        now = int(self._clock())
        async with self.store.transaction() as tx:
            row = await tx.session.get(WebhookRow, hook.webhook_id)
            if row is None:  # removed meanwhile
                return
            if delivered_gseq > row.delivered_gseq:
                row.delivered_gseq, row.delivered_at = delivered_gseq, now
            if error is None:
                row.attempts, row.last_error = 0, None
                row.next_attempt_at = now if more else now + math.ceil(self.interval_s)
            else:
                row.attempts = hook.attempts + 1 if delivered_gseq == hook.delivered_gseq else 1
                row.last_error = error
                row.next_attempt_at = now + backoff_s(
                    row.attempts, base_s=1.0, max_s=self.max_backoff_s
                )
