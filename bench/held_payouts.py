"""Engine pass latency with N payouts held in flight by their payees, next to the same engine
with none, in the same run.

Two taskhold stacks on the Lightning simulator (in process, SQLite), each with the same number
of funded tasks for the guardian and timers to look at. In one, N further tasks are approved
for workers whose nodes hold the payout (a hold invoice never settled), with a payout timeout
of an hour. Passes of the two engines take turns; the ratio of their median latencies is what
a held payout costs every other task. (An engine that awaited each payment in its pass would
take N x ``payout_timeout_s`` per pass here.)

    python bench/held_payouts.py [--held 20] [--funded 20] [--passes 15]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from benchkit import fund_one, on_simulator

from taskhold.client import TaskholdClient
from taskhold.lightning.base import PaymentStatus
from taskhold.lightning.simworld import SimWorld
from taskhold.nostr import NostrKeys
from taskhold.services import Services
from taskhold.settings import Settings

AMOUNT_MSAT = 150_000_000
DAY_S = 86_400


class Bench:
    def __init__(self, services: Services, world: SimWorld, http: httpx.AsyncClient) -> None:
        self.services, self.world, self.http = services, world, http

    @classmethod
    async def open(cls, name: str) -> Bench:
        directory = Path(tempfile.mkdtemp(prefix=f"taskhold-bench-held-{name}-"))
        settings = Settings(
            data_dir=directory,
            database_url=f"sqlite+aiosqlite:///{directory / 'taskhold.sqlite3'}",
            payout_timeout_s=3600,
            max_concurrent_payouts=64,
            lnd_max_connections=65,
            max_open_invoices_per_key=1000,
            rate_limit_pubkey_per_s=0,
            rate_limit_ip_per_s=0,
        )
        services, world, http = await on_simulator(settings)
        return cls(services, world, http)

    def client(self) -> TaskholdClient:
        return TaskholdClient("http://taskhold.bench", NostrKeys.generate(), http=self.http)

    async def funded(self, employer: TaskholdClient) -> str:
        task = await fund_one(self.services, self.world, employer, AMOUNT_MSAT)
        return str(task["task_id"])

    async def held_payout(self, employer: TaskholdClient) -> bytes:
        """A task approved for a worker whose node holds the payout; its payout hash."""
        task_id = await self.funded(employer)
        worker = self.client()
        await worker.claim(task_id)
        task = await employer.get_task(task_id)
        invoice = await self.world.worker.create_hold_invoice(
            hashlib.sha256(os.urandom(32)).digest(),
            task["payout_msat"],
            memo="held payout",
            expiry_seconds=DAY_S,
            cltv_expiry_delta=80,
        )
        await worker.submit_proof(task_id, {"url": "https://example.org"}, invoice.payment_request)
        await employer.approve(task_id)
        return invoice.payment_hash

    async def pass_seconds(self) -> float:
        started = time.perf_counter()
        await self.services.engine.run_once()
        return time.perf_counter() - started

    async def close(self) -> None:
        await self.http.aclose()
        await self.services.close()


async def run(held: int, funded: int, passes: int) -> None:
    quiet, loaded = await Bench.open("none"), await Bench.open("held")
    try:
        for bench in (quiet, loaded):
            employer = bench.client()
            for _ in range(funded):
                await bench.funded(employer)
        employer = loaded.client()
        hashes = [await loaded.held_payout(employer) for _ in range(held)]
        await loaded.services.engine.run_once()  # the payouts go out and stay held
        async with asyncio.timeout(60):
            while True:
                statuses = [(await loaded.world.escrow.lookup_payment(h)).status for h in hashes]
                if statuses.count(PaymentStatus.IN_FLIGHT) == held:
                    break
                await asyncio.sleep(0.05)

        times: dict[str, list[float]] = {"none": [], "held": []}
        for _ in range(passes):  # take turns, so the machine's other load weighs on both
            times["none"].append(await quiet.pass_seconds())
            times["held"].append(await loaded.pass_seconds())
        still = [(await loaded.world.escrow.lookup_payment(h)).status for h in hashes]
        assert still.count(PaymentStatus.IN_FLIGHT) == held, "the payouts must stay held"
    finally:
        await quiet.close()
        await loaded.close()

    none_ms = statistics.median(times["none"]) * 1000
    held_ms = statistics.median(times["held"]) * 1000
    print(f"{funded} funded tasks each; {held} payouts held in flight during every pass")
    print(f"median pass, no held payouts: {none_ms:8.1f} ms")
    print(f"median pass, {held:3d} held payouts: {held_ms:8.1f} ms")
    print(f"ratio held / none: {held_ms / none_ms:.2f}")
    print(f"(awaiting each payment in the pass: {held} x 3600 s per pass)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, default=20)
    parser.add_argument("--funded", type=int, default=20)
    parser.add_argument("--passes", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(run(args.held, args.funded, args.passes))


if __name__ == "__main__":
    main()
