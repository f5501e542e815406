"""Spam cost: what free deposit requests and refused proofs cost the operator.

Measured in one run, in process (SQLite, the Lightning simulator): the latency of a claim on a
task carrying as many open deposits as strangers may ask for (``--deposits``, capped by
``deposit_max_open_per_task``) next to a claim on a task with none; the database bytes one
deposit request, one refused proof and one idempotency record add.

    python bench/spam.py [--deposits 600] [--cap 10] [--repeat 3]

``--cap`` is the setting; pass a cap at least ``--deposits`` to see the cost without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


async def run(deposits: int, cap: int, repeat: int) -> dict[str, Any]:
    import httpx
    from sqlalchemy import select

    from taskhold.api.application import create_api
    from taskhold.client import TaskholdAPIError, TaskholdClient
    from taskhold.lightning.simworld import SimWorld
    from taskhold.nostr import NostrKeys
    from taskhold.services import build_services
    from taskhold.settings import Settings
    from taskhold.store.models import Base, IdempotencyRow

    directory = Path(tempfile.mkdtemp(prefix="taskhold-bench-spam-"))
    settings = Settings(
        data_dir=directory,
        database_url=f"sqlite+aiosqlite:///{directory / 'taskhold.sqlite3'}",
        pow_max_bits=8,
        reputation_max_staleness_s=0,
        deposit_max_open_per_task=cap,
        rate_limit_ip_per_s=0,
        rate_limit_pubkey_per_s=0,
        rate_limit_read_ip_per_s=0,
    )
    world = SimWorld.create(hold_expiry_delta=settings.hold_expiry_delta)
    services = await build_services(settings, sim=world)
    transport = httpx.ASGITransport(app=create_api(services, run_engine=False))
    http = httpx.AsyncClient(transport=transport, base_url="http://taskhold.bench")

    def client(*, mines: bool = True) -> TaskholdClient:
        made = TaskholdClient("http://taskhold.bench", NostrKeys.generate(), http=http)
        made._auto_pow = mines
        return made

    async def stored_bytes() -> int:
        total = 0
        async with services.store.transaction() as tx:
            for table in Base.metadata.sorted_tables:
                if table.name != "audit_log":
                    rows = (await tx.session.execute(select(table))).mappings()
                    total += sum(len(json.dumps(dict(row), default=str)) for row in rows)
        return total

    async def funded_task() -> dict[str, Any]:
        employer = client()
        task = await employer.create_task(
            "spam", "benchmark", 150_000_000, int(time.time()) + 3600,
            acceptance={"required_fields": ["url"], "url_fields": ["url"]},
        )  # fmt: skip
        funding = (await employer.request_funding(task["task_id"]))["funding"]
        await world.employer.send_payment(funding["payment_request"])
        await services.engine.reconcile()
        return task

    async def timed_claim(task: dict[str, Any]) -> float:
        worker = client()
        started = time.perf_counter()
        await worker.claim(task["task_id"])
        return time.perf_counter() - started

    try:
        plain, spammed, refused_at, per_deposit = [], [], 0, []
        for _ in range(repeat):
            plain.append(await timed_claim(await funded_task()))
            task = await funded_task()
            before = await stored_bytes()
            made = 0
            for _ in range(deposits):
                try:
                    await client(mines=False).lock_deposit(task["task_id"])
                    made += 1
                except TaskholdAPIError as exc:
                    refused_at = refused_at or made
                    assert exc.code == "too_many_deposits", exc
            if made:
                per_deposit.append((await stored_bytes() - before) / made)
            spammed.append(await timed_claim(task))

        task = await funded_task()
        worker = client()
        await worker.claim(task["task_id"])
        invoice = await world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
        before = await stored_bytes()
        with contextlib.suppress(TaskholdAPIError):  # refused: that is the point
            await worker.submit_proof(task["task_id"], {"url": "no", "x": "y" * 3_500}, invoice)
        refused_proof = await stored_bytes() - before
        async with services.store.transaction() as tx:
            records = list((await tx.session.execute(select(IdempotencyRow))).scalars())
        record_sizes = [len(json.dumps(row.response)) for row in records]
    finally:
        await http.aclose()
        await services.close()
    return {
        "deposits_asked": deposits,
        "deposits_cap": cap,
        "deposits_taken": refused_at or deposits,
        "claim_s_without_deposits": statistics.median(plain),
        "claim_s_with_deposits": statistics.median(spammed),
        "ratio": statistics.median(spammed) / statistics.median(plain),
        "bytes_per_deposit_request": statistics.median(per_deposit) if per_deposit else None,
        "bytes_per_refused_proof": refused_proof,
        "idempotency_record_bytes_max": max(record_sizes),
        "idempotency_record_bytes_median": statistics.median(record_sizes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deposits", type=int, default=600)
    parser.add_argument("--cap", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.deposits, args.cap, args.repeat)), indent=2))


if __name__ == "__main__":
    main()
