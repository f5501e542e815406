"""Funding detection on the devnet: from ACCEPTED on lnd's invoice stream to FUNDED committed.

taskhold (SQLite) runs on the devnet's escrow lnd with its engine as under ``serve``. For each
sample a task is created and its funding requested through the API; the bench subscribes to
the hold invoice itself (``GET /v2/invoices/subscribe/{hash}`` on the escrow node, the stream
that reports ACCEPTED), the employer's lnd pays, and the time runs from the moment the bench's
stream says ACCEPTED to the moment a reader of the database (its own connection, every 2 ms)
sees the task FUNDED. Both clocks are this process's, on one event loop with taskhold.

The same run measures taskhold with its single-invoice streams off (``poll_only``): the
ACCEPTED state then reaches it by the 1 s poll of pending invoices, which was the path before.

    python bench/funding_detection.py [--quick] [--samples N]
    (TASKHOLD_BENCH_DEVNET=DIR uses a running devnet; else one is brought up and down)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchkit import load_bench

from taskhold.lightning import lnd
from taskhold.lightning.lnd_rest import LndRest, b64url, load_node_connection
from taskhold.lightning.lnd_wallet import LndWallet
from taskhold.logs import configure_logging

AMOUNT_MSAT = 20_000_000
DAY_S = 86_400


def _state(database: Path, task_id: str) -> str | None:
    with contextlib.closing(sqlite3.connect(database, timeout=5)) as conn:
        row = conn.execute("SELECT state FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    return None if row is None else str(row[0])


async def _accepted_at(rest: LndRest, payment_hash: bytes, live: asyncio.Event) -> float:
    path = f"/v2/invoices/subscribe/{b64url(payment_hash)}"
    updates = rest.stream("GET", path, subscription=True)
    async with contextlib.aclosing(updates):
        async for invoice in updates:
            live.set()
            if invoice.get("state") == "ACCEPTED":
                return time.perf_counter()
    raise RuntimeError("the invoice stream ended before ACCEPTED")


async def _samples(connection_file: Path, count: int, *, single_streams: int) -> list[float]:
    support = load_bench("devnet_support.py")
    default_streams = lnd.SINGLE_INVOICE_STREAMS
    lnd.SINGLE_INVOICE_STREAMS = single_streams
    node = load_node_connection(connection_file, "escrow")
    rest = LndRest(node.rest_url, node.tls_cert_path, node.macaroon_path)
    payer = LndWallet.from_connection_file(connection_file, "employer")
    found: list[float] = []
    with tempfile.TemporaryDirectory(prefix="taskhold-bench-funding-") as tmp:
        async with support.taskhold_on(connection_file, Path(tmp)) as services:
            http, employer = support.api_client(services)
            database = Path(tmp) / "taskhold.sqlite3"
            try:
                for _ in range(count):
                    task = await employer.create_task(
                        "bench", "", AMOUNT_MSAT, int(time.time()) + DAY_S,
                        acceptance={"required_fields": ["url"]},
                    )  # fmt: skip
                    funding = (await employer.request_funding(task["task_id"]))["funding"]
                    live = asyncio.Event()
                    accepted = asyncio.create_task(
                        _accepted_at(rest, bytes.fromhex(funding["payment_hash"]), live)
                    )
                    await asyncio.wait_for(live.wait(), 30)
                    await payer.send_payment(funding["payment_request"])
                    t0 = await asyncio.wait_for(accepted, 60)
                    while _state(database, task["task_id"]) != "FUNDED":
                        if time.perf_counter() - t0 > 30:
                            raise RuntimeError("taskhold did not see the funding in 30 s")
                        await asyncio.sleep(0.002)
                    found.append((time.perf_counter() - t0) * 1000)
                    print(f"[funding_detection] {found[-1]:.1f} ms", file=sys.stderr)
            finally:
                await http.aclose()
    await payer.close()
    await rest.aclose()
    lnd.SINGLE_INVOICE_STREAMS = default_streams
    return found


def _figures(prefix: str, samples: list[float]) -> dict[str, object]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        f"{prefix}p50": round(statistics.median(ordered), 1),
        f"{prefix}p99": round(p99, 1),
        f"{prefix}max": round(ordered[-1], 1),
    }


async def _measure(count: int) -> dict[str, object]:
    configure_logging("WARNING")
    support = load_bench("devnet_support.py")
    with support.devnet() as connection_file:
        after = await _samples(connection_file, count, single_streams=4)
        before = await _samples(connection_file, max(3, count // 2), single_streams=0)
    return {
        **_figures("funding_detect_ms_", after),
        "samples": len(after),
        "funding_detect_ms_target": 100,
        **_figures("funding_detect_poll_only_ms_", before),
    }


def measure(*, quick: bool) -> dict[str, object]:
    return asyncio.run(_measure(5 if quick else 20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--samples", type=int)
    args = parser.parse_args()
    figures = asyncio.run(_measure(args.samples or (5 if args.quick else 20)))
    for name, value in figures.items():
        print(f"{name:34} {value}")


if __name__ == "__main__":
    main()
