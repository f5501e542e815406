"""Audit throughput: entries per second for ``taskhold audit``'s verification of a log (NIP-01
id, BIP-340 signature, author, tags, the embedded participant request, both chains and the
preimages), on one process and spread over two (``--jobs 2``), next to bare coincurve Schnorr
verification of every signature of the same log (entries and embedded requests, ids taken as
given) on one core, in the same run, taking turns.

By default the log is real: tasks run through taskhold on the Lightning simulator (in process,
SQLite), paid or refunded, and the signed entries are read back from ``log_entries``.
``--synthetic N`` (and ``measure()``, which must be quick) makes it instead with taskhold's pure
parts, as ``rebuild_throughput.py`` does: the same shape, 7 entries a task, 5 with a request,
clean for the auditor. Building it is not timed. ``--save``/``--load`` keep a log in a JSON file.

    python bench/audit_throughput.py [--entries 2000 | --synthetic 35000] [--repeat 9]
                                     [--save F | --load F]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
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


def synthetic_log(entries: int) -> list[dict[str, Any]]:
    """A log made by ``rebuild_throughput.make_log`` (imported from its file: bench/ is not a
    package)."""
    path = Path(__file__).with_name("rebuild_throughput.py")
    spec = importlib.util.spec_from_file_location("rebuild_throughput", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    log: list[dict[str, Any]] = module.make_log(entries - entries % 7)
    return log


def compare(log: list[dict[str, Any]], repeat: int) -> dict[str, object]:
    """The audit on 1 and 2 processes and bare verification, taking turns ``repeat`` times;
    the best of each (the least disturbed by the rest of the machine), and the medians."""
    operator = log[0]["pubkey"]
    requests = embedded_requests(log)

    def audit(jobs: int) -> Callable[[], None]:
        def run() -> None:
            result = audit_log(log, operator, jobs=jobs)
            if not result.clean:
                raise AssertionError(f"the benchmark log is not clean: {result.findings[:3]}")

        return run

    rates = interleaved_rates(
        {
            "audit_1core": audit(1),
            "audit_2core": audit(2),
            "bare_entries": lambda: bare_verify(log),
            "bare_verify": lambda: bare_verify(log + requests),
        },
        len(log),
        repeat,
    )
    best = {name: max(values) for name, values in rates.items()}
    median = {name: statistics.median(values) for name, values in rates.items()}
    figures: dict[str, object] = {
        "entries": len(log),
        "signatures": len(log) + len(requests),
        "bare_verify_per_s": round(best["bare_verify"]),
        "bare_entries_per_s": round(best["bare_entries"]),
    }
    for cores in ("1core", "2core"):
        figures[f"audit_{cores}_per_s"] = round(best[f"audit_{cores}"])
        figures[f"ratio_{cores}"] = round(best[f"audit_{cores}"] / best["bare_verify"], 3)
        figures[f"ratio_{cores}_median"] = round(
            median[f"audit_{cores}"] / median["bare_verify"], 3
        )
    figures["ratio_1core_target"] = 0.6
    figures["ratio_2core_target"] = 1.2
    return figures


def measure(*, quick: bool) -> dict[str, object]:
    """Audit throughput on a synthetic log of 7,000 entries (quick) or 35,000."""
    started = time.perf_counter()
    log = synthetic_log(7_000 if quick else 35_000)
    print(f"audit: made {len(log)} entries in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)  # fmt: skip
    return compare(log, 3 if quick else 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--synthetic", type=int, metavar="N", help="a synthetic log of N entries")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--load", type=Path)
    args = parser.parse_args()

    started = time.perf_counter()
    if args.load:
        log = json.loads(args.load.read_text())
    elif args.synthetic:
        log = synthetic_log(args.synthetic)
        print(
            f"made a synthetic log of {len(log)} entries in {time.perf_counter() - started:.1f} s"
        )
    else:
        log = asyncio.run(build_log(args.entries))
        print(f"built a real log of {len(log)} entries in {time.perf_counter() - started:.1f} s")
    if args.save:
        args.save.write_text(json.dumps(log))
    for name, value in compare(log, args.repeat).items():
        print(f"  {name:22} {value}")


if __name__ == "__main__":
    main()
