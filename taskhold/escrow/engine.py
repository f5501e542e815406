"""The escrow engine's loop: funding watchers, timers, the guardian, releases and refunds.

Every step reads its work from the database and is idempotent, so the loop is also the crash
recovery: ``start()`` runs one reconciliation pass that finishes any half-done release or refund
and re-reads every open invoice from the node before the periodic loop begins.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from taskhold.lightning.base import InvoiceNotFound, InvoiceState, InvoiceStatus, LightningError
from taskhold.tasks import Task, TaskState
from taskhold.tasks.model import FUNDED_STATES, DepositState

from .context import EscrowContext, log
from .deposits import (
    guard_deposits,
    observe_deposit,
    pay_out_deposit,
    refresh_deposits,
    return_deposit,
)
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
        """Follow one task's hold invoice until it settles or is cancelled."""
        self._follow(task_id, task_id, payment_hash_hex, observe_invoice)

    def watch_deposits(self, task: Task) -> None:
        """Follow every open deposit invoice of the task until it is held, settled or gone."""
        for deposit in task.deposits:
            if deposit.state is DepositState.OPEN:
                key = f"{task.task_id}/{deposit.payment_hash_hex}"
                self._follow(key, task.task_id, deposit.payment_hash_hex, observe_deposit)

    def _follow(
        self,
        key: str,
        task_id: str,
        payment_hash_hex: str,
        observe: Callable[[EscrowContext, str, InvoiceStatus], Awaitable[None]],
    ) -> None:
        running = self._watchers.get(key)
        if running is not None and not running.done():
            return
        self._watchers[key] = asyncio.create_task(
            self._watch(task_id, bytes.fromhex(payment_hash_hex), observe),
            name=f"watch-{key[:8]}",
        )

    async def reconcile(self) -> None:
        """Read every open invoice from the node, then finish whatever is pending."""
        for task in await self._tasks_in(WATCHED_STATES):
            if task.payment_hash_hex is None:
                continue
            await self._guarded(task.task_id, self._refresh_invoice(task))
            if self._runner is not None or not task.is_terminal:
                self.watch(task.task_id, task.payment_hash_hex)
        async with self.ctx.store.transaction() as tx:
            with_deposits = await tx.task_ids_with_deposits()
            deposit_tasks = [await tx.load_task(task_id) for task_id in with_deposits]
        for with_deposit in deposit_tasks:
            if with_deposit is not None:
                await self._guarded(with_deposit.task_id, refresh_deposits(self.ctx, with_deposit))
                self.watch_deposits(with_deposit)
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
        async with ctx.store.transaction() as tx:
            with_deposits = await tx.task_ids_with_deposits()
        for task_id in with_deposits:
            await self._guarded(task_id, self._deposit_steps(task_id, height))
        now = asyncio.get_running_loop().time()
        for task_id in releases:
            if self._retry_at.get(task_id, 0.0) > now:
                continue
            done = await self._guarded(task_id, release(ctx, task_id))
            if done is None or done.state is not TaskState.PAID:
                self._retry_at[task_id] = now + self._backoff(task_id)
            else:
                self._retry_at.pop(task_id, None)

    async def _deposit_steps(self, task_id: str, height: int | None) -> None:
        """Guard, return and pay out one task's deposits; payouts back off like releases."""
        async with self.ctx.store.transaction() as tx:
            task = await tx.load_task(task_id)
        if task is None:
            return
        if height is not None:
            await guard_deposits(self.ctx, task, height)
            async with self.ctx.store.transaction() as tx:
                guarded = await tx.load_task(task_id)
            assert guarded is not None
            task = guarded
        now = asyncio.get_running_loop().time()
        for deposit in task.deposits:
            if deposit.pending_action == "return":
                await return_deposit(self.ctx, task_id, deposit)
            elif deposit.pending_action == "payout":
                key = f"{task_id}/{deposit.payment_hash_hex}"
                if self._retry_at.get(key, 0.0) > now:
                    continue
                done = await pay_out_deposit(self.ctx, task_id, deposit)
                if done is None:
                    self._retry_at[key] = now + self._backoff(key)
                else:
                    self._retry_at.pop(key, None)

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

    async def _watch(
        self,
        task_id: str,
        payment_hash: bytes,
        observe: Callable[[EscrowContext, str, InvoiceStatus], Awaitable[None]],
    ) -> None:
        delay = 0.5
        while True:
            try:
                async for status in self.ctx.lightning.subscribe_invoice(payment_hash):
                    delay = 0.5
                    await observe(self.ctx, task_id, status)
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
