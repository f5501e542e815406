"""The escrow engine's loop: the invoice stream, timers, the guardian, refunds and payments.

Every step reads its work from the database and is idempotent, so the loop is also the crash
recovery: ``start()`` runs one reconciliation pass that finishes any half-done release or refund
and re-reads every open invoice from the node before the periodic loop begins.

A pass never waits for a payment. A payment the payee holds can take the whole payout timeout,
so releases and forfeited-deposit payouts run as background jobs, at most one per task or
deposit, at most ``max_concurrent_payouts`` at once; the timers, the guardian and refunds of
every other task go on meanwhile. While a job pays for a task, the pass leaves that task's
guard and refund alone (the payment may still land, and answering it with a cancel could pay
the money out twice). Across ``serve`` replicas on one PostgreSQL database the same keys are
leased (:mod:`.leases`): a replica skips a task another one pays or guards, and takes it over
once a dead replica's lease expires. The row locks keep each transition single; the payout row
keeps a payment single across a takeover.

All invoices are followed through one subscription of the node
(:meth:`~taskhold.lightning.base.LightningBackend.subscribe_invoices`), dispatched here by
payment hash, so the connections to the node do not grow with the number of open invoices.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial

from taskhold.lightning.base import InvoiceNotFound, InvoiceState, InvoiceStatus, LightningError
from taskhold.settings import Settings
from taskhold.tasks import Task, TaskState
from taskhold.tasks.model import FUNDED_STATES, Deposit, DepositState
from taskhold.waits import woken

from .asks import OperatorAsks
from .context import EscrowContext, log
from .deposits import (
    guard_deposits,
    observe_deposit,
    pay_out_deposit,
    refresh_deposits,
    return_deposit,
)
from .leases import Leases
from .liquidity_hook import LiquidityHook
from .refund import refund
from .renewal import observe_hold, renew, retire
from .series import advance_milestone
from .split import pay_out
from .timers import guard, run_timers

__all__ = ["EscrowEngine", "hold_margins"]

WATCHED_STATES = (TaskState.PENDING_FUNDING, *FUNDED_STATES)
_FINAL_INVOICE_STATES = (InvoiceState.SETTLED, InvoiceState.CANCELED)

Observer = Callable[[EscrowContext, str, InvoiceStatus], Awaitable[None]]


class EscrowEngine:
    """Runs in each ``serve`` process next to the API; replicas share work by leases."""

    def __init__(self, ctx: EscrowContext) -> None:
        self.ctx = ctx
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._observers: dict[str, tuple[str, Observer]] = {}
        """Payment hash (hex) → the task it funds and what to tell when the node reports it."""
        self._payments: dict[str, asyncio.Task[None]] = {}
        """Payment jobs by key: a task id (release) or ``task_id/deposit hash`` (payout)."""
        self._busy: set[str] = set()
        """Keys a payment job or a guard/refund step is working on right now."""
        self._slots = asyncio.Semaphore(ctx.settings.max_concurrent_payouts)
        self._retry_at: dict[str, float] = {}
        self.liquidity_hook = LiquidityHook()
        """Runs the operator's command when a node runs low (``liquidity_hook``)."""
        self.leases = Leases(ctx.store, ctx.settings.engine_lease_s, ctx.clock)
        self.asks = OperatorAsks(ctx.store)
        """The operator's switches: asked passes, the chain height (``taskhold admin``)."""

    async def start(self) -> None:
        self.asks.answered = await self.asks.asked()
        await self.reconcile()
        self._runner = asyncio.create_task(self._loop(), name="taskhold-escrow")

    async def stop(self) -> None:
        self.liquidity_hook.cancel()
        jobs = [self._runner, self._follower, *self._payments.values()]
        tasks = [t for t in jobs if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            # asyncio.wait, not awaiting each task: a cancel of the caller (a shutdown's time
            # limit) must reach the caller, not be taken for one of the jobs' own.
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled():
                task.exception()  # seen: a job that failed as it was cancelled is not news
        self._payments.clear()
        self._observers.clear()
        self._runner = self._follower = None

    async def drain(self) -> None:
        """Wait until no payment job runs (tests, benches: a pass, then the payments it began)."""
        while self._payments:
            await asyncio.gather(*self._payments.values(), return_exceptions=True)

    def notify(self) -> None:
        """Work owed changed (a request made a payment or a timer due): run a pass soon instead
        of at the tick."""
        self._wake.set()

    def release_now(self, task: Task) -> bool:
        """Start the payment job of a release a request just made owed (an approval), instead
        of leaving it to the pass the request would wake; True if a job for the task runs now.

        Only while the engine runs (``start()``): a stopped engine starts no job, as it runs no
        pass. Called after the request's commit, so the job reads the approval. The job is the
        pass's own (:meth:`_pay`): one per task at a time, so a pass or a retried approval that
        comes while it runs starts none, and across replicas the job's lease keeps it single."""
        if self._runner is None or not task.release_pending:
            return False
        key = task.task_id
        self._pay(key, key, partial(pay_out, self.ctx, key), _paid)
        running = self._payments.get(key)
        return running is not None and not running.done()

    def watch(self, task_id: str, payment_hash_hex: str) -> None:
        """Follow one of a task's hold invoices (any round) until it settles or is cancelled."""
        self._observe(task_id, payment_hash_hex, observe_hold)

    def watch_deposits(self, task: Task) -> None:
        """Follow every open deposit invoice of the task until it is held, settled or gone."""
        for deposit in task.deposits:
            if deposit.state is DepositState.OPEN:
                self._observe(task.task_id, deposit.payment_hash_hex, observe_deposit)

    def _observe(self, task_id: str, payment_hash_hex: str, observe: Observer) -> None:
        self._observers[payment_hash_hex] = (task_id, observe)
        if self._follower is None or self._follower.done():
            self._follower = asyncio.create_task(self._follow(), name="taskhold-invoices")

    async def reconcile(self) -> None:
        """Read every open invoice from the node, then finish whatever is pending."""
        for task in await self._tasks_in(WATCHED_STATES):
            if task.payment_hash_hex is None:
                continue
            await self._guarded(task.task_id, self._refresh_invoice(task))
            if self._runner is not None or not task.is_terminal:
                self.watch(task.task_id, task.payment_hash_hex)
            if task.renewal_payment_hash_hex is not None:
                await self._guarded(
                    task.task_id, self._refresh_invoice(task, task.renewal_payment_hash_hex)
                )
                self.watch(task.task_id, task.renewal_payment_hash_hex)
        async with self.ctx.store.transaction() as tx:
            with_deposits = await tx.task_ids_with_deposits()
            deposit_tasks = [await tx.load_task(task_id) for task_id in with_deposits]
        for with_deposit in deposit_tasks:
            if with_deposit is not None:
                await self._guarded(with_deposit.task_id, refresh_deposits(self.ctx, with_deposit))
                self.watch_deposits(with_deposit)
        await self.run_once()

    async def run_once(self) -> None:
        """One pass over everything that may be due. Payments are started here, never awaited:
        they run as background jobs (:meth:`drain` waits for them).

        Its cost grows with the work due, not with the open tasks: every task it looks at is
        selected by an indexed due time (``taskhold.tasks.due``): a timer that ran out, a hold
        within its margin of expiry, a deposit hold within the guard margin, or a Lightning
        action owed (``pending_action``, ``deposit_action``). Its duration goes to
        ``ctx.tick_durations`` (the metrics' engine tick histogram)."""
        started = time.perf_counter()
        try:
            await self._pass()
        finally:
            self.ctx.tick_durations.observe(time.perf_counter() - started)

    async def _pass(self) -> None:
        ctx = self.ctx
        async with ctx.store.transaction() as tx:
            timed = await tx.task_ids_timer_due(ctx.now())
        for task_id in timed:
            await self._guarded(task_id, run_timers(ctx, task_id))
        try:
            height = await ctx.lightning.block_height()
        except LightningError as exc:
            log.warning("node_unavailable", error=type(exc).__name__)
            height = None
        if height is not None:
            await self.asks.note_height(height, ctx.now())
            async with ctx.store.transaction() as tx:
                funded = await tx.task_ids_hold_due(height, hold_margins(ctx.settings))
                paying = set(await tx.task_ids_pending("release"))
            for task_id in funded:
                step = partial(guard, ctx, task_id, height)
                await self._unless_paying([task_id], task_id, step, lease=task_id in paying)
            for task_id in funded:
                await self._renew(task_id, height, lease=task_id in paying)
        async with ctx.store.transaction() as tx:
            refunds = await tx.task_ids_pending("refund")
            releases = await tx.task_ids_pending("release")
            with_deposits = await tx.task_ids_deposits_due(height, ctx.settings.guard_blocks)
            retiring = await tx.task_ids_pending("rounds")
        for task_id in [*retiring, *refunds, *releases]:
            await self._guarded(task_id, retire(ctx, task_id))
        for task_id in refunds:
            await self._unless_paying([task_id], task_id, partial(refund, ctx, task_id))
        for task_id in with_deposits:
            await self._guarded(task_id, self._deposit_steps(task_id, height))
        for task_id in releases:
            self._pay(task_id, task_id, partial(pay_out, ctx, task_id), _paid)
        await self._advance_series()
        await self.liquidity_hook.check(ctx, asyncio.get_running_loop().time())

    async def reconcile_if_asked(self) -> bool:
        """Run :meth:`reconcile` if the operator asked for a pass (``taskhold admin
        reconcile``) since this engine last looked, and mark the ask done; True if it ran.
        Asks made before ``start()`` count as answered by its own reconcile. Every replica
        runs its own pass for an ask: passes are idempotent and leases keep a payment single."""
        count = await self.asks.new_ask()
        if count is None:
            return False
        await self.reconcile()
        await self.asks.answered_with_pass(count, self.ctx.now())
        log.info("reconciled_on_request", ask=count)
        return True

    async def _advance_series(self) -> None:
        """Open, cancel or staff the milestones their series owes a step (``series``)."""
        async with self.ctx.store.transaction() as tx:
            owed = await tx.task_ids_pending("series")
        for task_id in owed:
            done = await self._guarded(task_id, advance_milestone(self.ctx, task_id))
            if done is not None and done.state is TaskState.PENDING_FUNDING:
                assert done.payment_hash_hex is not None
                self.watch(task_id, done.payment_hash_hex)

    async def _renew(self, task_id: str, height: int, *, lease: bool) -> None:
        """Open the task's next round if it is due, and follow the renewal's invoice."""
        step = partial(renew, self.ctx, task_id, height)
        task = await self._unless_paying([task_id], task_id, step, lease=lease)
        if task is not None and task.renewal_payment_hash_hex is not None:
            self.watch(task_id, task.renewal_payment_hash_hex)

    async def _deposit_steps(self, task_id: str, height: int | None) -> None:
        """Guard and return one task's deposits, and start the payouts of forfeited ones.

        The guard looks at all of the task's deposits at once, so while one of them is being
        paid out it waits for a pass between two payment attempts."""
        async with self.ctx.store.transaction() as tx:
            task = await tx.load_task(task_id)
        if task is None:
            return
        keys = [_deposit_key(task_id, deposit) for deposit in task.deposits]
        paying = any(deposit.pending_action == "payout" for deposit in task.deposits)
        if height is not None:
            guarded = await self._unless_paying(
                keys, task_id, partial(self._guard_deposits, task, height), lease=paying
            )
            task = guarded or task
        for deposit in task.deposits:
            key = _deposit_key(task_id, deposit)
            if deposit.pending_action == "return":
                await self._unless_paying(
                    [key], task_id, partial(return_deposit, self.ctx, task_id, deposit)
                )
            elif deposit.pending_action == "payout":
                self._pay(
                    key,
                    task_id,
                    partial(pay_out_deposit, self.ctx, task_id, deposit),
                    _settled,
                )

    async def _guard_deposits(self, task: Task, height: int) -> Task | None:
        await guard_deposits(self.ctx, task, height)
        async with self.ctx.store.transaction() as tx:
            return await tx.load_task(task.task_id)

    def _pay(
        self,
        key: str,
        task_id: str,
        step: Callable[[], Awaitable[Task | None]],
        paid: Callable[[Task | None], bool],
    ) -> None:
        """Start the payment job for ``key`` unless one runs or its retry is not due yet."""
        running = self._payments.get(key)
        if running is not None and not running.done():
            return
        if self._retry_at.get(key, 0.0) > asyncio.get_running_loop().time():
            return
        self._payments[key] = asyncio.create_task(
            self._payment_job(key, task_id, step, paid), name=f"taskhold-pay-{key[:16]}"
        )

    async def _payment_job(
        self,
        key: str,
        task_id: str,
        step: Callable[[], Awaitable[Task | None]],
        paid: Callable[[Task | None], bool],
    ) -> None:
        elsewhere = False
        try:
            async with self._slots:
                if key in self._busy:
                    return  # a guard or refund step decides this key now; the next pass retries
                self._busy.add(key)
                try:
                    async with self.leases.holding([key]) as held:
                        if not held:
                            elsewhere = True
                            return
                        done = await self._guarded(task_id, step())
                finally:
                    self._busy.discard(key)
            if paid(done):
                self._retry_at.pop(key, None)
            else:
                self._retry_at[key] = asyncio.get_running_loop().time() + self._backoff(key)
        finally:
            if self._payments.get(key) is asyncio.current_task():
                del self._payments[key]
            if elsewhere:
                # Another replica pays it. Ask again once its lease could have run out (it may
                # die), not at once: waking a pass now would ask the database in a loop.
                log.debug("payment_leased_elsewhere", task_id=task_id)
                wait = self.ctx.settings.engine_lease_s / 3
                self._retry_at[key] = asyncio.get_running_loop().time() + wait
            else:
                self.notify()

    async def _unless_paying(
        self,
        keys: Iterable[str],
        task_id: str,
        step: Callable[[], Awaitable[Task | None]],
        *,
        lease: bool = True,
    ) -> Task | None:
        """Run a guard or refund step unless a payment job works on one of ``keys``: that
        payment may still land, and its job settles or gives up on its own.

        ``lease``: take the keys' leases too (other replicas' jobs). A guard passes False while
        no payment is owed on the keys: no replica can be paying them then, and a lease for
        every funded task at every tick would write to the database for nothing."""
        claimed = list(keys)
        if any(key in self._busy for key in claimed):
            log.debug("step_deferred_for_payment", task_id=task_id)
            return None
        self._busy.update(claimed)
        try:
            async with self.leases.holding(claimed if lease else []) as held:
                if not held:
                    log.debug("step_deferred_for_replica", task_id=task_id)
                    return None
                return await self._guarded(task_id, step())
        finally:
            self._busy.difference_update(claimed)

    def _backoff(self, task_id: str) -> float:
        previous = self._retry_at.get(task_id)
        return 2.0 if previous is None else min(60.0, 2.0 * (1 + len(self._retry_at)))

    async def _loop(self) -> None:
        interval = self.ctx.settings.reconcile_interval_s
        loop = asyncio.get_running_loop()
        last_reconcile = loop.time()
        while True:
            await woken(self._wake, self.ctx.settings.engine_tick_s)
            self._wake.clear()
            try:
                if await self.reconcile_if_asked():
                    last_reconcile = loop.time()
                elif loop.time() - last_reconcile >= interval:
                    last_reconcile = loop.time()
                    await self.reconcile()
                else:
                    await self.run_once()
            except Exception as exc:  # the loop must survive a bad pass
                log.error("engine_pass_failed", error=type(exc).__name__, detail=str(exc)[:200])

    async def _follow(self) -> None:
        """Read the node's invoice subscription for as long as the engine runs."""
        delay = 0.5
        while True:
            try:
                async for status in self.ctx.lightning.subscribe_invoices():
                    delay = 0.5
                    await self._dispatch(status)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # dropped stream: the periodic reconcile covers the gap
                log.warning("invoice_stream_dropped", error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)

    async def _dispatch(self, status: InvoiceStatus) -> None:
        """Hand one invoice report to the task it funds; reports of other invoices are not ours."""
        payment_hash_hex = status.payment_hash.hex()
        watched = self._observers.get(payment_hash_hex)
        if watched is None:
            return
        task_id, observe = watched
        await self._guarded(task_id, observe(self.ctx, task_id, status))
        self.notify()
        if status.state in _FINAL_INVOICE_STATES:
            self._observers.pop(payment_hash_hex, None)

    async def _refresh_invoice(self, task: Task, payment_hash_hex: str | None = None) -> None:
        """Read one of the task's invoices (its current round's by default) from the node."""
        payment_hash_hex = payment_hash_hex or task.payment_hash_hex
        assert payment_hash_hex is not None
        try:
            status = await self.ctx.lightning.lookup_invoice(bytes.fromhex(payment_hash_hex))
        except InvoiceNotFound:
            log.error("invoice_missing_on_node", task_id=task.task_id)
            return
        await observe_hold(self.ctx, task.task_id, status)

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


def hold_margins(settings: Settings) -> dict[str, int]:
    """Blocks before a hold's expiry at which each ``hold_margin`` class is looked at: the
    guardian's margin, the release reserve, and the renewal lead (never below the reserve, as
    a renewing task may also be released)."""
    return {
        "guard": settings.guard_blocks,
        "reserve": settings.hold_reserve_blocks,
        "renewal": max(settings.renewal_lead_blocks, settings.hold_reserve_blocks),
    }


def _settled(done: Task | None) -> bool:
    return done is not None


def _paid(done: Task | None) -> bool:
    return done is not None and done.state is TaskState.PAID


def _deposit_key(task_id: str, deposit: Deposit) -> str:
    return f"{task_id}/{deposit.payment_hash_hex}"
