"""Audit throughput: events per second for ``taskhold audit``'s verification of a real log (NIP-01
id, BIP-340 signature, author, tags, the embedded participant request, both chains and the
preimages), next to bare coincurve Schnorr verification of the same events in the same run.

The log is real: tasks run through taskhold on the Lightning simulator (in process, SQLite),
paid or refunded, and the signed entries are read back from ``log_entries``. Building it is not
timed. ``--save``/``--load`` keep a log in a JSON file to measure it again.

    python bench/audit_throughput.py [--entries 2000] [--repeat 9] [--save F | --load F]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coincurve import PublicKeyXOnly

from taskhold.audit import audit_log


async def build_log(entries: int) -> list[dict[str, Any]]:
    """Tasks through taskhold until the log holds at least ``entries`` entries."""
    import httpx
    from sqlalchemy import select

    from taskhold.api.application import create_api
    from taskhold.client import TaskholdClient
    from taskhold.lightning.simworld import SimWorld
    from taskhold.nostr import NostrKeys
    from taskhold.services import build_services
    from taskhold.settings import Settings
    from taskhold.store.models import LogEntryRow

    directory = Path(tempfile.mkdtemp(prefix="taskhold-bench-audit-"))
    settings = Settings(
        data_dir=directory,
        database_url=f"sqlite+aiosqlite:///{directory / 'taskhold.sqlite3'}",
        default_review_window_s=600,
    )
    world = SimWorld.create(hold_expiry_delta=settings.hold_expiry_delta)
    services = await build_services(settings, sim=world)
    transport = httpx.ASGITransport(app=create_api(services, run_engine=False))
    http = httpx.AsyncClient(transport=transport, base_url="http://taskhold.bench")

    def client() -> TaskholdClient:
        return TaskholdClient("http://taskhold.bench", NostrKeys.generate(), http=http)

    async def one_task(n: int) -> None:
        employer, worker = client(), client()
        task = await employer.create_task(
            f"task {n}", "benchmark", 150_000_000, int(time.time()) + 3600,
            acceptance={"required_fields": ["url"]},
        )  # fmt: skip
        task_id = task["task_id"]
        funding = (await employer.request_funding(task_id))["funding"]
        await world.employer.send_payment(funding["payment_request"])
        await services.engine.reconcile()
        if n % 4 == 3:
            await employer.cancel(task_id, reason="refund path")
        else:
            task = await employer.get_task(task_id)
            await worker.claim(task_id)
            invoice = await world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
            await worker.submit_proof(task_id, {"url": "https://example.org"}, invoice)
            await employer.approve(task_id)
        await services.engine.reconcile()
        await services.engine.drain()

    async def count() -> int:
        async with services.store.transaction() as tx:
            return len((await tx.session.execute(select(LogEntryRow.gseq))).all())

    try:
        n = 0
        while await count() < entries:
            await one_task(n)
            n += 1
        async with services.store.transaction() as tx:
            rows = await tx.session.execute(select(LogEntryRow.raw).order_by(LogEntryRow.gseq))
            return [dict(raw) for raw in rows.scalars()]
    finally:
        await http.aclose()
        await services.close()


def embedded_requests(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    requests = (json.loads(event["content"]).get("request") for event in log)
    return [request for request in requests if request]


def bare_verify(events: list[dict[str, Any]]) -> None:
    """Only BIP-340: the id taken as given, one parsed key object per author."""
    keys: dict[str, Any] = {}
    for event in events:
        key = keys.get(event["pubkey"])
        if key is None:
            key = keys[event["pubkey"]] = PublicKeyXOnly(bytes.fromhex(event["pubkey"]))
        if not key.verify(bytes.fromhex(event["sig"]), bytes.fromhex(event["id"])):
            raise AssertionError(f"event {event['id']} does not verify")


def interleaved_rates(
    runs: dict[str, Callable[[], None]], items: int, repeat: int
) -> dict[str, list[float]]:
    """Items per second of each run, ``repeat`` times, taking turns so that whatever else the
    machine is doing weighs on all of them alike."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            rates[name].append(items / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--load", type=Path)
    args = parser.parse_args()

    if args.load:
        log = json.loads(args.load.read_text())
    else:
        started = time.perf_counter()
        log = asyncio.run(build_log(args.entries))
        print(f"built a real log of {len(log)} entries in {time.perf_counter() - started:.1f} s")
        if args.save:
            args.save.write_text(json.dumps(log))
    operator = log[0]["pubkey"]
    requests = embedded_requests(log)

    def audit() -> None:
        result = audit_log(log, operator)
        if not result.clean:
            raise AssertionError(f"the benchmark log is not clean: {result.findings[:3]}")

    rates = interleaved_rates(
        {
            "audit": audit,
            "entries": lambda: bare_verify(log),
            "every": lambda: bare_verify(log + requests),
        },
        len(log),
        args.repeat,
    )
    best = {name: max(values) for name, values in rates.items()}
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"{len(log)} entries, {len(requests)} embedded requests "
          f"({len(log) + len(requests)} signatures), best of {args.repeat} (median)")  # fmt: skip
    for name, label in (
        ("audit", "taskhold audit (all checks)      "),
        ("entries", "bare coincurve, entry signatures "),
        ("every", "bare coincurve, every signature  "),
    ):
        print(f"  {label} {best[name]:9.0f} entries/s ({median[name]:.0f})")
    for name, label in (("entries", "entry signatures"), ("every", "every signature")):
        print(
            f"  ratio audit / bare ({label}): {best['audit'] / best[name]:.3f} "
            f"(medians {median['audit'] / median[name]:.3f})"
        )


if __name__ == "__main__":
    main()
