"""Write throughput: signed create-task requests per second against taskhold, next to a bare
FastAPI endpoint receiving the same bodies, measured in the same run.

Both servers run as separate uvicorn processes on loopback (one worker each); the load comes
from this process with a fixed number of concurrent connections. Events are signed before the
clock starts, so the figures are the server's cost: signature check, replay and idempotency
records, the state machine and one database commit per request.

    python bench/write_throughput.py [--requests 2000] [--concurrency 16] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from taskhold.nostr import NostrKeys

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server on port {port} did not start: {cmd}")


def signed_bodies(n: int) -> list[tuple[dict[str, object], str]]:
    keys = [NostrKeys.generate() for _ in range(16)]
    now = int(time.time())
    bodies = []
    for i in range(n):
        content = {
            "title": f"task {i}",
            "description": "benchmark",
            "amount_msat": 100_000,
            "deadline_at": now + 3600,
        }
        event = keys[i % len(keys)].sign_event(3912, json.dumps(content), [["op", "create"]], now)
        bodies.append(({"request": event}, uuid.uuid4().hex))
    return bodies


async def load(
    url: str, bodies: list[tuple[dict[str, object], str]], concurrency: int
) -> dict[str, float]:
    latencies: list[float] = []
    queue: asyncio.Queue[tuple[dict[str, object], str]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    failures = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while not queue.empty():
            body, key = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post("/v1/tasks", json=body, headers={"Idempotency-Key": key})
            latencies.append(time.perf_counter() - started)
            if response.status_code != 201:
                failures += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(bodies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database", help="database URL (default: SQLite in a temp dir)")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="taskhold-bench-")
    env = dict(os.environ, TASKHOLD_DATA_DIR=data_dir, TASKHOLD_LOG_LEVEL="WARNING")
    # One load generator, sixteen keys: the write rate limits would measure themselves.
    env.update(TASKHOLD_RATE_LIMIT_IP_PER_S="0", TASKHOLD_RATE_LIMIT_PUBKEY_PER_S="0")
    if args.database:
        env["TASKHOLD_DATABASE_URL"] = args.database
    taskhold_port, bare_port = free_port(), free_port()
    servers = [
        start(
            [sys.executable, "-m", "taskhold.cli", "serve", "--port", str(taskhold_port)],
            env,
            taskhold_port,
        ),
        start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.bare_app:app",
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
            ],
            env,
            bare_port,
        ),
    ]
    try:
        warmup = signed_bodies(100)
        asyncio.run(load(f"http://127.0.0.1:{taskhold_port}", warmup, args.concurrency))
        asyncio.run(load(f"http://127.0.0.1:{bare_port}", warmup, args.concurrency))
        bodies = signed_bodies(args.requests)
        bare = asyncio.run(load(f"http://127.0.0.1:{bare_port}", bodies, args.concurrency))
        ours = asyncio.run(load(f"http://127.0.0.1:{taskhold_port}", bodies, args.concurrency))
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=10)
    database = "PostgreSQL" if args.database else "SQLite"
    print(
        f"signed create-task writes, {args.requests} requests, {args.concurrency} concurrent, "
        f"{database}"
    )
    for name, result in (("bare FastAPI", bare), ("taskhold", ours)):
        print(
            f"  {name:13s} {result['rps']:8.1f} req/s   p50 {result['p50_ms']:7.2f} ms   "
            f"p99 {result['p99_ms']:7.2f} ms   failures {int(result['failures'])}"
        )
    print(f"  ratio taskhold/bare throughput: {ours['rps'] / bare['rps']:.3f}")


if __name__ == "__main__":
    main()
