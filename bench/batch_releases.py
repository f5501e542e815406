"""Releases per second with 1, 10 and 100 releases due at once, against the single-task path,
in the same run.

Each figure comes from a fresh taskhold stack on the Lightning simulator (in process, SQLite):
N tasks are funded, claimed, submitted with the worker's payout invoice and approved (not
timed); then one engine pass starts their payouts and the bench waits (``drain``, more passes
if needed) until all N are PAID. That time gives releases per second. Two baselines:

- the single-task path: one task due, released by one pass (N=1);
- N tasks released one after another (``release`` awaited per task, as an engine that paid in
  its pass would).

The simulator pays instantly, which hides what concurrency buys on a real network, so the
bench runs twice: with no payment latency, and with ``--latency-ms`` (``SimNetwork.
payment_latency_s``: each payment waits that long before its HTLC goes out). The ratios are
printed; absolute figures depend on the machine.

Where a release's own time goes (cProfile on this bench): its database round trips, about 55
statements in 11 transactions on SQLite, each crash-safe step its own commit; decoding the
payout invoice was a quarter of it until the decode was kept. Releases finishing together
share one transaction for their completion (``escrow/grouped.py``), and a journal record
takes the entries queued before it along. With the latency on, the batch gains over one by one
as long as ``--parallel`` payments can be in flight; CPU per release then bounds it.

    python bench/batch_releases.py [--sizes 1 10 100] [--latency-ms 50] [--parallel 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from benchkit import on_simulator

from taskhold.client import TaskholdClient
from taskhold.escrow.release import release
from taskhold.lightning.simworld import SimWorld
from taskhold.logs import configure_logging
from taskhold.nostr import NostrKeys
from taskhold.services import Services
from taskhold.settings import Settings
from taskhold.tasks import TaskState

AMOUNT_MSAT = 150_000_000
DAY_S = 86_400


class Stack:
    def __init__(self, services: Services, world: SimWorld, http: httpx.AsyncClient) -> None:
        self.services, self.world, self.http = services, world, http

    @classmethod
    async def open(cls, parallel: int, latency_s: float) -> Stack:
        directory = Path(tempfile.mkdtemp(prefix="taskhold-bench-batch-"))
        settings = Settings(
            data_dir=directory,
            database_url=f"sqlite+aiosqlite:///{directory / 'taskhold.sqlite3'}",
            max_concurrent_payouts=parallel,
            lnd_max_connections=parallel + 1,
            max_open_invoices_per_key=1000,
            rate_limit_pubkey_per_s=0,
            rate_limit_ip_per_s=0,
        )
        services, world, http = await on_simulator(settings)
        stack = cls(services, world, http)
        stack.world.network.payment_latency_s = latency_s
        return stack

    def client(self) -> TaskholdClient:
        return TaskholdClient("http://taskhold.bench", NostrKeys.generate(), http=self.http)

    async def verified(self, n: int) -> list[str]:
        """N tasks approved with the worker's payout invoice: their releases are due."""
        employer, worker = self.client(), self.client()
        task_ids = []
        for _ in range(n):
            task = await employer.create_task(
                "bench", "", AMOUNT_MSAT, int(time.time()) + DAY_S,
                acceptance={"required_fields": ["url"]},
            )  # fmt: skip
            funding = (await employer.request_funding(task["task_id"]))["funding"]
            await self.world.employer.send_payment(funding["payment_request"])
            task_ids.append(str(task["task_id"]))
        latency, self.world.network.payment_latency_s = self.world.network.payment_latency_s, 0
        await self.services.engine.reconcile()  # the holds are seen: every task FUNDED
        for task_id in task_ids:
            task = await worker.claim(task_id)
            payout = await self.world.worker.create_invoice(
                task["payout_msat"], expiry_seconds=DAY_S
            )
            await worker.submit_proof(task_id, {"url": "https://example.org"}, payout)
            await employer.approve(task_id)
        self.world.network.payment_latency_s = latency
        states = await self.states(task_ids)
        assert states == {TaskState.VERIFIED}, states
        return task_ids

    async def states(self, task_ids: list[str]) -> set[TaskState]:
        async with self.services.store.transaction() as tx:
            tasks = [await tx.load_task(task_id) for task_id in task_ids]
        return {task.state for task in tasks if task is not None}

    async def batch(self, task_ids: list[str]) -> float:
        """Seconds until every due task is PAID: engine passes, each followed by a drain."""
        engine = self.services.engine
        started = time.perf_counter()
        while True:
            await engine.run_once()
            await engine.drain()
            if await self.states(task_ids) == {TaskState.PAID}:
                return time.perf_counter() - started

    async def one_by_one(self, task_ids: list[str]) -> float:
        started = time.perf_counter()
        for task_id in task_ids:
            await release(self.services.engine.ctx, task_id)
        elapsed = time.perf_counter() - started
        assert await self.states(task_ids) == {TaskState.PAID}
        return elapsed

    def check_paid_once(self) -> None:
        hashes = [p.payment_hash for p in self.world.network.settled_payments]
        assert len(hashes) == len(set(hashes)), "a payment hash was paid twice"

    async def close(self) -> None:
        await self.http.aclose()
        await self.services.close()


async def measure(n: int, parallel: int, latency_s: float, *, batched: bool) -> float:
    """Releases per second for N due tasks on a fresh stack."""
    stack = await Stack.open(parallel, latency_s)
    try:
        task_ids = await stack.verified(n)
        seconds = await (stack.batch(task_ids) if batched else stack.one_by_one(task_ids))
        stack.check_paid_once()
    finally:
        await stack.close()
    return n / seconds


async def run(sizes: list[int], latency_ms: float, parallel: int, repeat: int) -> None:
    print(f"max_concurrent_payouts={parallel}; releases/s, and the ratio to the single-task path")
    print(f"(one due task released by one pass, median of {repeat} runs)")
    for latency_s in (0.0, latency_ms / 1000):
        single = statistics.median(
            [await measure(1, parallel, latency_s, batched=True) for _ in range(repeat)]
        )
        print(f"\npayment latency {latency_s * 1000:.0f} ms: single-task path {single:.1f}/s")
        print(f"{'N due':>6} {'batch/s':>9} {'ratio':>7} {'one-by-one/s':>13} {'ratio':>7}")
        for n in sizes:
            batch = await measure(n, parallel, latency_s, batched=True)
            serial = await measure(n, parallel, latency_s, batched=False)
            print(
                f"{n:6d} {batch:9.1f} {batch / single:7.2f} {serial:13.1f} {serial / single:7.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the single-task path")
    args = parser.parse_args()
    configure_logging("WARNING")  # one info line per transition would drown the figures
    asyncio.run(run(args.sizes, args.latency_ms, args.parallel, args.repeat))


if __name__ == "__main__":
    main()
