"""One real task lifecycle on the devnet, next to the raw lnd REST calls it makes, in one run.

taskhold (SQLite, engine running as under ``serve``) on the devnet's escrow lnd: create, fund
(the employer's lnd pays the hold invoice), claim, proof (with the worker's lnd invoice),
approve, then the engine pays the worker and settles; the clock stops when the task is PAID
in the database. Turns alternate so the machine's other load weighs on both; the figures are
medians.

The baseline makes the same escrow-node calls as the lifecycle, in its order, directly with
httpx, and waits for the same states:

- funding: the node's channels (admission control), the hold invoice, the invoice's own
  stream until ACCEPTED while the employer's lnd pays it (until its HTLC is in flight, as the
  taskhold side's employer does);
- proof: the worker's lnd adds the invoice; the escrow node is asked the block height (the
  invoice's CLTV budget), whether it issued that hash, and whether it ever paid it;
- release: the hold (held, and its expiry), the payout's payment (never sent before), the
  block height (the CLTV limit), the payout hash again, the channels (outbound liquidity),
  the payment until SUCCEEDED, then the settle.

Until issue #17 the baseline made only the hold invoice, the stream, the payment and the
settle: it left out the calls taskhold makes for its money rules, so the ratio charged them
to taskhold as overhead. The engine's pass asks the block height at every tick and after every
accepted request; those reads are the guardian's, not the lifecycle's, and are left out. So
is everything that is not an lnd call: the signed requests, the database, the log.

Each lifecycle, on either side, moves 20,000 sat from the employer's channels to the worker's:
after some 500 of them on one devnet (about 25 runs) the employer's side runs dry, and a run
stops with "the employer could not pay" (it waited forever before). ``taskhold devnet down``
and ``up`` start afresh.

The taskhold side waits for FUNDED and PAID by reading the task's row every 5 ms over one
open SQLite connection. (It opened a connection for each read until issue #17: some 80 a
lifecycle, each blocking the event loop that taskhold runs on for 0.2 to 1 ms.)

    python bench/devnet_lifecycle.py [--quick] [--rounds N]
    (TASKHOLD_BENCH_DEVNET=DIR uses a running devnet; else one is brought up and down)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import sqlite3
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from benchkit import load_bench

from taskhold.client import TaskholdClient
from taskhold.lightning.base import PaymentStatus
from taskhold.lightning.lnd_rest import load_node_connection
from taskhold.lightning.lnd_wallet import LndWallet
from taskhold.logs import configure_logging
from taskhold.nostr import NostrKeys

AMOUNT_MSAT = 20_000_000
DAY_S = 86_400


def _node(connection_file: Path, name: str) -> httpx.AsyncClient:
    node = load_node_connection(connection_file, name)
    tls = ssl.create_default_context(cadata=Path(node.tls_cert_path).read_text())
    macaroon = Path(node.macaroon_path).read_bytes().hex()
    return httpx.AsyncClient(
        base_url=node.rest_url,
        verify=tls,
        headers={"Grpc-Metadata-macaroon": macaroon},
        timeout=httpx.Timeout(60, read=None),
    )


async def _stream(
    client: httpx.AsyncClient, method: str, path: str, body: Any = None
) -> AsyncIterator[dict[str, Any]]:
    async with client.stream(method, path, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.strip():
                yield json.loads(line)["result"]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


async def _absent(call: Any) -> None:
    """A lookup the lifecycle expects the node to refuse (it never saw the hash)."""
    response = await call
    assert response.status_code != 200, response.text


async def _payment_unknown(escrow: httpx.AsyncClient, payment_hash: bytes) -> None:
    """``/v2/router/track`` of a payment the node never sent: it answers with an error."""
    path = f"/v2/router/track/{base64.urlsafe_b64encode(payment_hash).decode()}"
    async with escrow.stream("GET", path, params={"no_inflight_updates": "false"}) as response:
        first = await anext(aiter(response.aiter_lines()))
    assert "error" in json.loads(first), first


async def raw_lifecycle(escrow: httpx.AsyncClient, employer: httpx.AsyncClient,
                        worker: httpx.AsyncClient) -> float:  # fmt: skip
    """The lnd calls of one lifecycle, straight over REST (see the module docstring); seconds."""
    started = time.perf_counter()
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).digest()
    (await escrow.get("/v1/channels", params={"active_only": "true"})).raise_for_status()
    hold = await escrow.post(
        "/v2/invoices/hodl",
        json={"hash": _b64(payment_hash), "value_msat": str(AMOUNT_MSAT), "memo": "bench",
              "expiry": "3600", "cltv_expiry": "200"},
    )  # fmt: skip
    hold.raise_for_status()
    subscribe = f"/v2/invoices/subscribe/{base64.urlsafe_b64encode(payment_hash).decode()}"
    updates = _stream(escrow, "GET", subscribe)
    first = await anext(updates)
    assert first["state"] == "OPEN"
    send = {"payment_request": hold.json()["payment_request"], "timeout_seconds": 60,
            "fee_limit_msat": "10000", "no_inflight_updates": False}  # fmt: skip
    paying = _stream(employer, "POST", "/v2/router/send", send)
    async for payment in paying:
        if payment["status"] == "FAILED":
            raise RuntimeError(f"the employer could not pay: {payment.get('failure_reason')}")
        if any(h.get("status") == "IN_FLIGHT" for h in payment.get("htlcs") or ()):
            break
    await paying.aclose()
    async for invoice in updates:
        if invoice["state"] == "ACCEPTED":
            break
    await updates.aclose()
    invoice = await worker.post("/v1/invoices", json={"value_msat": str(AMOUNT_MSAT - 1_000_000)})
    invoice.raise_for_status()
    payout_hash = base64.b64decode(invoice.json()["r_hash"])
    lookup = "/v2/invoices/lookup"
    # proof: the CLTV budget's height, the hash never issued here, never paid from here
    (await escrow.get("/v1/getinfo")).raise_for_status()
    await _absent(escrow.get(lookup, params={"payment_hash": _b64url(payout_hash)}))
    await _payment_unknown(escrow, payout_hash)
    # release: the hold, the payout never sent, the CLTV limit's height, the hash again
    held = await escrow.get(lookup, params={"payment_hash": _b64url(payment_hash)})
    assert held.json()["state"] == "ACCEPTED", held.text
    await _payment_unknown(escrow, payout_hash)
    (await escrow.get("/v1/getinfo")).raise_for_status()
    await _absent(escrow.get(lookup, params={"payment_hash": _b64url(payout_hash)}))
    (await escrow.get("/v1/channels", params={"active_only": "true"})).raise_for_status()
    payout = {"payment_request": invoice.json()["payment_request"], "timeout_seconds": 60,
              "fee_limit_msat": "10000", "cltv_limit": 150,
              "no_inflight_updates": True}  # fmt: skip
    async for payment in _stream(escrow, "POST", "/v2/router/send", payout):
        if payment["status"] in ("SUCCEEDED", "FAILED"):
            assert payment["status"] == "SUCCEEDED", payment
            break
    settled = await escrow.post("/v2/invoices/settle", json={"preimage": _b64(preimage)})
    settled.raise_for_status()
    return time.perf_counter() - started


class _States:
    """Reads a task's state from taskhold's database over one open connection (autocommit:
    each read sees the latest commit)."""

    def __init__(self, database: Path) -> None:
        self._conn = sqlite3.connect(database, timeout=5, isolation_level=None)

    def state(self, task_id: str) -> str | None:
        row = self._conn.execute("SELECT state FROM tasks WHERE task_id = ?", (task_id,))
        found = row.fetchone()
        return None if found is None else str(found[0])

    async def until(self, task_id: str, state: str) -> None:
        deadline = time.perf_counter() + 120
        while self.state(task_id) != state:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"task {task_id[:12]} did not reach {state}")
            await asyncio.sleep(0.005)

    def close(self) -> None:
        self._conn.close()


async def taskhold_lifecycle(
    employer: TaskholdClient,
    worker: TaskholdClient,
    wallets: dict[str, LndWallet],
    db: _States,
    stages: dict[str, list[float]],
) -> float:
    """One lifecycle through taskhold's API, ending when the task is PAID; seconds. Adds the
    time of its parts to ``stages``: the API's writes and reads, the employer's and worker's
    own lnd calls, the wait for FUNDED after the payment is in flight, approve to PAID."""
    started = mark = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        stages.setdefault(stage, []).append(now - mark)
        mark = now

    task = await employer.create_task(
        "bench", "", AMOUNT_MSAT, int(time.time()) + DAY_S,
        acceptance={"required_fields": ["url"]},
    )  # fmt: skip
    task_id = task["task_id"]
    funding = (await employer.request_funding(task_id))["funding"]
    lap("api_s")
    paid = await wallets["employer"].send_payment(funding["payment_request"])
    if paid.status is PaymentStatus.FAILED:
        raise RuntimeError(f"the employer could not pay: {paid.failure_reason}")
    lap("wallets_s")
    await db.until(task_id, "FUNDED")
    lap("funded_wait_s")
    await worker.claim(task_id)
    claimed = await worker.get_task(task_id)
    lap("api_s")
    invoice = await wallets["worker"].create_invoice(claimed["payout_msat"])
    lap("wallets_s")
    await worker.submit_proof(task_id, {"url": "https://example.org"}, invoice.payment_request)
    await employer.approve(task_id)
    lap("api_s")
    await db.until(task_id, "PAID")
    lap("release_wait_s")
    return time.perf_counter() - started


async def _measure(rounds: int) -> dict[str, object]:
    configure_logging("WARNING")
    support = load_bench("devnet_support.py")
    times: dict[str, list[float]] = {"taskhold": [], "raw": []}
    stages: dict[str, list[float]] = {}
    with support.devnet() as connection_file, tempfile.TemporaryDirectory() as tmp:
        clients = {n: _node(connection_file, n) for n in ("escrow", "employer", "worker")}
        wallets = {n: LndWallet.from_connection_file(connection_file, n) for n in clients}
        async with support.taskhold_on(connection_file, Path(tmp)) as services:
            http, employer = support.api_client(services)
            worker = TaskholdClient("http://taskhold.bench", NostrKeys.generate(), http=http)
            db = _States(Path(tmp) / "taskhold.sqlite3")
            try:
                await raw_lifecycle(*clients.values())  # warm both paths once
                await taskhold_lifecycle(employer, worker, wallets, db, {})
                for _ in range(rounds):
                    times["raw"].append(await raw_lifecycle(*clients.values()))
                    times["taskhold"].append(
                        await taskhold_lifecycle(employer, worker, wallets, db, stages)
                    )
                    print(
                        f"[devnet_lifecycle] taskhold {times['taskhold'][-1]:.2f} s,"
                        f" raw {times['raw'][-1]:.2f} s",
                        file=sys.stderr,
                    )
            finally:
                db.close()
                await http.aclose()
                for client in clients.values():
                    await client.aclose()
                for wallet in wallets.values():
                    await wallet.close()
    lifecycle = statistics.median(times["taskhold"])
    raw = statistics.median(times["raw"])
    return {
        "lifecycle_s": round(lifecycle, 3),
        "raw_lnd_s": round(raw, 3),
        "ratio": round(lifecycle / raw, 2),
        "ratio_target": 1.2,
        "rounds": rounds,
        **{f"lifecycle_{k}": round(sum(v) / rounds, 3) for k, v in sorted(stages.items())},
    }


def measure(*, quick: bool) -> dict[str, object]:
    return asyncio.run(_measure(3 if quick else 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    args = parser.parse_args()
    figures = asyncio.run(_measure(args.rounds or (3 if args.quick else 10)))
    for name, value in figures.items():
        print(f"{name:28} {value}")


if __name__ == "__main__":
    main()
