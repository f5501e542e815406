"""The escrow engine's loop: funding watchers, timers, the guardian, releases and refunds.

Every step reads its work from the database and is idempotent, so the loop is also the crash
recovery: ``start()`` runs one reconciliation pass that finishes any half-done release or refund
and re-reads every open invoice from the node before the periodic loop begins.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from taskhold.lightning.base import InvoiceNotFound, InvoiceState, LightningError
from taskhold.tasks import Task, TaskState
from taskhold.tasks.model import FUNDED_STATES

from .context import EscrowContext, log
from .funding import observe_invoice
from .refund import refund
from .release import release
from .timers import TIMED_STATES, guard, run_timers

__all__ = ["EscrowEngine"]

WATCHED_STATES = (TaskState.PENDING_FUNDING, *FUNDED_STATES)


class EscrowEngine:
    """Runs in the ``serve`` process next to the API; one per deployment for now."""

    def __init__(self, ctx: EscrowContext) -> None:
        self.ctx = ctx
        self._wake = asyncio.Event()
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._runner: asyncio.Task[None] | None = None
        self._retry_at: dict[str, float] = {}

    async def start(self) -> None:
        await self.reconcile()
        self._runner = asyncio.create_task(self._loop(), name="taskhold-escrow")

    async def stop(self) -> None:
        tasks = [t for t in [self._runner, *self._watchers.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._watchers.clear()
        self._runner = None

    def notify(self) -> None:
        """Something changed (a request was accepted): run a pass soon instead of at the tick."""
        self._wake.set()

    def watch(self, task_id: str, payment_hash_hex: str) -> None:
        """Follow one hold invoice's state stream until it settles or is cancelled."""
        running = self._watchers.get(task_id)
        if running is not None and not running.done():
            return
        self._watchers[task_id] = asyncio.create_task(
            self._watch(task_id, bytes.fromhex(payment_hash_hex)), name=f"watch-{task_id[:8]}"
        )

    async def reconcile(self) -> None:
        """Read every open invoice from the node, then finish whatever is pending."""
        for task in await self._tasks_in(WATCHED_STATES):
            if task.payment_hash_hex is None:
                continue
            await self._guarded(task.task_id, self._refresh_invoice(task))
            if self._runner is not None or not task.is_terminal:
                self.watch(task.task_id, task.payment_hash_hex)
        await self.run_once()

    async def run_once(self) -> None:
        """One pass over everything that may be due."""
        ctx = self.ctx
        async with ctx.store.transaction() as tx:
            timed = await tx.task_ids_in(TIMED_STATES)
        for task_id in timed:
            await self._guarded(task_id, run_timers(ctx, task_id))
        try:
            height = await ctx.lightning.block_height()
        except LightningError as exc:
            log.warning("node_unavailable", error=type(exc).__name__)
            height = None
        if height is not None:
            async with ctx.store.transaction() as tx:
                funded = await tx.task_ids_in(list(FUNDED_STATES))
            for task_id in funded:
                await self._guarded(task_id, guard(ctx, task_id, height))
        async with ctx.store.transaction() as tx:
            refunds = await tx.task_ids_pending("refund")
            releases = await tx.task_ids_pending("release")
        for task_id in refunds:
            await self._guarded(task_id, refund(ctx, task_id))
        now = asyncio.get_running_loop().time()
        for task_id in releases:
            if self._retry_at.get(task_id, 0.0) > now:
                continue
            done = await self._guarded(task_id, release(ctx, task_id))
            if done is None or done.state is not TaskState.PAID:
                self._retry_at[task_id] = now + self._backoff(task_id)
            else:
                self._retry_at.pop(task_id, None)

    def _backoff(self, task_id: str) -> float:
        previous = self._retry_at.get(task_id)
        return 2.0 if previous is None else min(60.0, 2.0 * (1 + len(self._retry_at)))

    async def _loop(self) -> None:
        interval = self.ctx.settings.reconcile_interval_s
        loop = asyncio.get_running_loop()
        last_reconcile = loop.time()
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.ctx.settings.engine_tick_s)
            self._wake.clear()
            try:
                if loop.time() - last_reconcile >= interval:
                    last_reconcile = loop.time()
                    await self.reconcile()
                else:
                    await self.run_once()
            except Exception as exc:  # the loop must survive a bad pass
                log.error("engine_pass_failed", error=type(exc).__name__, detail=str(exc)[:200])

    async def _watch(self, task_id: str, payment_hash: bytes) -> None:
        delay = 0.5
        while True:
            try:
                async for status in self.ctx.lightning.subscribe_invoice(payment_hash):
                    delay = 0.5
                    await observe_invoice(self.ctx, task_id, status)
                    self.notify()
                    if status.state in (InvoiceState.SETTLED, InvoiceState.CANCELED):
                        return
            except InvoiceNotFound:
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # dropped stream: the periodic reconcile covers the gap
                log.warning("invoice_stream_dropped", task_id=task_id, error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)

    async def _refresh_invoice(self, task: Task) -> None:
        assert task.payment_hash_hex is not None
        try:
            status = await self.ctx.lightning.lookup_invoice(bytes.fromhex(task.payment_hash_hex))
        except InvoiceNotFound:
            log.error("invoice_missing_on_node", task_id=task.task_id)
            return
        await observe_invoice(self.ctx, task.task_id, status)

    async def _tasks_in(self, states: tuple[TaskState, ...]) -> list[Task]:
        async with self.ctx.store.transaction() as tx:
            ids = await tx.task_ids_in(states)
            tasks = [await tx.load_task(task_id) for task_id in ids]
        return [task for task in tasks if task is not None]

    async def _guarded(
        self, task_id: str, step: Awaitable[Task | None] | Awaitable[None]
    ) -> Task | None:
        """Run one task's step; a failure is logged and retried on a later pass."""
        try:
            result = await step
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error(
                "escrow_step_failed",
                task_id=task_id,
                error=type(exc).__name__,
                detail=str(exc)[:200],
            )
            return None
        return result if isinstance(result, Task) else None
